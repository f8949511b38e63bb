using IlgpuOct.Nn;

namespace IlgpuOct.Defense.Attacks;

/// <summary>
/// A per-image objective J that a gradient-sign attack maximises. Evaluate runs the classifier on
/// the device images x (N, C, H, W) and returns the logits (N, K) and the per-image objective;
/// with <paramref name="withGradient"/> it also leaves dJ/dx on the device (owned by the
/// classifier, valid until its next call). J is a sum of per-image terms, so each image's
/// gradient does not depend on the batch.
/// </summary>
public interface IAttackObjective
{
    IDifferentiableClassifier Classifier { get; }

    float[] Evaluate(Tensor x, AttackGoal goal, Span<double> objective, bool withGradient, out Tensor? gradient);
}

/// <summary>Untargeted: J = CE(x, label) (summed over the batch); targeted: J = -CE(x, target).</summary>
public sealed class CrossEntropyObjective(IDifferentiableClassifier classifier) : IAttackObjective
{
    public IDifferentiableClassifier Classifier { get; } = classifier ?? throw new ArgumentNullException(nameof(classifier));

    public float[] Evaluate(Tensor x, AttackGoal goal, Span<double> objective, bool withGradient, out Tensor? gradient)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(goal);
        int n = x.Dim(0);
        int k = Classifier.NumClasses;
        float[] logits = Classifier.Logits(x);
        var dLogits = new float[n * k];
        double[] ce = AttackMath.CrossEntropySum(logits, goal.Classes, n, k, dLogits, goal.IsTargeted ? -1f : 1f);
        for (int i = 0; i < n; i++)
        {
            objective[i] = goal.IsTargeted ? -ce[i] : ce[i];
        }
        gradient = withGradient ? Classifier.InputGradientTensor(dLogits) : null;
        return logits;
    }
}
