using IlgpuOct.Defense.Density;
using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Operators;
using IlgpuOct.Nn;

namespace IlgpuOct.Defense.Attacks;

/// <summary>The classification part of an adaptive objective.</summary>
public enum AdaptiveLoss
{
    /// <summary>Cross-entropy (against the label, maximised; or against the target, minimised).</summary>
    CrossEntropy,

    /// <summary>Carlini-Wagner margin max(f, -kappa), minimised.</summary>
    CwMargin,
}

/// <summary>
/// J = classification term + lambda * sum over stages of score_s(f_s(x); c), the scores of the
/// pooled stage features under the densities of class c: the target (targeted), else the most
/// likely class other than the label at the current iterate (the class the detector will check
/// once the attack succeeds). The feature gradients are injected at the pooled stage outputs.
/// </summary>
public sealed class FeatureAdaptiveObjective : IAttackObjective, IDisposable
{
    private readonly IFeatureTapClassifier _classifier;
    private readonly GaussianStageGradients? _deviceDensities; // null on the cpu engine or for densities without a device form
    private readonly DeviceGoalClasses _goalClasses;
    private Tensor? _dLogits; // (N, K)
    private DeviceBuffer<int>? _densityClasses; // (N, or more) density class of each image
    private DeviceBuffer<float>? _loss; // (1) the summed cross-entropy (unused by the step)

    public FeatureAdaptiveObjective(IFeatureTapClassifier classifier, StageDensities densities, double lambda, AdaptiveLoss loss = AdaptiveLoss.CrossEntropy, float kappa = 0f)
    {
        _classifier = classifier ?? throw new ArgumentNullException(nameof(classifier));
        ArgumentNullException.ThrowIfNull(densities);
        densities.Validate(classifier.StageWidths, classifier.NumClasses);
        if (!(lambda >= 0) || double.IsInfinity(lambda))
        {
            throw new ArgumentException($"Lambda weighs the feature term; it must be finite and >= 0; got {lambda}.", nameof(lambda));
        }
        if (!(kappa >= 0))
        {
            throw new ArgumentException($"Kappa (confidence) must be >= 0; got {kappa}.", nameof(kappa));
        }
        Densities = densities;
        _goalClasses = new DeviceGoalClasses(classifier);
        if (OperatorDispatch.EngineFor(classifier.Accelerator) == OperatorEngine.Kernels)
        {
            _deviceDensities = GaussianStageGradients.TryCreate(classifier.Accelerator, densities);
        }
        Lambda = lambda;
        Loss = loss;
        Kappa = kappa;
    }

    public IDifferentiableClassifier Classifier => _classifier;

    public StageDensities Densities { get; }

    public double Lambda { get; }

    public AdaptiveLoss Loss { get; }

    public float Kappa { get; }

    /// <summary>The feature-term total (sum over stages of the scores) of the last Evaluate, per image.</summary>
    public double[] LastFeatureScore { get; private set; } = [];

