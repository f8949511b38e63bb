using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Profiling;

namespace IlgpuOct.Defense.Attacks;

/// <summary>The geometry of a C&amp;W batch: N images of Per pixels, K classes, the goal's kind and kappa.</summary>
public readonly record struct CarliniWagnerShape(int N, int Per, int Classes, bool Targeted, float Kappa)
{
    public int Pixels => N * Per;

    public void Validate()
    {
        if (N < 1 || Per < 1 || Classes < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(CarliniWagnerShape), $"{this}: N, Per and Classes must be >= 1.");
        }
        if ((long)N * Per > int.MaxValue || (long)N * Classes > int.MaxValue)
        {
            throw new ArgumentOutOfRangeException(nameof(CarliniWagnerShape), $"{this}: more than 2^31-1 pixels or logits; attack fewer images per batch.");
        }
    }
}

/// <summary>
/// One C&amp;W iteration's bookkeeping on the device, so that an iteration needs no host round trip:
/// from the iterate x (N, Per), the original x0 (N, Per) and the logits (N, K) it computes each
/// image's squared L2 distance, its margin f, the total loss sum_i (L2_i^2 + c_i max(f_i, -kappa))
/// into total (1), d(c f)/d logits into dLogits (N, K), and for images that succeeded (f &lt; -kappa)
/// the round's success flag and smallest squared L2 and, where the L2 beats every earlier round's,
/// the image and its logits into best (N, Per) and bestLogits (N, K). The host reads the total at the
/// abort-early checks, the round's flags and distances once per round, and the best images once per batch.
/// The CPU implementation is the loop the host ran before (the cpu engine and the kernels' reference).
/// </summary>
public static partial class CarliniWagnerBookkeeping
{
    private const int Threads = 256;

    private const int MaxBlocks = 1024;

    /// <summary>Cost model: a subtraction, product and sum per pixel (the distances), a few FLOPs per logit; reads x, x0 and the logits.</summary>
    public static OperatorCost Cost(in CarliniWagnerShape s) => new(3.0 * s.Pixels + 6.0 * s.N * s.Classes, 4.0 * (2.0 * s.Pixels + 3.0 * s.N * s.Classes));

