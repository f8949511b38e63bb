using IlgpuOct.Defense.Attacks;
using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Operators;
using IlgpuOct.Kernels.Profiling;
using IlgpuOct.Nn;

namespace IlgpuOct.Defense.Training;

/// <summary>The geometry of an SSAT step: B labeled and U unlabeled images, K classes.</summary>
public readonly record struct SemiSupervisedShape(int Labeled, int Unlabeled, int Classes)
{
    public int Rows => Labeled + Unlabeled;

    public void Validate()
    {
        if (Labeled < 1 || Unlabeled < 1 || Classes < 1 || (long)Rows * Classes > int.MaxValue)
        {
            throw new ArgumentOutOfRangeException(nameof(SemiSupervisedShape), $"{this}: Labeled, Unlabeled and Classes must be >= 1 and (B + U) K below 2^31.");
        }
    }
}

/// <summary>
/// SSAT's per-step bookkeeping on the device, so that a step needs no host round trip.
/// <see cref="PseudoLabels"/>: each row's arg max (ties to the lowest index, as <see cref="Accuracy.ArgMax"/>)
/// and whether its softmax probability reaches the threshold. <see cref="Loss"/>: over the joint logits
/// (B + U, K), L = scale (L_sup + lambda L_unsup), L_sup the mean cross-entropy of the labeled rows,
/// L_unsup the cross-entropy of the confident unlabeled rows against their pseudo-labels summed and
/// divided by U; dL/dz, with the unconfident rows' gradient 0; and (L_sup, L_unsup, confident count).
/// The cross-entropy is the CrossEntropy operator's; the CPU implementation is the host code the
/// step ran before (the cpu engine and the kernels' reference).
/// </summary>
public static partial class SemiSupervisedBookkeeping
{
    private const int Threads = 256;

    private const int MaxBlocks = 1024;

    /// <summary>Entries of the parts buffer: L_sup, L_unsup, confident count.</summary>
    public const int PartsLength = 3;

