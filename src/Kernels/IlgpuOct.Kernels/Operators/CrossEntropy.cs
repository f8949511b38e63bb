using IlgpuOct.Kernels.Profiling;

namespace IlgpuOct.Kernels.Operators;

/// <summary>The geometry of a classification loss: logits and dlogits (N, Classes), labels (N).</summary>
public readonly record struct LogitsShape(int N, int Classes)
{
    public int Length => N * Classes;

    public void Validate()
    {
        if (N < 1 || Classes < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(LogitsShape), $"{this}: N and Classes must be >= 1.");
        }
        if ((long)N * Classes > int.MaxValue)
        {
            throw new ArgumentOutOfRangeException(nameof(LogitsShape), $"{this}: more than 2^31-1 logits.");
        }
    }
}

/// <summary>How per-sample losses combine into the scalar loss (and so the scale of the gradient).</summary>
public enum LossReduction
{
    /// <summary>Mean over the batch (PyTorch's default; training).</summary>
    Mean,

    /// <summary>Sum over the batch (the attacks' objective).</summary>
    Sum,
}

/// <summary>
/// Softmax cross-entropy with integer labels: loss_i = logsumexp(z_i) - z_i[y_i], dz = softmax(z) - onehot(y),
/// both scaled by 1/N for the mean. Each row is evaluated in double with the maximum subtracted, so
/// large logits neither overflow nor lose the small probabilities.
/// </summary>
public static partial class CrossEntropy
{
    /// <summary>Cost model: max, exp, sum, log and the gradient are about 6 FLOPs per logit; reads the logits, writes their gradient.</summary>
    public static OperatorCost Cost(in LogitsShape s) => OperatorCost.Elementwise(s.Length, 6, reads: 1, writes: 1);

    /// <summary>
    /// Loss into <paramref name="loss"/> (1) and, unless <paramref name="dlogits"/> is empty, its gradient (N, Classes).
    /// logits (N, Classes), labels (N) in [0, Classes).
    /// </summary>
    public static void Compute(Accelerator accelerator, LogitsShape s, View<float> logits, View<int> labels, View<float> loss, View<float> dlogits,
        LossReduction reduction = LossReduction.Mean)
    {
        OperatorDispatch.Run(accelerator, "CrossEntropy.Compute", Cost(s),
            () =>
            {
                RequireLength(loss.Length, 1, nameof(loss), "(1)");
                loss.AsSpan()[0] = ComputeCpu(s, logits.AsSpan(), labels.AsSpan(), dlogits.AsSpan(), reduction);
            },
            () => ComputeKernels(accelerator, s, logits, labels, loss, dlogits, reduction));
    }

    /// <summary>
    /// Returns the loss; writes d loss / d logits into <paramref name="dlogits"/> (N, Classes) unless it is empty.
    /// logits (N, Classes), labels (N) in [0, Classes).
    /// </summary>
    public static float ComputeCpu(in LogitsShape s, ReadOnlySpan<float> logits, ReadOnlySpan<int> labels, Span<float> dlogits,
        LossReduction reduction = LossReduction.Mean)
    {
        s.Validate();
        RequireLength(logits.Length, s.Length, nameof(logits), "(N, Classes)");
        RequireLength(labels.Length, s.N, nameof(labels), "(N)");
        if (!dlogits.IsEmpty)
        {
            RequireLength(dlogits.Length, s.Length, nameof(dlogits), "(N, Classes)");
        }
        int k = s.Classes;
        double scale = reduction == LossReduction.Mean ? 1.0 / s.N : 1.0;
        double total = 0;
        for (int i = 0; i < s.N; i++)
        {
            int label = labels[i];
            RequireLabel(label, i, k);
            var row = logits.Slice(i * k, k);
            double max = double.NegativeInfinity;
            for (int j = 0; j < k; j++)
            {
                max = Math.Max(max, row[j]);
            }
            double sumExp = 0;
            for (int j = 0; j < k; j++)
            {
                sumExp += Math.Exp(row[j] - max);
            }
            double logSumExp = max + Math.Log(sumExp);
            total += logSumExp - row[label];
            if (!dlogits.IsEmpty)
            {
                var grad = dlogits.Slice(i * k, k);
                for (int j = 0; j < k; j++)
                {
                    double p = Math.Exp(row[j] - logSumExp);
                    grad[j] = (float)((p - (j == label ? 1.0 : 0.0)) * scale);
                }
            }
        }
        return (float)(total * scale);
    }

    internal static void RequireLabel(int label, int row, int classes)
    {
        if ((uint)label >= (uint)classes)
        {
            throw new ArgumentOutOfRangeException(nameof(label), $"Label {label} of row {row} lies outside [0, {classes}); the labels must index the logits' classes.");
        }
    }

    private static void RequireLength(int actual, int expected, string name, string layout) =>
        ShapeCheck.RequireLength("CrossEntropy", nameof(LogitsShape), actual, expected, name, layout);

    // ---- Kernels ----
    //
    // One block: each thread takes rows (classes are few, so a row is one thread's loop in double),
    // then the block sums the row losses in shared memory in a fixed order. A label outside
    // [0, Classes) makes the loss NaN (kernels cannot throw) and leaves that row's gradient at 0.

