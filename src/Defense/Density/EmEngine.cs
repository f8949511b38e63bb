using IlgpuOct.Kernels;

namespace IlgpuOct.Defense.Density;

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

    /// <summary>The mixture's engines: <see cref="OperatorEngine.Cpu"/> is the float64 host engine, <see cref="OperatorEngine.Kernels"/> the EM kernels on <paramref name="accelerator"/>.</summary>
    public static EmEngine Create(OperatorEngine engine, Accelerator? accelerator, float[] xf, double[] xd, int n, int d, int k, CovarianceType type, double regCovar)
    {
        if (engine == OperatorEngine.Cpu)
        {
            return new HostEmEngine(accelerator, xd, n, d, k, type, regCovar);
        }
        if (accelerator is null)
        {
            throw new ArgumentNullException(nameof(accelerator), "The mixture's kernel engine needs the accelerator to run on.");
        }
        if (type != CovarianceType.Full)
        {
            throw new ArgumentException($"On {accelerator.Id} the mixture runs full covariances only; fit {type} covariances on the cpu device.");
        }
        return new KernelEmEngine(accelerator, xf, n, d, k, regCovar);
    }
}

/// <summary>The float64 host engine (scikit-learn's arithmetic); each step is one operator in a profile of <paramref name="accelerator"/>.</summary>
internal sealed class HostEmEngine(Accelerator? accelerator, double[] x, int n, int d, int k, CovarianceType type, double regCovar) : EmEngine
{
    private readonly double[] _logProb = new double[n * k]; // (N, K)
    private readonly double[] _logProbNorm = new double[n]; // (N)
    private readonly double[] _logResp = new double[n * k]; // (N, K)

    public override double EStep(double[] weights, double[] means, double[] precisionCholesky)
    {
        using var profile = GaussianMixtureHost.Scope(accelerator, "GaussianMixtureHost.EStep", GaussianMixtureHost.EStepCost(n, d, k, type));
        GaussianMixtureHost.EstimateLogGaussianProb(x, n, d, k, means, precisionCholesky, type, _logProb);
        return GaussianMixtureHost.LogResponsibilities(_logProb, Array.ConvertAll(weights, Math.Log), n, k, _logProbNorm, _logResp);
    }

    public override (double[] Weights, double[] Means, double[] Covariances) MStep()
    {
        using var profile = GaussianMixtureHost.Scope(accelerator, "GaussianMixtureHost.MStep", GaussianMixtureHost.MStepCost(n, d, k, type));
        var resp = Array.ConvertAll(_logResp, Math.Exp);
        return GaussianMixtureHost.EstimateParameters(x, resp, n, d, k, regCovar, type);
    }
}

/// <summary>
/// The kernel engine for full covariances (cpu-kernels, cuda): points and responsibilities live on
/// the accelerator in float32; per iteration only the parameters go up and K + K D + K D^2 sums come
/// back, where the host factorises the covariances.
/// </summary>
internal sealed class KernelEmEngine : EmEngine
{
    private readonly Accelerator _accelerator;
    private readonly int _n;
    private readonly int _d;
    private readonly int _k;
    private readonly double _regCovar;
    private readonly DeviceBuffer<float> _x; // (N, D)
    private readonly DeviceBuffer<float> _logProb; // (N, K)
    private readonly DeviceBuffer<float> _resp; // (N, K)
    private readonly DeviceBuffer<float> _logNorm; // (N)
    private readonly DeviceBuffer<float> _means; // (K, D)
    private readonly DeviceBuffer<float> _factors; // (K, D, D)
    private readonly DeviceBuffer<float> _logWeights; // (K)
    private readonly DeviceBuffer<double> _nk; // (K)
    private readonly DeviceBuffer<double> _sumsMeans; // (K, D)
    private readonly DeviceBuffer<double> _covariances; // (K, D, D)
    private readonly DeviceBuffer<float> _diff; // (N, D) scratch: centred points
    private readonly DeviceBuffer<float> _product; // (N, D) scratch: (x - mu) M, then resp * (x - mu)
    private readonly DeviceBuffer<float> _gram; // (D, D) scratch