    /// <summary>Pseudo-labels (N) and confident flags (N, 0/1) of logits (N, K).</summary>
    public static void PseudoLabels(Accelerator accelerator, LogitsShape s, View<float> logits, View<int> labels, View<int> confident, float threshold)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        s.Validate();
        RequireLength(logits.Length, s.Length, nameof(logits), "(N, K)");
        RequireLength(labels.Length, s.N, nameof(labels), "(N)");
        RequireLength(confident.Length, s.N, nameof(confident), "(N)");
        OperatorDispatch.Run(accelerator, "SemiSupervisedBookkeeping.PseudoLabels", OperatorCost.Elementwise(s.Length, 4, reads: 1, writes: 0),
            () => PseudoLabelsCpu(s, logits.AsSpan(), labels.AsSpan(), confident.AsSpan(), threshold),
            () => PseudoLabelRowsKernel.Launch(accelerator, RowsConfig(s.N), logits, labels, confident, s.N, s.Classes, threshold));
    }

    /// <summary>
    /// The step's loss into <paramref name="loss"/> (1), dL/dz into <paramref name="dLogits"/> (B + U, K) and
    /// (L_sup, L_unsup, confident count) into <paramref name="parts"/> (3). logits (B + U, K), labels (B),
    /// pseudo and confident (U); rowLoss (B + U) is scratch.
    /// </summary>
    public static void Loss(Accelerator accelerator, SemiSupervisedShape s, View<float> logits, View<int> labels, View<int> pseudo, View<int> confident,
        float lambda, float scale, View<float> rowLoss, View<float> dLogits, View<float> loss, View<double> parts)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        s.Validate();
        int b = s.Labeled, u = s.Unlabeled, k = s.Classes;
        RequireLength(logits.Length, s.Rows * k, nameof(logits), "(B + U, K)");
        RequireLength(dLogits.Length, s.Rows * k, nameof(dLogits), "(B + U, K)");
        RequireLength(labels.Length, b, nameof(labels), "(B)");
        RequireLength(pseudo.Length, u, nameof(pseudo), "(U)");
        RequireLength(confident.Length, u, nameof(confident), "(U)");
        RequireLength(rowLoss.Length, s.Rows, nameof(rowLoss), "(B + U)");
        RequireLength(loss.Length, 1, nameof(loss), "(1)");
        RequireLength(parts.Length, PartsLength, nameof(parts), "(3)");
        float supScale = scale / b;
        float unsupScale = scale * lambda / u;
        OperatorDispatch.Run(accelerator, "SemiSupervisedBookkeeping.Loss", OperatorCost.Elementwise(3L * s.Rows * k, 8, reads: 2, writes: 1),
            () => LossCpu(s, logits.AsSpan(), labels.AsSpan(), pseudo.AsSpan(), confident.AsSpan(), lambda, scale, dLogits.AsSpan(), loss.AsSpan(), parts.AsSpan()),
            () =>
            {
                // Each part's gradient as the CrossEntropy operator's sum, scaled; each row's loss by itself (the sums below weigh them).
                var labeledZ = logits.Slice(0, b * k);
                var unlabeledZ = logits.Slice(b * k, u * k);
                CrossEntropy.Compute(accelerator, new LogitsShape(b, k), labeledZ, labels, rowLoss.Slice(0, 1), dLogits.Slice(0, b * k), LossReduction.Sum);
                CrossEntropy.Compute(accelerator, new LogitsShape(u, k), unlabeledZ, pseudo, rowLoss.Slice(b, 1), dLogits.Slice(b * k, u * k), LossReduction.Sum);
                Elementwise.Scale(accelerator, supScale, dLogits.Slice(0, b * k), dLogits.Slice(0, b * k));
                Elementwise.Scale(accelerator, unsupScale, dLogits.Slice(b * k, u * k), dLogits.Slice(b * k, u * k));
                for (int i = 0; i < s.Rows; i++)
                {
                    var classes = i < b ? labels.Slice(i, 1) : pseudo.Slice(i - b, 1);
                    CrossEntropy.Compute(accelerator, new LogitsShape(1, k), logits.Slice(i * k, k), classes, rowLoss.Slice(i, 1), default, LossReduction.Sum);
                }
                CombineKernel.Launch(accelerator, new LaunchConfig(1, Threads), rowLoss, confident, dLogits, loss, parts, b, u, k, lambda, scale);
            });
    }

    /// <summary>The CPU implementation of <see cref="PseudoLabels"/>.</summary>
    public static void PseudoLabelsCpu(in LogitsShape s, ReadOnlySpan<float> logits, Span<int> labels, Span<int> confident, float threshold)
    {
        int k = s.Classes;
        Accuracy.ArgMax(logits, s.N, k).CopyTo(labels);
        for (int i = 0; i < s.N; i++)
        {
            var row = logits.Slice(i * k, k);
            float max = float.NegativeInfinity;
            foreach (float z in row)
            {
                max = MathF.Max(max, z);
            }
            double sum = 0;
            foreach (float z in row)
            {
                sum += Math.Exp(z - max);
            }
            confident[i] = 1.0 / sum >= threshold ? 1 : 0;
        }
    }

    /// <summary>The CPU implementation of <see cref="Loss"/>.</summary>
    public static void LossCpu(in SemiSupervisedShape s, ReadOnlySpan<float> z, ReadOnlySpan<int> labels, ReadOnlySpan<int> pseudo, ReadOnlySpan<int> confident,
        float lambda, float scale, Span<float> dz, Span<float> loss, Span<double> parts)
    {
        int b = s.Labeled, u = s.Unlabeled, k = s.Classes;
        double[] sup = AttackMath.CrossEntropySum(z[..(b * k)], labels, b, k, dz[..(b * k)], scale / b);
        double[] unsup = AttackMath.CrossEntropySum(z.Slice(b * k, u * k), pseudo, u, k, dz.Slice(b * k, u * k), scale * lambda / u);
        double supMean = sup.Sum() / b;
        int count = 0;
        for (int i = 0; i < u; i++)
        {
            if (confident[i] == 0)
            {
                unsup[i] = 0;
                dz.Slice((b + i) * k, k).Clear();
            }
            else
            {
                count++;
            }
        }
        double unsupMean = unsup.Sum() / u;
        loss[0] = (float)(scale * (supMean + lambda * unsupMean));
        parts[0] = supMean;
        parts[1] = unsupMean;
        parts[2] = count;
    }

    // ---- Kernels ----

    /// <summary>One thread per row: the arg max and the softmax probability of the largest logit, in double.</summary>
    [Kernel]
    private static void PseudoLabelRows(KernelContext ctx, View<float> logits, View<int> labels, View<int> confident, int rows, int classes, float threshold)
    {
        for (int i = ctx.GlobalX; i < rows; i += ctx.GridStrideX)
        {
            int row = i * classes;
            int best = 0;
            float max = logits[row];
            for (int j = 1; j < classes; j++)
            {
                float z = logits[row + j];
                if (z > logits[row + best])
                {
                    best = j;
                }
                max = Math.Max(max, z);
            }
            double sum = 0.0;
            for (int j = 0; j < classes; j++)
            {
                sum += Math.Exp(logits[row + j] - max);
            }
            labels[i] = best;
            confident[i] = 1.0 / sum >= threshold ? 1 : 0;
        }
    }

    /// <summary>One block: clears the unconfident unlabeled rows' gradient; thread 0 sums the row losses in row order.</summary>
    [Kernel]
    private static void Combine(KernelContext ctx, View<float> rowLoss, View<int> confident, View<float> dLogits, View<float> loss, View<double> parts,
        int labeled, int unlabeled, int classes, float lambda, float scale)
    {
        int t = ctx.ThreadIdx.X;
        for (int e = t; e < unlabeled * classes; e += Threads)
        {
            if (confident[e / classes] == 0)
            {
                dLogits[labeled * classes + e] = 0f;
            }
        }
        if (t == 0)
        {
            double sup = 0.0;
            for (int i = 0; i < labeled; i++)
            {
                sup += rowLoss[i];
            }
            double unsup = 0.0;
            int count = 0;
            for (int i = 0; i < unlabeled; i++)
            {
                if (confident[i] != 0)
                {
                    unsup += rowLoss[labeled + i];
                    count++;
                }
            }
            double supMean = sup / labeled;
            double unsupMean = unsup / unlabeled;
            loss[0] = (float)(scale * (supMean + lambda * unsupMean));
            parts[0] = supMean;
            parts[1] = unsupMean;
            parts[2] = count;
        }
    }

    private static LaunchConfig RowsConfig(int rows) => new((int)Math.Clamp((rows + (long)Threads - 1) / Threads, 1, MaxBlocks), Threads);

    private static void RequireLength(int actual, int expected, string name, string layout)
    {
        if (actual != expected)
        {
            throw new ArgumentException($"SemiSupervisedBookkeeping: {name} holds {actual} elements where {layout} needs {expected}; allocate it for the step's shape.", name);
        }
    }

    /// <summary>An SSAT step of 64 labeled and 64 unlabeled images, two classes.</summary>
    [LaunchShapes]
    private static IEnumerable<LaunchShape> LaunchShapes()
    {
        int n = ResNet18Shapes.Batch;
        yield return new LaunchShape(PseudoLabelRowsKernel.Definition, "SSAT 64 unlabeled, 2 classes", RowsConfig(n));
        yield return new LaunchShape(CombineKernel.Definition, "SSAT 64 + 64, 2 classes", new LaunchConfig(1, Threads));
    }

    // ---- Self-tests (ilgpuoct selftest) ----

    [SelfTests]
    private static IEnumerable<SelfTestCase> SelfTests()
    {
        foreach (var (s, threshold) in new[] { (new SemiSupervisedShape(4, 4, 2), 0f), (new SemiSupervisedShape(5, 300, 3), 0.6f), (new SemiSupervisedShape(64, 32, 10), 0.3f) })
        {
            yield return new SelfTestCase("SemiSupervisedBookkeeping.Loss", $"({s.Labeled},{s.Unlabeled},{s.Classes},t={threshold})", (acc, seed) => Compare(acc, seed, s, threshold));
        }
    }

    /// <summary>Pseudo-labels of the unlabeled rows, then the loss, on the device against the CPU implementation.</summary>
    public static SelfTestResult Compare(Accelerator accelerator, int seed, SemiSupervisedShape s, float threshold)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        var random = new Random(seed);
        int b = s.Labeled, u = s.Unlabeled, k = s.Classes;
        float[] z = [.. Enumerable.Range(0, s.Rows * k).Select(_ => (float)(random.NextDouble() * 6 - 3))];
        int[] labels = [.. Enumerable.Range(0, b).Select(_ => random.Next(k))];
        var unlabeledShape = new LogitsShape(u, k);
        var pseudo = new int[u];
        var confident = new int[u];
        PseudoLabelsCpu(unlabeledShape, z.AsSpan(b * k), pseudo, confident, threshold);
        var dz = new float[s.Rows * k];
        var loss = new float[1];
        var parts = new double[PartsLength];
        LossCpu(s, z, labels, pseudo, confident, 5f, 1f / 6f, dz, loss, parts);

        using var dZ = accelerator.Upload<float>(z);
        using var dLabels = accelerator.Upload<int>(labels);
        using var dPseudo = accelerator.Allocate<int>(u);
        using var dConfident = accelerator.Allocate<int>(u);
        using var dRowLoss = accelerator.Allocate<float>(s.Rows);
        using var dDz = accelerator.Allocate<float>(s.Rows * k);
        using var dLoss = accelerator.Allocate<float>(1);
        using var dParts = accelerator.Allocate<double>(PartsLength);
        PseudoLabels(accelerator, unlabeledShape, dZ.View.Slice(b * k, u * k), dPseudo.View, dConfident.View, threshold);
        Loss(accelerator, s, dZ.View, dLabels.View, dPseudo.View, dConfident.View, 5f, 1f / 6f, dRowLoss.View, dDz.View, dLoss.View, dParts.View);
        accelerator.Synchronize();
        double worst = 0;
        worst = Math.Max(worst, accelerator.Download(dPseudo.View).Zip(pseudo, (a, e) => (double)Math.Abs(a - e)).Max());
        worst = Math.Max(worst, accelerator.Download(dConfident.View).Zip(confident, (a, e) => (double)Math.Abs(a - e)).Max());
        worst = Math.Max(worst, SelfTestCatalog.MaxAbsDifference(accelerator.Download(dDz.View), dz));
        worst = Math.Max(worst, SelfTestCatalog.MaxAbsDifference(accelerator.Download(dLoss.View), loss));
        worst = Math.Max(worst, accelerator.Download(dParts.View).Zip(parts, (a, e) => Math.Abs(a - e) / Math.Max(1, Math.Abs(e))).Max());
        return new SelfTestResult(worst, 1e-6);
    }
}