    /// <summary>
    /// The iteration's bookkeeping (see the class). c, roundBestL2, overallBestL2 (N) in double; roundSucceeded (N) 0/1;
    /// squared and improved (N) are the kernels' scratch.
    /// </summary>
    public static void Update(Accelerator accelerator, CarliniWagnerShape s, View<float> x, View<float> x0, View<float> logits, View<int> classes,
        View<double> c, View<double> squared, View<int> improved, View<int> roundSucceeded, View<double> roundBestL2, View<double> overallBestL2,
        View<float> best, View<float> bestLogits, View<float> dLogits, View<double> total)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        s.Validate();
        foreach (var (length, name) in new[] { (x.Length, nameof(x)), (x0.Length, nameof(x0)), (best.Length, nameof(best)) })
        {
            RequireLength(length, s.Pixels, name, "(N, Per)");
        }
        foreach (var (length, name) in new[] { (logits.Length, nameof(logits)), (bestLogits.Length, nameof(bestLogits)), (dLogits.Length, nameof(dLogits)) })
        {
            RequireLength(length, s.N * s.Classes, name, "(N, Classes)");
        }
        foreach (var (length, name) in new[] { (classes.Length, nameof(classes)), (c.Length, nameof(c)), (squared.Length, nameof(squared)), (improved.Length, nameof(improved)),
            (roundSucceeded.Length, nameof(roundSucceeded)), (roundBestL2.Length, nameof(roundBestL2)), (overallBestL2.Length, nameof(overallBestL2)) })
        {
            RequireLength(length, s.N, name, "(N)");
        }
        RequireLength(total.Length, 1, nameof(total), "(1)");
        OperatorDispatch.Run(accelerator, "CarliniWagnerBookkeeping.Update", Cost(s),
            () => UpdateCpu(s, x.AsSpan(), x0.AsSpan(), logits.AsSpan(), classes.AsSpan(), c.AsSpan(), roundSucceeded.AsSpan(), roundBestL2.AsSpan(),
                overallBestL2.AsSpan(), best.AsSpan(), bestLogits.AsSpan(), dLogits.AsSpan(), total.AsSpan()),
            () =>
            {
                DistancesKernel.Launch(accelerator, new LaunchConfig(s.N, Threads), x, x0, squared, s.Per);
                RowsKernel.Launch(accelerator, new LaunchConfig(1, Threads), logits, classes, c, squared, improved, roundSucceeded, roundBestL2, overallBestL2,
                    bestLogits, dLogits, total, s.N, s.Classes, s.Targeted ? 1 : 0, s.Kappa);
                KeepBestKernel.Launch(accelerator, PixelsConfig(s.Pixels), x, improved, best, s.Per);
            });
    }

    /// <summary>The CPU implementation (see the class); roundSucceeded is 0/1 per image.</summary>
    public static void UpdateCpu(in CarliniWagnerShape s, ReadOnlySpan<float> x, ReadOnlySpan<float> x0, ReadOnlySpan<float> logits, ReadOnlySpan<int> classes,
        ReadOnlySpan<double> c, Span<int> roundSucceeded, Span<double> roundBestL2, Span<double> overallBestL2, Span<float> best, Span<float> bestLogits,
        Span<float> dLogits, Span<double> total)
    {
        s.Validate();
        int n = s.N, k = s.Classes, per = s.Per;
        dLogits.Clear();
        double sum = 0;
        var l2 = AttackMath.Distances(x, x0, n).L2;
        for (int i = 0; i < n; i++)
        {
            int cls = classes[i];
            var row = logits.Slice(i * k, k);
            var (margin, other) = AttackMath.CwMargin(row, cls, s.Targeted);
            double squared = (double)l2[i] * l2[i];
            sum += squared + c[i] * Math.Max(margin, -s.Kappa);
            if (margin > -s.Kappa)
            {
                float scale = (float)c[i];
                dLogits[i * k + other] += s.Targeted ? scale : -scale;
                dLogits[i * k + cls] += s.Targeted ? -scale : scale;
            }
            if (margin < -s.Kappa)
            {
                roundSucceeded[i] = 1;
                if (squared < roundBestL2[i])
                {
                    roundBestL2[i] = squared;
                }
                if (squared < overallBestL2[i])
                {
                    overallBestL2[i] = squared;
                    x.Slice(i * per, per).CopyTo(best.Slice(i * per, per));
                    row.CopyTo(bestLogits.Slice(i * k, k));
                }
            }
        }
        total[0] = sum;
    }

    // ---- Kernels ----

    /// <summary>One block per image: the squared L2 distance in double (tree sum), rounded through float as the host's distances are.</summary>
    [Kernel]
    private static void Distances(KernelContext ctx, View<float> x, View<float> x0, View<double> squared, int per)
    {
        var partial = ctx.Shared<double>(Threads);
        int t = ctx.ThreadIdx.X;
        int image = ctx.BlockIdx.X;
        int offset = image * per;
        double sum = 0.0;
        for (int j = t; j < per; j += Threads)
        {
            float d = x[offset + j] - x0[offset + j];
            sum += (double)d * d;
        }
        double total = BlockReduce.Sum(ctx, sum, partial);
        if (t == 0)
        {
            float l2 = (float)Math.Sqrt(total);
            squared[image] = (double)l2 * l2;
        }
    }

    /// <summary>
    /// One block, a thread per image: margin, loss term, d(c f)/d logits, the success bookkeeping and
    /// the improved flag; then thread 0 sums the terms in image order (the host's order).
    /// </summary>
    [Kernel]
    private static void Rows(KernelContext ctx, View<float> logits, View<int> classes, View<double> c, View<double> squared, View<int> improved,
        View<int> roundSucceeded, View<double> roundBestL2, View<double> overallBestL2, View<float> bestLogits, View<float> dLogits, View<double> total,
        int n, int k, int targeted, float kappa)
    {
        int t = ctx.ThreadIdx.X;
        for (int i = t; i < n; i += Threads)
        {
            int cls = classes[i];
            int row = i * k;
            float other = float.NegativeInfinity;
            int at = -1;
            for (int j = 0; j < k; j++)
            {
                float v = j == cls ? float.NegativeInfinity : logits[row + j];
                if (at < 0 || v > other)
                {
                    other = v;
                    at = j;
                }
            }
            float own = logits[row + cls];
            float margin = targeted != 0 ? other - own : own - other;
            double sq = squared[i];
            float clipped = margin < -kappa ? -kappa : margin;
            double term = sq + c[i] * clipped;
            for (int j = 0; j < k; j++)
            {
                dLogits[row + j] = 0f;
            }
            if (margin > -kappa)
            {
                float scale = (float)c[i];
                dLogits[row + at] += targeted != 0 ? scale : -scale;
                dLogits[row + cls] += targeted != 0 ? -scale : scale;
            }
            int better = 0;
            if (margin < -kappa)
            {
                roundSucceeded[i] = 1;
                if (sq < roundBestL2[i])
                {
                    roundBestL2[i] = sq;
                }
                if (sq < overallBestL2[i])
                {
                    overallBestL2[i] = sq;
                    better = 1;
                    for (int j = 0; j < k; j++)
                    {
                        bestLogits[row + j] = logits[row + j];
                    }
                }
            }
            improved[i] = better;
            squared[i] = term;
        }
        ctx.Barrier();
        if (t == 0)
        {
            double sum = 0.0;
            for (int i = 0; i < n; i++)
            {
                sum += squared[i];
            }
            total[0] = sum;
        }
    }

    /// <summary>Grid-stride copy of the iterate into best for the images whose L2 improved.</summary>
    [Kernel]
    private static void KeepBest(KernelContext ctx, View<float> x, View<int> improved, View<float> best, int per)
    {
        for (int i = ctx.GlobalX; i < x.Length; i += ctx.GridStrideX)
        {
            if (improved[i / per] != 0)
            {
                best[i] = x[i];
            }
        }
    }

    private static LaunchConfig PixelsConfig(int pixels) => new((int)Math.Clamp((pixels + (long)Threads - 1) / Threads, 1, MaxBlocks), Threads);

    private static void RequireLength(int actual, int expected, string name, string layout)
    {
        if (actual != expected)
        {
            throw new ArgumentException($"CarliniWagnerBookkeeping.Update: {name} holds {actual} elements where {layout} needs {expected}; allocate it for the batch's shape.", name);
        }
    }

    /// <summary>A C&amp;W batch of 64 one-channel 224 x 224 images, two classes.</summary>
    [LaunchShapes]
    private static IEnumerable<LaunchShape> LaunchShapes()
    {
        int n = ResNet18Shapes.Batch;
        int per = ResNet18Shapes.Resolution * ResNet18Shapes.Resolution;
        yield return new LaunchShape(DistancesKernel.Definition, "C&W batch 64x1x224x224", new LaunchConfig(n, Threads));
        yield return new LaunchShape(RowsKernel.Definition, "C&W batch 64x1x224x224", new LaunchConfig(1, Threads));
        yield return new LaunchShape(KeepBestKernel.Definition, "C&W batch 64x1x224x224", PixelsConfig(n * per));
    }

    // ---- Self-tests (ilgpuoct selftest) ----

    [SelfTests]
    private static IEnumerable<SelfTestCase> SelfTests()
    {
        foreach (var s in new[] { new CarliniWagnerShape(5, 37, 3, false, 0f), new CarliniWagnerShape(300, 16, 2, true, 0.5f), new CarliniWagnerShape(8, 1000, 10, false, 0f) })
        {
            yield return new SelfTestCase("CarliniWagnerBookkeeping.Update", $"({s.N},{s.Per},{s.Classes},{(s.Targeted ? "targeted" : "untargeted")})", (acc, seed) => Compare(acc, seed, s));
        }
    }

    /// <summary>Two iterations (the second sees the first's bests) on the device against the CPU implementation.</summary>
    public static SelfTestResult Compare(Accelerator accelerator, int seed, CarliniWagnerShape s)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        var random = new Random(seed);
        float[] Floats(int length, double scale) => [.. Enumerable.Range(0, length).Select(_ => (float)(random.NextDouble() * scale))];
        float[] x0 = Floats(s.Pixels, 1);
        float[][] xs = [Floats(s.Pixels, 1), Floats(s.Pixels, 1)];
        float[][] zs = [Floats(s.N * s.Classes, 4), Floats(s.N * s.Classes, 4)];
        int[] classes = [.. Enumerable.Range(0, s.N).Select(_ => random.Next(s.Classes))];
        double[] c = [.. Enumerable.Range(0, s.N).Select(_ => 0.01 + random.NextDouble())];
        // Host state.
        var succeeded = new int[s.N];
        double[] roundBest = [.. Enumerable.Repeat(double.PositiveInfinity, s.N)];
        double[] overallBest = [.. Enumerable.Range(0, s.N).Select(i => i % 3 == 0 ? 0.0 : double.PositiveInfinity)];
        float[] best = (float[])x0.Clone();
        var bestLogits = new float[s.N * s.Classes];
        var dLogits = new float[s.N * s.Classes];
        var total = new double[1];
        // Device state, from the same starting values.
        using var dX0 = accelerator.Upload<float>(x0);
        using var dX = accelerator.Allocate<float>(s.Pixels);
        using var dZ = accelerator.Allocate<float>(s.N * s.Classes);
        using var dClasses = accelerator.Upload<int>(classes);
        using var dC = accelerator.Upload<double>(c);
        using var dSquared = accelerator.Allocate<double>(s.N);
        using var dImproved = accelerator.Allocate<int>(s.N);
        using var dSucceeded = accelerator.Upload<int>(succeeded);
        using var dRoundBest = accelerator.Upload<double>(roundBest);
        using var dOverallBest = accelerator.Upload<double>(overallBest);
        using var dBest = accelerator.Upload<float>(best);
        using var dBestLogits = accelerator.Upload<float>(bestLogits);
        using var dDLogits = accelerator.Allocate<float>(s.N * s.Classes);
        using var dTotal = accelerator.Allocate<double>(1);
        double worst = 0;
        for (int iteration = 0; iteration < 2; iteration++)
        {
            UpdateCpu(s, xs[iteration], x0, zs[iteration], classes, c, succeeded, roundBest, overallBest, best, bestLogits, dLogits, total);
            accelerator.CopyFromHost<float>(xs[iteration], dX.View);
            accelerator.CopyFromHost<float>(zs[iteration], dZ.View);
            Update(accelerator, s, dX.View, dX0.View, dZ.View, dClasses.View, dC.View, dSquared.View, dImproved.View, dSucceeded.View, dRoundBest.View,
                dOverallBest.View, dBest.View, dBestLogits.View, dDLogits.View, dTotal.View);
            accelerator.Synchronize();
            worst = Math.Max(worst, Relative(accelerator.Download(dTotal.View)[0], total[0]));
            worst = Math.Max(worst, SelfTestCatalog.MaxAbsDifference(accelerator.Download(dDLogits.View), dLogits));
            worst = Math.Max(worst, SelfTestCatalog.MaxAbsDifference(accelerator.Download(dBest.View), best));
            worst = Math.Max(worst, SelfTestCatalog.MaxAbsDifference(accelerator.Download(dBestLogits.View), bestLogits));
            worst = Math.Max(worst, accelerator.Download(dSucceeded.View).Zip(succeeded, (a, e) => (double)Math.Abs(a - e)).Max());
            worst = Math.Max(worst, accelerator.Download(dRoundBest.View).Zip(roundBest, Relative).Max());
            worst = Math.Max(worst, accelerator.Download(dOverallBest.View).Zip(overallBest, Relative).Max());
        }
        return new SelfTestResult(worst, 1e-6);
    }

    /// <summary>|a - e| / max(1, |e|), 0 where both are the same infinity.</summary>
    private static double Relative(double actual, double expected) =>
        actual == expected ? 0 : Math.Abs(actual - expected) / Math.Max(1, Math.Abs(expected));
}
