using IlgpuOct.Nn;

namespace IlgpuOct.Defense.Attacks;

/// <summary>Settings of the Carlini-Wagner L2 attack.</summary>
public sealed record CarliniWagnerOptions
{
    /// <summary>Starting trade-off constant c between distance and margin.</summary>
    public double InitialC { get; init; } = 0.01;

    /// <summary>Binary-search rounds over c (1 = a single run at <see cref="InitialC"/>).</summary>
    public int BinarySearchSteps { get; init; } = 9;

    /// <summary>Adam iterations per round.</summary>
    public int MaxIterations { get; init; } = 100;

    public double LearningRate { get; init; } = 0.01;

    /// <summary>Confidence: success needs a margin of more than kappa.</summary>
    public float Kappa { get; init; }

    /// <summary>Stop a round when the total loss has not dropped by 0.01% over a tenth of the iterations.</summary>
    public bool AbortEarly { get; init; } = true;

    public void Validate()
    {
        if (!(InitialC > 0) || double.IsInfinity(InitialC))
        {
            throw new ArgumentException($"The initial c must be positive and finite; got {InitialC}.");
        }
        if (BinarySearchSteps < 1 || MaxIterations < 1)
        {
            throw new ArgumentException($"Binary-search steps ({BinarySearchSteps}) and iterations ({MaxIterations}) must be at least 1.");
        }
        if (!(LearningRate > 0))
        {
            throw new ArgumentException($"The learning rate must be positive; got {LearningRate}.");
        }
        if (!(Kappa >= 0))
        {
            throw new ArgumentException($"Kappa (confidence) must be >= 0; got {Kappa}.");
        }
    }
}

/// <summary>One binary-search round: the c each image used, whether it succeeded in that round and its smallest successful L2 (infinity if none).</summary>
public sealed record CarliniWagnerRound(double[] C, bool[] Succeeded, double[] BestL2);

/// <summary>
/// Carlini and Wagner's L2 attack: x = (tanh(w) + 1) / 2, minimise ||x - x0||^2 + c max(f(x), -kappa)
/// with Adam, f the margin (targeted: max_{j != t} Z_j - Z_t; untargeted: Z_y - max_{j != y} Z_j),
/// binary search over c per image, and for each image the smallest-L2 successful iterate over all
/// rounds (the original image where none succeeded).
/// </summary>
public static class CarliniWagnerL2
{
    private const double Beta1 = 0.9;
    private const double Beta2 = 0.999;
    private const double UpperUnset = 1e10;

    public static AttackResult Run(IDifferentiableClassifier classifier, ReadOnlySpan<float> images, int[] shape, AttackGoal goal, CarliniWagnerOptions options,
        IProgress<AttackProgress>? progress = null, CancellationToken cancellationToken = default) =>
        Run(classifier, images, shape, goal, options, out _, progress, cancellationToken);

