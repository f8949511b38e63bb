using IlgpuOct.Nn;

namespace IlgpuOct.Defense.Metrics;

/// <summary>Settings of <see cref="Tsne.Embed"/> (van der Maaten and Hinton 2008, exact gradient).</summary>
public sealed record TsneOptions
{
    public double Perplexity { get; init; } = 30;

    public int Iterations { get; init; } = 750;

    /// <summary>Step size; 0 = scikit-learn's "auto", max(N / exaggeration / 4, 50), which suits a few hundred points.</summary>
    public double LearningRate { get; init; }

    /// <summary>P is multiplied by this for the first <see cref="ExaggerationIterations"/> steps, so clusters form before they settle.</summary>
    public double EarlyExaggeration { get; init; } = 12;

    public int ExaggerationIterations { get; init; } = 250;

    public int Seed { get; init; }
}

/// <summary>A 2-D embedding and the Kullback-Leibler divergence KL(P || Q) it reached.</summary>
public sealed record TsneResult(double[] Y, double KlDivergence); // Y: (N, 2)

/// <summary>
/// Exact t-SNE: O(N^2) per step, meant for the few hundred points of a figure. Seeded: the same
/// inputs and seed give the same embedding on any machine (sequential double arithmetic).
/// </summary>
public static class Tsne
{
    private const double MinProbability = 1e-12;

    /// <summary>Embeds <paramref name="n"/> points of <paramref name="d"/> values each (row-major) into the plane.</summary>
    public static TsneResult Embed(ReadOnlySpan<float> points, int n, int d, TsneOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new TsneOptions();
        if (n < 4 || d < 1 || points.Length != (long)n * d)
        {
            throw new ArgumentException($"t-SNE needs at least 4 points of d >= 1 values: got n = {n}, d = {d}, {points.Length} values.");
        }
        if (!(options.Perplexity >= 1 && options.Perplexity < n))
        {
            throw new ArgumentException($"Perplexity must lie in [1, n = {n}); got {options.Perplexity}. Use fewer neighbours or more points.");
        }
        double[] p = JointProbabilities(points, n, d, options.Perplexity);
        var start = new float[n * 2];
        Init.Normal(start, 1e-2, new Random(options.Seed));
        var y = Array.ConvertAll(start, v => (double)v);
        var update = new double[n * 2];
        var gains = new double[n * 2];
        Array.Fill(gains, 1.0);
        var grad = new double[n * 2];
        var q = new double[n * n]; // unnormalised Student-t kernel (1 + |yi - yj|^2)^-1
        double kl = double.NaN;
        double learningRate = options.LearningRate > 0 ? options.LearningRate : Math.Max(n / options.EarlyExaggeration / 4, 50);
        for (int iter = 0; iter < options.Iterations; iter++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            double exaggeration = iter < options.ExaggerationIterations ? options.EarlyExaggeration : 1.0;
            double momentum = iter < options.ExaggerationIterations ? 0.5 : 0.8;
            double z = 0;
            for (int i = 0; i < n; i++)
            {
                for (int j = i + 1; j < n; j++)
                {
                    double dx = y[2 * i] - y[2 * j], dy = y[2 * i + 1] - y[2 * j + 1];
                    double t = 1.0 / (1.0 + dx * dx + dy * dy);
                    q[i * n + j] = t;
                    q[j * n + i] = t;
                    z += 2 * t;
                }
            }
            Array.Clear(grad);
            for (int i = 0; i < n; i++)
            {
                double gx = 0, gy = 0;
                for (int j = 0; j < n; j++)
                {
                    if (j == i)
                    {
                        continue;
                    }
                    double t = q[i * n + j];
                    double m = (exaggeration * p[i * n + j] - t / z) * t;
                    gx += m * (y[2 * i] - y[2 * j]);
                    gy += m * (y[2 * i + 1] - y[2 * j + 1]);
                }
                grad[2 * i] = 4 * gx;
                grad[2 * i + 1] = 4 * gy;
            }
            // Delta-bar-delta gains, as the reference implementation.
            for (int k = 0; k < y.Length; k++)
            {
                gains[k] = Math.Sign(grad[k]) != Math.Sign(update[k]) ? gains[k] + 0.2 : Math.Max(0.01, gains[k] * 0.8);
                update[k] = momentum * update[k] - learningRate * gains[k] * grad[k];
                y[k] += update[k];
            }
            Center(y, n);
            if (iter == options.Iterations - 1)
            {
                kl = 0;
                for (int i = 0; i < n; i++)
                {
                    for (int j = 0; j < n; j++)
                    {
                        if (j != i)
                        {
                            double pij = p[i * n + j];
                            kl += pij * Math.Log(pij / Math.Max(q[i * n + j] / z, MinProbability));
                        }
                    }
                }
            }
        }
        return new TsneResult(y, kl);
    }

