namespace IlgpuOct.Defense.Density;

/// <summary>log (1/M sum_i N(x; p_i, h^2 I)) and its gradient sum_i w_i (p_i - x) / h^2 (w the softmax weights).</summary>
public sealed class KernelDensity(float[] points, int d, double bandwidth) : IFeatureDensity
{
    private readonly int _m = points.Length / d;

    public int Features => d;

    /// <summary>The M kernel centres (M, D), read by the device path (<see cref="GaussianStageGradients"/>).</summary>
    internal ReadOnlySpan<float> Points => points;

    internal int Count => _m;

    internal double Bandwidth => bandwidth;

    public double[] ScoreAndGradient(ReadOnlySpan<float> x, int n, Span<float> gradient)
    {
        var scores = new double[n];
        var logits = new double[_m];
        double inv2h2 = 1.0 / (2 * bandwidth * bandwidth);
        double norm = -Math.Log(_m) - 0.5 * d * Math.Log(2 * Math.PI * bandwidth * bandwidth);
        for (int i = 0; i < n; i++)
        {
            var row = x.Slice(i * d, d);
            double max = double.NegativeInfinity;
            for (int p = 0; p < _m; p++)
            {
                double s = 0;
                for (int j = 0; j < d; j++)
                {
                    double diff = row[j] - points[p * d + j];
                    s += diff * diff;
                }
                logits[p] = -s * inv2h2;
                max = Math.Max(max, logits[p]);
            }
            double sum = 0;
            for (int p = 0; p < _m; p++)
            {
                logits[p] = Math.Exp(logits[p] - max);
                sum += logits[p];
            }
            scores[i] = max + Math.Log(sum) + norm;
            if (!gradient.IsEmpty)
            {
                for (int j = 0; j < d; j++)
                {
                    double g = 0;
                    for (int p = 0; p < _m; p++)
                    {
                        g += logits[p] * (points[p * d + j] - row[j]);
                    }
                    gradient[i * d + j] = (float)(g / sum * 2 * inv2h2);
                }
            }
        }
        return scores;
    }
}
