using IlgpuOct.Kernels;

namespace IlgpuOct.Defense.Mixture;

/// <summary>
/// Where the N-sized EM work runs. The engine keeps the data and the last log responsibilities;
/// the loop in <see cref="GaussianMixture"/> passes host parameters in and gets host sums back.
/// </summary>
internal abstract class EmEngine : IDisposable
{
    /// <summary>E-step with the given parameters; keeps log resp and returns the mean log-likelihood.</summary>
    public abstract double EStep(
        double[] weights, // (K)
        double[] means, // (K, D)
        double[] precisionCholesky); // covariance-type shape

    /// <summary>M-step from the last E-step: (nk, means, covariances with reg_covar); nk is not yet normalised.</summary>
    public abstract (double[] Weights, double[] Means, double[] Covariances) MStep();

    public virtual void Dispose()
    {
    }

    public static EmEngine Create(Accelerator? accelerator, float[] xf, double[] xd, int n, int d, int k, CovarianceType type, double regCovar)
    {
        if (accelerator is null || accelerator.Kind == AcceleratorKind.Cpu)
        {
            return new HostEmEngine(xd, n, d, k, type, regCovar);
        }
        throw new NotSupportedException($"The Gaussian mixture has no kernel path for the {accelerator.Id} accelerator yet; fit on the cpu device.");
    }
}

/// <summary>The float64 host engine (scikit-learn's arithmetic).</summary>
internal sealed class HostEmEngine(double[] x, int n, int d, int k, CovarianceType type, double regCovar) : EmEngine
{
    private readonly double[] _logProb = new double[n * k]; // (N, K)
    private readonly double[] _logProbNorm = new double[n]; // (N)
    private readonly double[] _logResp = new double[n * k]; // (N, K)

    public override double EStep(double[] weights, double[] means, double[] precisionCholesky)
    {
        GaussianMixtureHost.EstimateLogGaussianProb(x, n, d, k, means, precisionCholesky, type, _logProb);
        return GaussianMixtureHost.LogResponsibilities(_logProb, Array.ConvertAll(weights, Math.Log), n, k, _logProbNorm, _logResp);
    }

    public override (double[] Weights, double[] Means, double[] Covariances) MStep()
    {
        var resp = Array.ConvertAll(_logResp, Math.Exp);
        return GaussianMixtureHost.EstimateParameters(x, resp, n, d, k, regCovar, type);
    }
}
