namespace IlgpuOct.Defense.Density;

/// <summary>
/// score(x) = -1/2 ||L^-1 (x - mu)||^2 with Sigma = L L^T; gradient -Sigma^-1 (x - mu). On the device it is
/// the log density of a one-component Gaussian (<see cref="GaussianStageGradients"/>): the two differ by a
/// constant, so their gradients agree; this host path stays the reference.
/// </summary>
public sealed class GaussianQuadraticDensity(double[] mean, double[] cholesky, int d) : IFeatureDensity, IGaussianMixtureScore
{
    private GaussianComponents? _components; // built when the device path first asks

    public int Features => d;

    GaussianComponents IGaussianMixtureScore.Components => _components ??= GaussianComponents.FromCovarianceCholesky(mean, cholesky, d);

    GaussianScore IGaussianMixtureScore.Score => GaussianScore.LogDensity;

    public double[] ScoreAndGradient(ReadOnlySpan<float> x, int n, Span<float> gradient)
    {
        var scores = new double[n];
        var y = new double[d];
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < d; j++)
            {
                y[j] = x[i * d + j] - mean[j];
            }
            DenseMath.SolveLower(cholesky, d, y);
            double s = 0;
            for (int j = 0; j < d; j++)
            {
                s += y[j] * y[j];
            }
            scores[i] = -0.5 * s;
            if (!gradient.IsEmpty)
            {
                DenseMath.SolveUpperTransposed(cholesky, d, y);
                for (int j = 0; j < d; j++)
                {
                    gradient[i * d + j] = (float)-y[j];
                }
            }
        }
        return scores;
    }
}
