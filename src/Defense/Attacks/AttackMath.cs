using IlgpuOct.Kernels.Operators;

namespace IlgpuOct.Defense.Attacks;

/// <summary>
/// Host-side attack arithmetic on small data: logit-space losses and margins (N x K values that
/// the host reads anyway), per-image distances, and the seeded random start (System.Random on the
/// host, uploaded once per restart). The per-pixel updates of every step run on the device as
/// kernels (<see cref="AttackKernels"/>).
/// </summary>
public static class AttackMath
{
    /// <summary>x = clip(x0 + u, 0, 1), u uniform in [-eps, eps] from <paramref name="random"/>.</summary>
    public static void RandomStart(Span<float> x, ReadOnlySpan<float> x0, float eps, Random random)
    {
        RequireSame(x.Length, x0.Length, x0.Length);
        RandomOffsets(x, eps, random);
        AttackKernels.OffsetClipCpu(x, x0, x);
    }

    /// <summary>u uniform in [-eps, eps] from <paramref name="random"/>: the offsets of a random start (<see cref="AttackKernels.OffsetClip"/> applies them on the device).</summary>
    public static void RandomOffsets(Span<float> u, float eps, Random random)
    {
        ArgumentNullException.ThrowIfNull(random);
        for (int i = 0; i < u.Length; i++)
        {
            u[i] = (float)((random.NextDouble() * 2.0 - 1.0) * eps);
        }
    }

    /// <summary>
    /// The largest logit other than class <paramref name="excluded"/> and its index: the excluded
    /// entry counts as -infinity (not zero), so all-negative logits give the right answer.
    /// </summary>
    public static (float Value, int Index) MaxOther(ReadOnlySpan<float> row, int excluded)
    {
        float best = float.NegativeInfinity;
        int at = -1;
        for (int j = 0; j < row.Length; j++)
        {
            float v = j == excluded ? float.NegativeInfinity : row[j];
            if (at < 0 || v > best)
            {
                best = v;
                at = j;
            }
        }
        return (best, at);
    }

    /// <summary>
    /// Per-image cross-entropy against <paramref name="labels"/> summed over the batch (each image's
    /// gradient independent of N); d loss / d logits into <paramref name="dLogits"/> (N, K), scaled by <paramref name="scale"/>.
    /// Uses the CrossEntropy operator's CPU implementation (the logits are on the host anyway).
    /// </summary>
    public static double[] CrossEntropySum(ReadOnlySpan<float> logits, ReadOnlySpan<int> labels, int n, int k, Span<float> dLogits, float scale = 1f)
    {
        var shape = new LogitsShape(n, k);
        CrossEntropy.ComputeCpu(shape, logits, labels, dLogits, LossReduction.Sum);
        if (scale != 1f)
        {
            for (int i = 0; i < n * k; i++)
            {
                dLogits[i] *= scale;
            }
        }
        var perImage = new double[n];
        for (int i = 0; i < n; i++)
        {
            perImage[i] = CrossEntropy.ComputeCpu(new LogitsShape(1, k), logits.Slice(i * k, k), labels.Slice(i, 1), [], LossReduction.Sum);
        }
        return perImage;
    }

    /// <summary>
    /// Carlini-Wagner margin of one row: targeted max_{j != t} Z_j - Z_t (t = target), untargeted
    /// Z_y - max_{j != y} Z_j (y = true label); negative means the attack has succeeded by that much.
    /// Returns the margin and the index of the largest other logit.
    /// </summary>
    public static (float Margin, int Other) CwMargin(ReadOnlySpan<float> row, int cls, bool targeted)
    {
        var (other, at) = MaxOther(row, cls);
        return (targeted ? other - row[cls] : row[cls] - other, at);
    }

    /// <summary>L2 and L-infinity distance of each image of (N, ...) from the original.</summary>
    public static (float[] L2, float[] Linf) Distances(ReadOnlySpan<float> x, ReadOnlySpan<float> x0, int n)
    {
        RequireSame(x.Length, x0.Length, x0.Length);
        int per = x.Length / n;
        var l2 = new float[n];
        var linf = new float[n];
        for (int i = 0; i < n; i++)
        {
            double sum = 0;
            float max = 0;
            for (int j = i * per; j < (i + 1) * per; j++)
            {
                float d = x[j] - x0[j];
                sum += (double)d * d;
                max = Math.Max(max, Math.Abs(d));
            }
            l2[i] = (float)Math.Sqrt(sum);
            linf[i] = max;
        }
        return (l2, linf);
    }

    private static void RequireSame(int a, int b, int c)
    {
        if (a != b || a != c)
        {
            throw new ArgumentException($"Element-wise update on arrays of different lengths ({a}, {b}, {c}).");
        }
    }
}