    internal const int LossThreads = 256;

    /// <summary>One block sums the loss over every row (deterministic order); the loss kernels of this file and GuidedComplementEntropy use it.</summary>
    internal static LaunchConfig RowsConfig => new(new Dim3(1), new Dim3(LossThreads));

    [LaunchShapes]
    private static IEnumerable<LaunchShape> LaunchShapes()
    {
        yield return new LaunchShape(CrossEntropyRowsKernel.Definition, "loss", RowsConfig);
    }

    [Kernel]
    private static void CrossEntropyRows(KernelContext ctx, View<float> logits, View<int> labels, View<float> loss, View<float> dlogits,
        int rows, int classes, float scale, int writeGradient)
    {
        var partial = ctx.Shared<double>(LossThreads);
        int t = ctx.ThreadIdx.X;
        double total = 0.0;
        for (int i = t; i < rows; i += LossThreads)
        {
            int label = labels[i];
            int row = i * classes;
            double max = logits[row];
            for (int j = 1; j < classes; j++)
            {
                max = Math.Max(max, (double)logits[row + j]);
            }
            double sumExp = 0.0;
            for (int j = 0; j < classes; j++)
            {
                sumExp += Math.Exp(logits[row + j] - max);
            }
            double logSumExp = max + Math.Log(sumExp);
            bool valid = label >= 0 && label < classes;
            total += valid ? logSumExp - logits[row + label] : double.NaN;
            if (writeGradient != 0)
            {
                for (int j = 0; j < classes; j++)
                {
                    double p = Math.Exp(logits[row + j] - logSumExp);
                    dlogits[row + j] = valid ? (float)((p - (j == label ? 1.0 : 0.0)) * scale) : 0f;
                }
            }
        }
        double blockTotal = BlockReduce.Sum(ctx, total, partial);
        if (t == 0)
        {
            loss[0] = (float)(blockTotal * scale);
        }
    }

    private static void ComputeKernels(Accelerator accelerator, in LogitsShape s, View<float> logits, View<int> labels, View<float> loss, View<float> dlogits, LossReduction reduction)
    {
        s.Validate();
        RequireLength(logits.Length, s.Length, nameof(logits), "(N, Classes)");
        RequireLength(labels.Length, s.N, nameof(labels), "(N)");
        RequireLength(loss.Length, 1, nameof(loss), "(1)");
        bool gradient = dlogits.Length != 0;
        if (gradient)
        {
            RequireLength(dlogits.Length, s.Length, nameof(dlogits), "(N, Classes)");
        }
        float scale = reduction == LossReduction.Mean ? 1f / s.N : 1f;
        CrossEntropyRowsKernel.Launch(accelerator, RowsConfig, logits, labels, loss, gradient ? dlogits : logits,
            s.N, s.Classes, scale, gradient ? 1 : 0);
    }

    // ---- Self-tests (ilgpuoct selftest) ----

    [SelfTests]
    private static IEnumerable<SelfTestCase> SelfTests()
    {
        foreach (var s in new[] { new LogitsShape(7, 4), new LogitsShape(300, 2), new LogitsShape(64, 10) })
        {
            string shape = $"({s.N},{s.Classes})";
            yield return new SelfTestCase("CrossEntropy.Compute", shape, (acc, seed) => CompareLoss(acc, seed, s, guided: false));
        }
    }

    /// <summary>Loss and gradient of either loss on the device against the CPU (shared with GuidedComplementEntropy).</summary>
    internal static SelfTestResult CompareLoss(Accelerator accelerator, int seed, LogitsShape s, bool guided)
    {
        float[] logits = OperatorSelfTest.Random(seed, s.Length, 6f);
        var random = new Random(seed + 1);
        var labels = new int[s.N];
        for (int i = 0; i < labels.Length; i++)
        {
            labels[i] = random.Next(s.Classes);
        }
        var dlogits = new float[s.Length];
        float loss = guided ? GuidedComplementEntropy.ComputeCpu(s, logits, labels, dlogits) : ComputeCpu(s, logits, labels, dlogits);
        using var dLogits = accelerator.Upload<float>(logits);
        using var dLabels = accelerator.Upload<int>(labels);
        using var dLoss = accelerator.Allocate<float>(1);
        using var dGrad = accelerator.Allocate<float>(s.Length);
        if (guided)
        {
            GuidedComplementEntropy.Compute(accelerator, s, dLogits.View, dLabels.View, dLoss.View, dGrad.View);
        }
        else
        {
            Compute(accelerator, s, dLogits.View, dLabels.View, dLoss.View, dGrad.View);
        }
        accelerator.Synchronize();
        double worst = Math.Max(SelfTestCatalog.MaxAbsDifference(accelerator.Download(dLoss.View), [loss]),
            SelfTestCatalog.MaxAbsDifference(accelerator.Download(dGrad.View), dlogits));
        return new SelfTestResult(worst, 1e-5 * Math.Max(1f, Math.Abs(loss)));
    }
}