    public static AttackResult Run(IDifferentiableClassifier classifier, ReadOnlySpan<float> images, int[] shape, AttackGoal goal, CarliniWagnerOptions options,
        out IReadOnlyList<CarliniWagnerRound> rounds, IProgress<AttackProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(classifier);
        ArgumentNullException.ThrowIfNull(goal);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        int n = AttackChecks.RequireImages(images, shape, classifier.InChannels);
        AttackChecks.RequireUnitRange(images);
        int k = classifier.NumClasses;
        goal.Validate(n, k);
        float[] x0 = images.ToArray();
        int length = x0.Length;
        int per = length / n;
        float[] cleanLogits = classifier.Logits(x0, shape);

        // w0 = atanh(2 x0 - 1), kept finite at the pixel range ends; x(w0) is the start of every round.
        var w0 = new float[length];
        var xStart = new float[length];
        for (int j = 0; j < length; j++)
        {
            w0[j] = (float)Math.Atanh(Math.Clamp(2.0 * x0[j] - 1.0, -1 + 1e-6, 1 - 1e-6));
            xStart[j] = (MathF.Tanh(w0[j]) + 1f) * 0.5f;
        }

        var c = Enumerable.Repeat(options.InitialC, n).ToArray();
        var lower = new double[n];
        var upper = Enumerable.Repeat(UpperUnset, n).ToArray();
        var overallBestL2 = Enumerable.Repeat(double.PositiveInfinity, n).ToArray();
        float[] best = (float[])x0.Clone();
        float[] bestLogits = (float[])cleanLogits.Clone();
        var history = new List<CarliniWagnerRound>();

        // The tanh-space variable, Adam's moments and the image live on the device; the host reads
        // the image each iteration for the distances and the best-so-far copies.
        var accelerator = classifier.Accelerator;
        using var original = Tensor.FromHost(accelerator, x0, shape);
        using var start = Tensor.FromHost(accelerator, w0, shape);
        using var startImage = Tensor.FromHost(accelerator, xStart, shape);
        using var w = Tensor.Zeros(accelerator, shape);
        using var m = Tensor.Zeros(accelerator, shape);
        using var v = Tensor.Zeros(accelerator, shape);
        using var xDevice = Tensor.Zeros(accelerator, shape);
        var dLogits = new float[n * k];
        for (int round = 0; round < options.BinarySearchSteps; round++)
        {
            w.CopyFrom(start);
            xDevice.CopyFrom(startImage);
            m.Zero();
            v.Zero();
            var roundBestL2 = Enumerable.Repeat(double.PositiveInfinity, n).ToArray();
            var roundSucceeded = new bool[n];
            double previous = double.PositiveInfinity;
            for (int iteration = 0; iteration < options.MaxIterations; iteration++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                float[] logits = classifier.Logits(xDevice);
                float[] x = xDevice.Download();
                Array.Clear(dLogits);
                double total = 0;
                var l2 = AttackMath.Distances(x, x0, n).L2;
                for (int i = 0; i < n; i++)
                {
                    int cls = goal.ClassOf(i);
                    var row = logits.AsSpan(i * k, k);
                    var (margin, other) = AttackMath.CwMargin(row, cls, goal.IsTargeted);
                    double squared = (double)l2[i] * l2[i];
                    total += squared + c[i] * Math.Max(margin, -options.Kappa);
                    if (margin > -options.Kappa)
                    {
                        float scale = (float)c[i];
                        dLogits[i * k + other] += goal.IsTargeted ? scale : -scale;
                        dLogits[i * k + cls] += goal.IsTargeted ? -scale : scale;
                    }
                    if (margin < -options.Kappa)
                    {
                        roundSucceeded[i] = true;
                        if (squared < roundBestL2[i])
                        {
                            roundBestL2[i] = squared;
                        }
                        if (squared < overallBestL2[i])
                        {
                            overallBestL2[i] = squared;
                            Array.Copy(x, i * per, best, i * per, per);
                            Array.Copy(logits, i * k, bestLogits, i * k, k);
                        }
                    }
                }
                if (options.AbortEarly && iteration % Math.Max(options.MaxIterations / 10, 1) == 0)
                {
                    if (total > previous * 0.9999)
                    {
                        break;
                    }
                    previous = total;
                }
                var gradient = classifier.InputGradientTensor(dLogits);
                double t = iteration + 1;
                AttackKernels.CwAdamStep(accelerator, w.View, m.View, v.View, xDevice.View, original.View, gradient.View, (float)options.LearningRate,
                    (float)(1 - Math.Pow(Beta1, t)), (float)(1 - Math.Pow(Beta2, t)));
                progress?.Report(new AttackProgress("cw", round + 1, options.BinarySearchSteps, iteration + 1, options.MaxIterations));
            }
            history.Add(new CarliniWagnerRound((double[])c.Clone(), roundSucceeded, Array.ConvertAll(roundBestL2, Math.Sqrt)));
            for (int i = 0; i < n; i++)
            {
                if (roundSucceeded[i])
                {
                    upper[i] = Math.Min(upper[i], c[i]);
                    if (upper[i] < UpperUnset)
                    {
                        c[i] = (lower[i] + upper[i]) / 2;
                    }
                }
                else
                {
                    lower[i] = Math.Max(lower[i], c[i]);
                    c[i] = upper[i] < UpperUnset ? (lower[i] + upper[i]) / 2 : c[i] * 10;
                }
            }
        }
        rounds = history;
        return new AttackResult(best, (int[])shape.Clone(), goal.Labels, goal.Targets, cleanLogits, bestLogits, k).WithDistances(x0);
    }
}