    public KernelEmEngine(Accelerator accelerator, float[] x, int n, int d, int k, double regCovar)
    {
        _accelerator = accelerator;
        _n = n;
        _d = d;
        _k = k;
        _regCovar = regCovar;
        _x = accelerator.Upload<float>(x);
        _logProb = accelerator.Allocate<float>(n * k);
        _resp = accelerator.Allocate<float>(n * k);
        _logNorm = accelerator.Allocate<float>(n);
        _means = accelerator.Allocate<float>(k * d);
        _factors = accelerator.Allocate<float>(k * d * d);
        _logWeights = accelerator.Allocate<float>(k);
        _nk = accelerator.Allocate<double>(k);
        _sumsMeans = accelerator.Allocate<double>(k * d);
        _covariances = accelerator.Allocate<double>(k * d * d);
        _diff = accelerator.Allocate<float>(n * d);
        _product = accelerator.Allocate<float>(n * d);
        _gram = accelerator.Allocate<float>(d * d);
    }

    public override double EStep(double[] weights, double[] means, double[] precisionCholesky)
    {
        _accelerator.CopyFromHost<float>(Array.ConvertAll(means, v => (float)v), _means.View);
        _accelerator.CopyFromHost<float>(Array.ConvertAll(precisionCholesky, v => (float)v), _factors.View);
        _accelerator.CopyFromHost<float>(Array.ConvertAll(weights, w => (float)Math.Log(w)), _logWeights.View);
        double[] logDet = GaussianMixtureHost.LogDetCholesky(precisionCholesky, CovarianceType.Full, _k, _d);
        for (int c = 0; c < _k; c++)
        {
            MixtureKernels.LogGaussian(_accelerator, _x.View, _means.View.Slice(c * _d, _d), _factors.View.Slice(c * _d * _d, _d * _d),
                _diff.View, _product.View, _logProb.View, _n, _d, _k, c, (float)logDet[c]);
        }
        MixtureKernels.Responsibilities(_accelerator, _logProb.View, _logWeights.View, _resp.View, _logNorm.View, _n, _k);
        float[] logNorm = _accelerator.Download(_logNorm.View);
        double total = 0;
        foreach (float v in logNorm)
        {
            total += v;
        }
        return total / _n;
    }

    /// <summary>The last E-step's log-probabilities and responsibilities (N, K), for tests.</summary>
    internal (float[] LogProb, float[] Resp) DownloadEStep() => (_accelerator.Download(_logProb.View), _accelerator.Download(_resp.View));

    public override (double[] Weights, double[] Means, double[] Covariances) MStep()
    {
        MixtureKernels.WeightedStatistics(_accelerator, _resp.View, _x.View, _nk.View, _sumsMeans.View, _covariances.View,
            _diff.View, _product.View, _gram.View, _n, _d, _k, _regCovar);
        double[] nk = _accelerator.Download(_nk.View);
        double[] means = _accelerator.Download(_sumsMeans.View);
        double[] cov = _accelerator.Download(_covariances.View);
        // The float32 GEMM is symmetric only to rounding; the Cholesky reads the lower triangle, mirror it from the upper.
        int d = _d;
        for (int c = 0; c < _k; c++)
        {
            for (int i = 0; i < d; i++)
            {
                for (int j = 0; j < i; j++)
                {
                    cov[c * d * d + i * d + j] = cov[c * d * d + j * d + i];
                }
            }
        }
        return (nk, means, cov);
    }

    public override void Dispose()
    {
        _x.Dispose();
        _logProb.Dispose();
        _resp.Dispose();
        _logNorm.Dispose();
        _means.Dispose();
        _factors.Dispose();
        _logWeights.Dispose();
        _nk.Dispose();
        _sumsMeans.Dispose();
        _covariances.Dispose();
        _diff.Dispose();
        _product.Dispose();
        _gram.Dispose();
    }
}
