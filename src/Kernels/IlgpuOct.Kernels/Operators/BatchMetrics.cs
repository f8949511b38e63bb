using IlgpuOct.Kernels.Profiling;

namespace IlgpuOct.Kernels.Operators;

/// <summary>
/// A training step's running metrics, kept on the device so that a step needs no host round trip:
/// totals[0] += mean loss x N (the batch's loss sum, in double) and totals[1] += the number of rows
/// whose arg max (ties to the lowest index, as torch.argmax) equals the label. The host reads the
/// two doubles once per epoch or progress report. Adding loss x N in double is exact (a float times
/// an integer below 2^29 fits in 53 bits), so the totals equal the host's running sums bit for bit.
/// </summary>
public static partial class BatchMetrics
{
    /// <summary>Threads of the one block; the shared count array is sized for exactly this.</summary>
    internal const int Threads = 256;

    /// <summary>Slots of the totals view: [loss sum, correct count].</summary>
    public const int TotalsLength = 2;

    /// <summary>Cost model: a compare per logit, one read of the logits and labels.</summary>
    public static OperatorCost Cost(in LogitsShape s) => OperatorCost.Elementwise(s.Length, 1, reads: 1, writes: 0);

    /// <summary>
    /// totals (2) += (loss[0] x N, correct rows). logits (N, Classes), labels (N), loss (1): the batch's mean loss.
    /// </summary>
    public static void Accumulate(Accelerator accelerator, LogitsShape s, View<float> logits, View<int> labels, View<float> loss, View<double> totals)
    {
        s.Validate();
        RequireLength(logits.Length, s.Length, nameof(logits), "(N, Classes)");
        RequireLength(labels.Length, s.N, nameof(labels), "(N)");
        RequireLength(loss.Length, 1, nameof(loss), "(1)");
        RequireLength(totals.Length, TotalsLength, nameof(totals), "(2): loss sum, correct count");
        OperatorDispatch.Run(accelerator, "BatchMetrics.Accumulate", Cost(s),
            () => AccumulateCpu(s, logits.AsSpan(), labels.AsSpan(), loss.AsSpan()[0], totals.AsSpan()),
            () => AccumulateRowsKernel.Launch(accelerator, new LaunchConfig(new Dim3(1), new Dim3(Threads)), logits, labels, loss, totals, s.N, s.Classes));
    }

    /// <summary>The CPU implementation: the same sums the host kept before they moved to the device.</summary>
    public static void AccumulateCpu(in LogitsShape s, ReadOnlySpan<float> logits, ReadOnlySpan<int> labels, float meanLoss, Span<double> totals)
    {
        s.Validate();
        RequireLength(logits.Length, s.Length, nameof(logits), "(N, Classes)");
        RequireLength(labels.Length, s.N, nameof(labels), "(N)");
        RequireLength(totals.Length, TotalsLength, nameof(totals), "(2): loss sum, correct count");
        int k = s.Classes;
        int correct = 0;
        for (int i = 0; i < s.N; i++)
        {
            var row = logits.Slice(i * k, k);
            int best = 0;
            for (int j = 1; j < k; j++)
            {
                if (row[j] > row[best])
                {
                    best = j;
                }
            }
            correct += best == labels[i] ? 1 : 0;
        }
        totals[0] += (double)meanLoss * s.N;
        totals[1] += correct;
    }

    private static void RequireLength(int actual, int expected, string name, string layout) =>
        ShapeCheck.RequireLength("BatchMetrics", nameof(LogitsShape), actual, expected, name, layout);

    // ---- Kernel ----
    //
    // One block: each thread takes rows (classes are few), the block sums the counts in shared
    // memory, thread 0 adds to the totals. Integer counts, so the order does not matter.

    [Kernel]
    private static void AccumulateRows(KernelContext ctx, View<float> logits, View<int> labels, View<float> loss, View<double> totals, int rows, int classes)
    {
        var partial = ctx.Shared<double>(Threads);
        int t = ctx.ThreadIdx.X;
        int correct = 0;
        for (int i = t; i < rows; i += Threads)
        {
            int row = i * classes;
            int best = 0;
            for (int j = 1; j < classes; j++)
            {
                if (logits[row + j] > logits[row + best])
                {
                    best = j;
                }
            }
            correct += best == labels[i] ? 1 : 0;
        }
        double correctTotal = BlockReduce.Sum(ctx, (double)correct, partial);
        if (t == 0)
        {
            totals[0] = totals[0] + (double)loss[0] * rows;
            totals[1] = totals[1] + correctTotal;
        }
    }

    [LaunchShapes]
    private static IEnumerable<LaunchShape> LaunchShapes()
    {
        yield return new LaunchShape(AccumulateRowsKernel.Definition, "training step metrics", new LaunchConfig(new Dim3(1), new Dim3(Threads)));
    }

    // ---- Self-tests (ilgpuoct selftest) ----

    [SelfTests]
    private static IEnumerable<SelfTestCase> SelfTests()
    {
        foreach (var s in new[] { new LogitsShape(7, 4), new LogitsShape(300, 2), new LogitsShape(64, 10) })
        {
            yield return new SelfTestCase("BatchMetrics.Accumulate", $"({s.N},{s.Classes})", (acc, seed) => Compare(acc, seed, s));
        }
    }

    /// <summary>Two accumulations on the device against the CPU; the sums must agree exactly.</summary>
    internal static SelfTestResult Compare(Accelerator accelerator, int seed, LogitsShape s)
    {
        float[] logits = OperatorSelfTest.Random(seed, s.Length, 6f);
        var random = new Random(seed + 1);
        var labels = new int[s.N];
        for (int i = 0; i < labels.Length; i++)
        {
            labels[i] = random.Next(s.Classes);
        }
        float[] losses = [(float)random.NextDouble() * 3f, (float)random.NextDouble() * 3f];
        double[] expected = [0.5, 3];
        using var dLogits = accelerator.Upload<float>(logits);
        using var dLabels = accelerator.Upload<int>(labels);
        using var dLoss = accelerator.Allocate<float>(1);
        using var dTotals = accelerator.Upload<double>(expected);
        foreach (float loss in losses)
        {
            AccumulateCpu(s, logits, labels, loss, expected);
            accelerator.CopyFromHost<float>([loss], dLoss.View);
            Accumulate(accelerator, s, dLogits.View, dLabels.View, dLoss.View, dTotals.View);
        }
        accelerator.Synchronize();
        double[] actual = accelerator.Download(dTotals.View);
        double worst = Math.Max(Math.Abs(actual[0] - expected[0]), Math.Abs(actual[1] - expected[1]));
        return new SelfTestResult(worst, 0);
    }
}
