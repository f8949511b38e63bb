using IlgpuOct.Kernels.Profiling;

namespace IlgpuOct.Kernels.Operators;

/// <summary>
/// Guided complement entropy (Chen et al., alpha = 1/3), as in the golden reference:
/// p = softmax(z); q_j = p_j / (1 - p_y + 1e-7) for j != y;
/// loss_i = (p_y + 1e-7)^alpha * sum_{j != y} q_j log(q_j + 1e-10) / log(K - 1), averaged (or summed) over rows.
/// The normaliser log(K - 1) is zero for two classes, so the loss needs K >= 3.
/// </summary>
/// <remarks>
/// Gradient, per row, with s = 1 - p_y + d (d = 1e-7), w = (p_y + d)^alpha, f(q) = q log(q + e)
/// (e = 1e-10), f'(q) = log(q + e) + q / (q + e), H = sum_{j != y} f(q_j), c = scale / log(K - 1):
///   dL/dp_j = c w f'(q_j) / s                                       (j != y)
///   dL/dp_y = c (alpha (p_y + d)^(alpha - 1) H + w sum_{j != y} f'(q_j) q_j / s)
/// (q_j depends on p_y through s: dq_j/dp_y = q_j / s), and through the softmax
///   dL/dz_k = p_k (dL/dp_k - sum_j p_j dL/dp_j).
/// </remarks>
public static partial class GuidedComplementEntropy
{
    public const double Alpha = 1.0 / 3.0;

    /// <summary>Guards 1 - p_y and p_y against zero, as the reference does.</summary>
    public const double ProbabilityGuard = 1e-7;

    /// <summary>Guards log(q) against zero, as the reference does.</summary>
    public const double LogGuard = 1e-10;

    /// <summary>
    /// Loss into <paramref name="loss"/> (1) and, unless <paramref name="dlogits"/> is empty, its gradient (N, Classes).
    /// logits (N, Classes), labels (N) in [0, Classes), Classes >= 3.
    /// </summary>
    public static void Compute(Accelerator accelerator, LogitsShape s, View<float> logits, View<int> labels, View<float> loss, View<float> dlogits,
        LossReduction reduction = LossReduction.Mean)
    {
        OperatorDispatch.Run(accelerator, "GuidedComplementEntropy.Compute", CrossEntropy.Cost(s),
            () =>
            {
                RequireLength(loss.Length, 1, nameof(loss), "(1)");
                loss.AsSpan()[0] = ComputeCpu(s, logits.AsSpan(), labels.AsSpan(), dlogits.AsSpan(), reduction);
            },
            () => ComputeKernels(accelerator, s, logits, labels, loss, dlogits, reduction));
    }

    /// <summary>
    /// Returns the loss; writes d loss / d logits into <paramref name="dlogits"/> (N, Classes) unless it is empty.
    /// Each row is evaluated in double.
    /// </summary>
    public static float ComputeCpu(in LogitsShape s, ReadOnlySpan<float> logits, ReadOnlySpan<int> labels, Span<float> dlogits,
        LossReduction reduction = LossReduction.Mean)
    {
        s.Validate();
        RequireClasses(s.Classes);
        RequireLength(logits.Length, s.Length, nameof(logits), "(N, Classes)");
        RequireLength(labels.Length, s.N, nameof(labels), "(N)");
        if (!dlogits.IsEmpty)
        {
            RequireLength(dlogits.Length, s.Length, nameof(dlogits), "(N, Classes)");
        }
        int k = s.Classes;
        double scale = (reduction == LossReduction.Mean ? 1.0 / s.N : 1.0) / Math.Log(k - 1);
        Span<double> p = k <= 256 ? stackalloc double[k] : new double[k];
        Span<double> dp = k <= 256 ? stackalloc double[k] : new double[k];
        double total = 0;
        for (int i = 0; i < s.N; i++)
        {
            int y = labels[i];
            CrossEntropy.RequireLabel(y, i, k);
            var row = logits.Slice(i * k, k);
            double max = double.NegativeInfinity;
            for (int j = 0; j < k; j++)
            {
                max = Math.Max(max, row[j]);
            }
            double sumExp = 0;
            for (int j = 0; j < k; j++)
            {
                p[j] = Math.Exp(row[j] - max);
                sumExp += p[j];
            }
            for (int j = 0; j < k; j++)
            {
                p[j] /= sumExp;
            }
            double py = p[y];
            double complement = 1.0 - py + ProbabilityGuard;
            double weight = Math.Pow(py + ProbabilityGuard, Alpha);
            double entropy = 0;
            double entropySlope = 0;
            for (int j = 0; j < k; j++)
            {
                if (j == y)
                {
                    continue;
                }
                double q = p[j] / complement;
                double logQ = Math.Log(q + LogGuard);
                entropy += q * logQ;
                double slope = logQ + q / (q + LogGuard);
                dp[j] = scale * weight * slope / complement;
                entropySlope += slope * q;
            }
            total += weight * entropy;
            if (dlogits.IsEmpty)
            {
                continue;
            }
            dp[y] = scale * (Alpha * Math.Pow(py + ProbabilityGuard, Alpha - 1.0) * entropy + weight * entropySlope / complement);
            double dot = 0;
            for (int j = 0; j < k; j++)
            {
                dot += p[j] * dp[j];
            }
            var grad = dlogits.Slice(i * k, k);
            for (int j = 0; j < k; j++)
            {
                grad[j] = (float)(p[j] * (dp[j] - dot));
            }
        }
        return (float)(total * scale);
    }

