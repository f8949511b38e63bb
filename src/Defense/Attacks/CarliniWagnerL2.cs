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
        var unreached = Enumerable.Repeat(double.PositiveInfinity, n).ToArray();
        var history = new List<CarliniWagnerRound>();

        // Everything an iteration touches lives on the device (CarliniWagnerBookkeeping keeps the
        // distances, margins, success flags and best-so-far images there); the host reads the total
        // loss at the abort-early checks, the round's flags and distances once per round, and the
        // best images once at the end.
        var accelerator = classifier.Accelerator;
        var cwShape = new CarliniWagnerShape(n, per, k, goal.IsTargeted, options.Kappa);
        using var original = Tensor.FromHost(accelerator, x0, shape);
        using var start = Tensor.FromHost(accelerator, w0, shape);
        using var startImage = Tensor.FromHost(accelerator, xStart, shape);
        using var w = Tensor.Zeros(accelerator, shape);
        using var m = Tensor.Zeros(accelerator, shape);
        using var v = Tensor.Zeros(accelerator, shape);
        using var xDevice = Tensor.Zeros(accelerator, shape);
        using var best = Tensor.FromHost(accelerator, x0, shape);
        using var bestLogits = Tensor.FromHost(accelerator, cleanLogits, [n, k]);
        using var dLogits = Tensor.Zeros(accelerator, [n, k]);
        using var classes = accelerator.Upload<int>(goal.Classes); // (N)
        using var cDevice = accelerator.Allocate<double>(n); // (N)
        using var squared = accelerator.Allocate<double>(n); // (N) scratch
        using var improved = accelerator.Allocate<int>(n); // (N) scratch
        using var succeeded = accelerator.Allocate<int>(n); // (N) this round
        using var roundBest = accelerator.Allocate<double>(n); // (N) this round's smallest squared L2
        using var overallBest = accelerator.Upload<double>(unreached); // (N) every round's smallest squared L2
        using var total = accelerator.Allocate<double>(1); // (1)
        var totalHost = new double[1];
        var succeededHost = new int[n];
        var roundBestHost = new double[n];
        for (int round = 0; round < options.BinarySearchSteps; round++)
        {
            w.CopyFrom(start);
            xDevice.CopyFrom(startImage);
            m.Zero();
            v.Zero();
            accelerator.CopyFromHost<double>(c, cDevice.View);
            accelerator.CopyFromHost<double>(unreached, roundBest.View);
            accelerator.Clear(succeeded.View);
            double previous = double.PositiveInfinity;
            for (int iteration = 0; iteration < options.MaxIterations; iteration++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var logits = classifier.LogitsTensor(xDevice);
                CarliniWagnerBookkeeping.Update(accelerator, cwShape, xDevice.View, original.View, logits.View, classes.View, cDevice.View, squared.View,
                    improved.View, succeeded.View, roundBest.View, overallBest.View, best.View, bestLogits.View, dLogits.View, total.View);
                if (options.AbortEarly && iteration % Math.Max(options.MaxIterations / 10, 1) == 0)
                {
                    accelerator.CopyToHost(total.View, totalHost);
                    if (totalHost[0] > previous * 0.9999)
                    {
                        break;
                    }
                    previous = totalHost[0];
                }
                var gradient = classifier.InputGradientTensor(dLogits);
                double t = iteration + 1;
                AttackKernels.CwAdamStep(accelerator, w.View, m.View, v.View, xDevice.View, original.View, gradient.View, (float)options.LearningRate,
                    (float)(1 - Math.Pow(Beta1, t)), (float)(1 - Math.Pow(Beta2, t)));
                progress?.Report(new AttackProgress("cw", round + 1, options.BinarySearchSteps, iteration + 1, options.MaxIterations));
            }
            accelerator.CopyToHost(succeeded.View, succeededHost);
            accelerator.CopyToHost(roundBest.View, roundBestHost);
            bool[] roundSucceeded = Array.ConvertAll(succeededHost, s => s != 0);
            history.Add(new CarliniWagnerRound((double[])c.Clone(), roundSucceeded, Array.ConvertAll(roundBestHost, Math.Sqrt)));
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
        return new AttackResult(best.Download(), (int[])shape.Clone(), goal.Labels, goal.Targets, cleanLogits, bestLogits.Download(), k).WithDistances(x0);
    }
}
