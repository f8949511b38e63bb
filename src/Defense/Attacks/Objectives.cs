namespace IlgpuOct.Defense.Attacks;

/// <summary>
/// A per-image objective J that a gradient-sign attack maximises. Evaluate returns the logits at
/// x (N, K), the per-image objective, and (unless <paramref name="gradient"/> is empty) dJ/dx.
/// Since J is a sum of per-image terms, each image's gradient does not depend on the batch.
/// </summary>
public interface IAttackObjective
{
    IDifferentiableClassifier Classifier { get; }

    float[] Evaluate(ReadOnlySpan<float> x, int[] shape, AttackGoal goal, Span<float> gradient, Span<double> objective);
}

/// <summary>Untargeted: J = CE(x, label) (summed over the batch); targeted: J = -CE(x, target).</summary>
public sealed class CrossEntropyObjective(IDifferentiableClassifier classifier) : IAttackObjective
{
    public IDifferentiableClassifier Classifier { get; } = classifier ?? throw new ArgumentNullException(nameof(classifier));

    public float[] Evaluate(ReadOnlySpan<float> x, int[] shape, AttackGoal goal, Span<float> gradient, Span<double> objective)
    {
        ArgumentNullException.ThrowIfNull(goal);
        int n = shape[0];
        int k = Classifier.NumClasses;
        float[] logits = Classifier.Logits(x, shape);
        var dLogits = new float[n * k];
        double[] ce = AttackMath.CrossEntropySum(logits, goal.Classes, n, k, dLogits, goal.IsTargeted ? -1f : 1f);
        for (int i = 0; i < n; i++)
        {
            objective[i] = goal.IsTargeted ? -ce[i] : ce[i];
        }
        if (!gradient.IsEmpty)
        {
            Classifier.InputGradient(dLogits).CopyTo(gradient);
        }
        return logits;
    }
}