    private static void RequireClasses(int classes)
    {
        if (classes < 3)
        {
            throw new ArgumentOutOfRangeException(nameof(classes), $"Guided complement entropy needs at least 3 classes (it has {classes}): its normaliser log(K - 1) is 0 for K = 2. Train with cross-entropy instead.");
        }
    }

    private static void RequireLength(int actual, int expected, string name, string layout) =>
        ShapeCheck.RequireLength("GuidedComplementEntropy", nameof(LogitsShape), actual, expected, name, layout);

    // ---- Kernels ----
    //
    // One block, one thread per row in double (as CrossEntropy); the softmax is recomputed instead of
    // stored, since kernels cannot allocate a row buffer. A label outside [0, Classes) makes the loss NaN.

    [LaunchShapes]
    private static IEnumerable<LaunchShape> LaunchShapes()
    {
        yield return new LaunchShape(GuidedComplementRowsKernel.Definition, "loss", CrossEntropy.RowsConfig);
    }

    [Kernel]
    private static void GuidedComplementRows(KernelContext ctx, View<float> logits, View<int> labels, View<float> loss, View<float> dlogits,
        int rows, int classes, double scale, int writeGradient)
    {
        var partial = ctx.Shared<double>(CrossEntropy.LossThreads);
        int t = ctx.ThreadIdx.X;
        double total = 0.0;
        for (int i = t; i < rows; i += CrossEntropy.LossThreads)
        {
            int y = labels[i];
            int row = i * classes;
            if (y < 0 || y >= classes)
            {
                total += double.NaN;
                if (writeGradient != 0)
                {
                    for (int j = 0; j < classes; j++)
                    {
                        dlogits[row + j] = 0f;
                    }
                }
                continue;
            }
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
            double py = Math.Exp(logits[row + y] - max) / sumExp;
            double complement = 1.0 - py + ProbabilityGuard;
            double weight = Math.Pow(py + ProbabilityGuard, Alpha);
            double entropy = 0.0;
            double entropySlope = 0.0;
            double dot = 0.0;
            for (int j = 0; j < classes; j++)
            {
                if (j != y)
                {
                    double p = Math.Exp(logits[row + j] - max) / sumExp;
                    double q = p / complement;
                    double logQ = Math.Log(q + LogGuard);
                    double slope = logQ + q / (q + LogGuard);
                    entropy += q * logQ;
                    entropySlope += slope * q;
                    dot += p * (scale * weight * slope / complement);
                }
            }
            total += weight * entropy;
            if (writeGradient != 0)
            {
                double dpy = scale * (Alpha * Math.Pow(py + ProbabilityGuard, Alpha - 1.0) * entropy + weight * entropySlope / complement);
                dot += py * dpy;
                for (int j = 0; j < classes; j++)
                {
                    double p = Math.Exp(logits[row + j] - max) / sumExp;
                    double dp = dpy;
                    if (j != y)
                    {
                        double q = p / complement;
                        dp = scale * weight * (Math.Log(q + LogGuard) + q / (q + LogGuard)) / complement;
                    }
                    dlogits[row + j] = (float)(p * (dp - dot));
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
        RequireClasses(s.Classes);
        RequireLength(logits.Length, s.Length, nameof(logits), "(N, Classes)");
        RequireLength(labels.Length, s.N, nameof(labels), "(N)");
        RequireLength(loss.Length, 1, nameof(loss), "(1)");
        bool gradient = dlogits.Length != 0;
        if (gradient)
        {
            RequireLength(dlogits.Length, s.Length, nameof(dlogits), "(N, Classes)");
        }
        double scale = (reduction == LossReduction.Mean ? 1.0 / s.N : 1.0) / Math.Log(s.Classes - 1);
        GuidedComplementRowsKernel.Launch(accelerator, CrossEntropy.RowsConfig, logits, labels, loss,
            gradient ? dlogits : logits, s.N, s.Classes, scale, gradient ? 1 : 0);
    }

    // ---- Self-tests (ilgpuoct selftest) ----

    [SelfTests]
    private static IEnumerable<SelfTestCase> SelfTests()
    {
        foreach (var s in new[] { new LogitsShape(7, 4), new LogitsShape(300, 3), new LogitsShape(64, 10) })
        {
            string shape = $"({s.N},{s.Classes})";
            yield return new SelfTestCase("GuidedComplementEntropy.Compute", shape, (acc, seed) => CrossEntropy.CompareLoss(acc, seed, s, guided: true));
        }
    }
}