    /// <summary>Symmetrised P: each row's Gaussian bandwidth found by bisection so its perplexity matches, then (P + P^T) / 2N.</summary>
    internal static double[] JointProbabilities(ReadOnlySpan<float> points, int n, int d, double perplexity)
    {
        var dist = new double[n * n];
        for (int i = 0; i < n; i++)
        {
            for (int j = i + 1; j < n; j++)
            {
                double s = 0;
                for (int k = 0; k < d; k++)
                {
                    double diff = points[i * d + k] - points[j * d + k];
                    s += diff * diff;
                }
                dist[i * n + j] = s;
                dist[j * n + i] = s;
            }
        }
        double target = Math.Log(perplexity);
        var conditional = new double[n * n];
        var row = new double[n];
        for (int i = 0; i < n; i++)
        {
            double beta = 1, lo = double.NegativeInfinity, hi = double.PositiveInfinity;
            // Distances relative to the nearest neighbour keep exp() in range for any feature scale.
            double nearest = double.PositiveInfinity;
            for (int j = 0; j < n; j++)
            {
                if (j != i)
                {
                    nearest = Math.Min(nearest, dist[i * n + j]);
                }
            }
            double scale = 0;
            for (int j = 0; j < n; j++)
            {
                scale += j == i ? 0 : dist[i * n + j];
            }
            scale = Math.Max(scale / (n - 1), 1e-300);
            for (int step = 0; step < 100; step++)
            {
                double sum = 0, weighted = 0;
                for (int j = 0; j < n; j++)
                {
                    row[j] = j == i ? 0 : Math.Exp(-beta * (dist[i * n + j] - nearest) / scale);
                    sum += row[j];
                    weighted += row[j] * (dist[i * n + j] - nearest) / scale;
                }
                double entropy = Math.Log(sum) + beta * weighted / sum;
                if (Math.Abs(entropy - target) < 1e-5)
                {
                    break;
                }
                if (entropy > target)
                {
                    lo = beta;
                    beta = double.IsPositiveInfinity(hi) ? beta * 2 : (beta + hi) / 2;
                }
                else
                {
                    hi = beta;
                    beta = double.IsNegativeInfinity(lo) ? beta / 2 : (beta + lo) / 2;
                }
            }
            double total = row.Sum();
            for (int j = 0; j < n; j++)
            {
                conditional[i * n + j] = row[j] / total;
            }
        }
        var p = new double[n * n];
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < n; j++)
            {
                p[i * n + j] = i == j ? 0 : Math.Max((conditional[i * n + j] + conditional[j * n + i]) / (2.0 * n), MinProbability);
            }
        }
        return p;
    }

    private static void Center(double[] y, int n)
    {
        double mx = 0, my = 0;
        for (int i = 0; i < n; i++)
        {
            mx += y[2 * i];
            my += y[2 * i + 1];
        }
        mx /= n;
        my /= n;
        for (int i = 0; i < n; i++)
        {
            y[2 * i] -= mx;
            y[2 * i + 1] -= my;
        }
    }
}