    public float[] Evaluate(Tensor x, AttackGoal goal, Span<double> objective, bool withGradient, out Tensor? gradient)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(goal);
        int n = x.Dim(0);
        int k = _classifier.NumClasses;
        var (logits, pools) = _classifier.Forward(x);
        var dLogits = new float[n * k];
        var classTerm = ClassificationTerm(logits, goal, n, k, dLogits);
        int[] densityClass = DensityClasses(logits, goal, n, k);
        double[] feature = Densities.Evaluate(pools, _classifier.StageWidths, densityClass, withGradient && Lambda > 0, out var dPools);
        LastFeatureScore = feature;
        for (int i = 0; i < n; i++)
        {
            objective[i] = classTerm[i] + Lambda * feature[i];
        }
        gradient = null;
        if (withGradient)
        {
            foreach (var d in dPools)
            {
                if (d is null)
                {
                    continue;
                }
                for (int j = 0; j < d.Length; j++)
                {
                    d[j] = (float)(Lambda * d[j]);
                }
            }
            gradient = _classifier.InputGradientTensor(dLogits, dPools);
        }
        return logits;
    }

    /// <summary>
    /// dJ/dx for an attack step. On the cpu engine, and for densities that are neither Gaussian-mixture
    /// scores (HFC, UAD, Mahalanobis) nor kernel densities (KDE), this is <see cref="Evaluate"/> (the step reads the logits and stage
    /// outputs and uploads their gradients). Otherwise everything stays on the device: the
    /// classification term's dJ/dlogits (the CrossEntropy operator, or the C&amp;W margin in
    /// <see cref="AttackKernels.AdaptiveRows"/>), the density classes (the same kernel) and the
    /// stage-feature gradients (<see cref="GaussianStageGradients"/>); the goal's classes are uploaded once per goal.
    /// </summary>
    public Tensor Gradient(Tensor x, AttackGoal goal)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(goal);
        var accelerator = _classifier.Accelerator;
        if (OperatorDispatch.EngineFor(accelerator) == OperatorEngine.Cpu || _deviceDensities is null)
        {
            Evaluate(x, goal, new double[x.Dim(0)], withGradient: true, out var gradient);
            return gradient!;
        }
        int n = x.Dim(0);
        int k = _classifier.NumClasses;
        var classes = _goalClasses.Of(goal, n);
        var (logits, pools) = _classifier.ForwardTensors(x);
        var dLogits = Tensor.ReuseLargest(ref _dLogits, accelerator, n, k);
        if (_densityClasses is null || _densityClasses.Length < n)
        {
            _densityClasses?.Dispose();
            _densityClasses = accelerator.Allocate<int>(n);
        }
        var densityClasses = _densityClasses.View.Slice(0, n);
        if (Loss == AdaptiveLoss.CrossEntropy)
        {
            _loss ??= accelerator.Allocate<float>(1);
            CrossEntropy.Compute(accelerator, new LogitsShape(n, k), logits.View, classes, _loss.View, dLogits.View, LossReduction.Sum);
            if (goal.IsTargeted)
            {
                Elementwise.Scale(accelerator, -1f, dLogits.View, dLogits.View);
            }
        }
        AttackKernels.AdaptiveRows(accelerator, n, k, logits.View, classes, dLogits.View, densityClasses, goal.IsTargeted, Loss == AdaptiveLoss.CwMargin, Kappa);
        var dPools = Lambda > 0 ? _deviceDensities.Gradient(pools, densityClasses, (float)Lambda) : new Tensor?[pools.Count];
        return _classifier.InputGradientTensor(dLogits, dPools);
    }

    public void Dispose()
    {
        _deviceDensities?.Dispose();
        _goalClasses.Dispose();
        _dLogits?.Dispose();
        _densityClasses?.Dispose();
        _loss?.Dispose();
    }

    /// <summary>The per-image classification term of J and dJ/dlogits.</summary>
    private double[] ClassificationTerm(float[] logits, AttackGoal goal, int n, int k, float[] dLogits)
    {
        if (Loss == AdaptiveLoss.CrossEntropy)
        {
            double[] ce = AttackMath.CrossEntropySum(logits, goal.Classes, n, k, dLogits, goal.IsTargeted ? -1f : 1f);
            return goal.IsTargeted ? Array.ConvertAll(ce, v => -v) : ce;
        }
        var term = new double[n];
        for (int i = 0; i < n; i++)
        {
            int cls = goal.ClassOf(i);
            var (margin, other) = AttackMath.CwMargin(logits.AsSpan(i * k, k), cls, goal.IsTargeted);
            term[i] = -Math.Max(margin, -Kappa);
            if (margin > -Kappa)
            {
                // J = -margin: targeted d/dZ_other = -1, d/dZ_t = +1; untargeted d/dZ_y = -1, d/dZ_other = +1.
                dLogits[i * k + other] = goal.IsTargeted ? -1f : 1f;
                dLogits[i * k + cls] = goal.IsTargeted ? 1f : -1f;
            }
        }
        return term;
    }

    internal static int[] DensityClasses(float[] logits, AttackGoal goal, int n, int k)
    {
        if (goal.Targets is not null)
        {
            return goal.Targets;
        }
        var classes = new int[n];
        for (int i = 0; i < n; i++)
        {
            classes[i] = AttackMath.MaxOther(logits.AsSpan(i * k, k), goal.Labels[i]).Index;
        }
        return classes;
    }
}

/// <summary>
/// Adaptive attacks on a feature-density detector, inside an L-infinity budget (PGD steps).
/// </summary>
public static class AdaptiveAttacks
{
    /// <summary>
    /// Yao et al. (MICCAI 2021) hierarchical feature constraint: the classification loss plus
    /// lambda * sum over stages of ||M_k^T (f_s(x) - mu_k)||^2 for the most likely component k
    /// of the class's mixture at each stage, minimised by PGD. <paramref name="mixtures"/> is
    /// [stage][class] (layer1..layer4 pooled; null skips a stage).
    /// </summary>
    public static AttackResult Hfc(IFeatureTapClassifier classifier, IReadOnlyList<IReadOnlyList<GaussianMixture>?> mixtures, ReadOnlySpan<float> images, int[] shape,
        AttackGoal goal, PgdOptions options, double lambda, AdaptiveLoss loss = AdaptiveLoss.CrossEntropy, float kappa = 0f,
        IProgress<AttackProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        var densities = StageDensities.FromMixtures(mixtures, m => new GmmNearestComponent(m));
        using var objective = new FeatureAdaptiveObjective(classifier, densities, lambda, loss, kappa);
        return Pgd.Run(objective, images, shape, goal, options, progress, cancellationToken, "hfc");
    }

    /// <summary>
    /// PGD on CE - lambda * log p(penultimate features) under the class's density (any
    /// <see cref="IFeatureDensity"/>, one per class): the simple adaptive attack on a feature-density detector.
    /// </summary>
    public static AttackResult DensityPgd(IFeatureTapClassifier classifier, IReadOnlyList<IFeatureDensity> penultimatePerClass, ReadOnlySpan<float> images, int[] shape,
        AttackGoal goal, PgdOptions options, double lambda, IProgress<AttackProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(classifier);
        var stages = new IReadOnlyList<IFeatureDensity>?[classifier.StageWidths.Count];
        stages[^1] = penultimatePerClass;
        using var objective = new FeatureAdaptiveObjective(classifier, new StageDensities(stages), lambda);
        return Pgd.Run(objective, images, shape, goal, options, progress, cancellationToken, "density-pgd");
    }
}
