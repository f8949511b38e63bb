using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Operators;
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

    /// <summary>
    /// dJ/dx of device images x (N, C, H, W) for an attack step, left on the device (owned by the
    /// classifier, valid until its next call); objectives whose terms live on the device compute it
    /// without a host copy.
    /// </summary>
    Tensor Gradient(Tensor x, AttackGoal goal);
}

/// <summary>Untargeted: J = CE(x, label) (summed over the batch); targeted: J = -CE(x, target).</summary>
public sealed class CrossEntropyObjective(IDifferentiableClassifier classifier) : IAttackObjective, IDisposable
{
    private AttackGoal? _uploadedGoal; // the goal whose classes are in _classes
    private DeviceBuffer<int>? _classes; // (N) goal.Classes on the device
    private DeviceBuffer<float>? _loss; // (1) the summed cross-entropy (unused by the step)
    private Tensor? _dLogits; // (N, K)

    public IDifferentiableClassifier Classifier { get; } = classifier ?? throw new ArgumentNullException(nameof(classifier));

    /// <summary>
    /// The CrossEntropy operator on the device logits (sum over the batch), negated for a target,
    /// back through the classifier: the same arithmetic as <see cref="Evaluate"/> with no host copy.
    /// The goal's classes are uploaded once per goal and the buffers kept across steps.
    /// </summary>
    public Tensor Gradient(Tensor x, AttackGoal goal)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(goal);
        var accelerator = Classifier.Accelerator;
        int n = x.Dim(0);
        int k = Classifier.NumClasses;
        if (!ReferenceEquals(goal, _uploadedGoal) || _classes!.Length != n)
        {
            goal.Validate(n, k);
            if (_classes is null || _classes.Length != n)
            {
                _classes?.Dispose();
                _classes = accelerator.Allocate<int>(n);
            }
            accelerator.CopyFromHost<int>(goal.Classes, _classes.View);
            _uploadedGoal = goal;
        }
        return Gradient(x, _classes.View, goal.IsTargeted);
    }

    /// <summary>
    /// As <see cref="Gradient(Tensor, AttackGoal)"/> for classes (N) already on the device (e.g. a
    /// training batch's labels): nothing is uploaded, read back or, after the first call for the
    /// largest batch, allocated.
    /// </summary>
    public Tensor Gradient(Tensor x, View<int> classes, bool targeted)
    {
        ArgumentNullException.ThrowIfNull(x);
        var accelerator = Classifier.Accelerator;
        int n = x.Dim(0);
        int k = Classifier.NumClasses;
        if (classes.Length != n)
        {
            throw new ArgumentException($"CrossEntropyObjective.Gradient: {n} images need {n} classes on the device; got {classes.Length}.", nameof(classes));
        }
        _loss ??= accelerator.Allocate<float>(1);
        var logits = Classifier.LogitsTensor(x);
        var dLogits = Tensor.ReuseLargest(ref _dLogits, accelerator, n, k);
        CrossEntropy.Compute(accelerator, new LogitsShape(n, k), logits.View, classes, _loss.View, dLogits.View, LossReduction.Sum);
        if (targeted)
        {
            Elementwise.Scale(accelerator, -1f, dLogits.View, dLogits.View);
        }
        return Classifier.InputGradientTensor(dLogits);
    }

    public void Dispose()
    {
        _classes?.Dispose();
        _loss?.Dispose();
        _dLogits?.Dispose();
    }

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
