
namespace IlgpuOct.Defense.Density;

/// <summary>
/// A differentiable score of feature vectors, higher meaning "more like the clean data" (a log
/// density, a negative Mahalanobis distance, a KDE log density...). Any detector that scores
/// features this way can be attacked adaptively.
/// </summary>
public interface IFeatureDensity
{
    /// <summary>Feature dimension D.</summary>
    int Features { get; }

    /// <summary>Score of each row of <paramref name="x"/> (N, D); d score / d row into <paramref name="gradient"/> (N, D) unless it is empty.</summary>
    double[] ScoreAndGradient(ReadOnlySpan<float> x, int n, Span<float> gradient);
}

/// <summary>
/// The Gaussian components of a fitted <see cref="GaussianMixture"/> in scikit-learn's precision
/// Cholesky form: log N_k(x) = -(D log 2 pi + ||M_k^T (x - mu_k)||^2) / 2 + log det M_k. Host float64.
/// </summary>
internal sealed class GaussianComponents
{
    private readonly double[] _means; // (K, D)
    private readonly double[] _precisionCholesky; // (K, D, D) full, (D, D) tied, (K, D) diagonal, (K) spherical
    private readonly double[] _logWeightedNorm; // (K) log pi_k + log det M_k - D log(2 pi) / 2

    public GaussianComponents(GaussianMixture mixture)
    {
        ArgumentNullException.ThrowIfNull(mixture);
        if (!mixture.IsFitted)
        {
            throw new ArgumentException("The Gaussian mixture is not fitted; fit it on clean features first.", nameof(mixture));
        }
        Type = mixture.CovarianceType;
        K = mixture.Components;
        D = mixture.Features;
        _means = mixture.Means.ToArray();
        _precisionCholesky = mixture.PrecisionCholesky.ToArray();
        var weights = mixture.Weights;
        _logWeightedNorm = new double[K];
        for (int k = 0; k < K; k++)
        {
            _logWeightedNorm[k] = Math.Log(weights[k]) + LogDet(k) - 0.5 * D * Math.Log(2 * Math.PI);
        }
    }

    private GaussianComponents(double[] mean, double[] precisionCholesky, int d, double logDet)
    {
        Type = CovarianceType.Full;
        K = 1;
        D = d;
        _means = mean;
        _precisionCholesky = precisionCholesky;
        _logWeightedNorm = [logDet - 0.5 * d * Math.Log(2 * Math.PI)];
    }

    /// <summary>
    /// The single Gaussian N(mu, L L^T) given the Cholesky factor L (D, D, lower) of its covariance:
    /// its precision Cholesky factor is M = L^-T (row i of M is L^-1 e_i), log det M = -sum log L_jj.
    /// </summary>
    public static GaussianComponents FromCovarianceCholesky(double[] mean, double[] cholesky, int d)
    {
        ArgumentNullException.ThrowIfNull(mean);
        ArgumentNullException.ThrowIfNull(cholesky);
        if (mean.Length != d || cholesky.Length != d * d)
        {
            throw new ArgumentException($"GaussianComponents.FromCovarianceCholesky: need a mean of {d} and a ({d}, {d}) factor; got {mean.Length} and {cholesky.Length} values.");
        }
        var precisionCholesky = new double[d * d];
        double logDet = 0;
        for (int i = 0; i < d; i++)
        {
            var row = precisionCholesky.AsSpan(i * d, d);
            row[i] = 1;
            DenseMath.SolveLower(cholesky, d, row);
            logDet -= Math.Log(cholesky[i * d + i]);
        }
        return new GaussianComponents(mean, precisionCholesky, d, logDet);
    }

    public CovarianceType Type { get; }

    public int K { get; }

    public int D { get; }

    private double LogDet(int k)
    {
        double sum = 0;
        switch (Type)
        {
            case CovarianceType.Full:
            case CovarianceType.Tied:
                int offset = Type == CovarianceType.Full ? k * D * D : 0;
                for (int j = 0; j < D; j++)
                {
                    sum += Math.Log(_precisionCholesky[offset + j * D + j]);
                }
                return sum;
            case CovarianceType.Diagonal:
                for (int j = 0; j < D; j++)
                {
                    sum += Math.Log(_precisionCholesky[k * D + j]);
                }
                return sum;
            default:
                return D * Math.Log(_precisionCholesky[k]);
        }
    }

    /// <summary>y = M_k^T (x - mu_k) (D); returns ||y||^2.</summary>
    public double Whiten(ReadOnlySpan<float> x, int k, Span<double> y)
    {
        Span<double> diff = D <= 1024 ? stackalloc double[D] : new double[D];
        for (int j = 0; j < D; j++)
        {
            diff[j] = x[j] - _means[k * D + j];
        }
        switch (Type)
        {
            case CovarianceType.Full:
            case CovarianceType.Tied:
                int offset = Type == CovarianceType.Full ? k * D * D : 0;
                y.Clear();
                for (int i = 0; i < D; i++)
                {
                    double di = diff[i];
                    var row = _precisionCholesky.AsSpan(offset + i * D, D);
                    for (int j = 0; j < D; j++)
                    {
                        y[j] += di * row[j];
                    }
                }
                break;
            case CovarianceType.Diagonal:
                for (int j = 0; j < D; j++)
                {
                    y[j] = diff[j] * _precisionCholesky[k * D + j];
                }
                break;
            default:
                for (int j = 0; j < D; j++)
                {
                    y[j] = diff[j] * _precisionCholesky[k];
                }
                break;
        }
        double norm = 0;
        for (int j = 0; j < D; j++)
        {
            norm += y[j] * y[j];
        }
        return norm;
    }

    /// <summary>g += scale * M_k y: the gradient of scale * ||y||^2 / 2 with respect to x.</summary>
    public void AddBack(int k, ReadOnlySpan<double> y, double scale, Span<double> g)
    {
        switch (Type)
        {
            case CovarianceType.Full:
            case CovarianceType.Tied:
                int offset = Type == CovarianceType.Full ? k * D * D : 0;
                for (int i = 0; i < D; i++)
                {
                    var row = _precisionCholesky.AsSpan(offset + i * D, D);
                    double sum = 0;
                    for (int j = 0; j < D; j++)
                    {
                        sum += row[j] * y[j];
                    }
                    g[i] += scale * sum;
                }
                break;
            case CovarianceType.Diagonal:
                for (int j = 0; j < D; j++)
                {
                    g[j] += scale * _precisionCholesky[k * D + j] * y[j];
                }
                break;
            default:
                for (int j = 0; j < D; j++)
                {
                    g[j] += scale * _precisionCholesky[k] * y[j];
                }
                break;
        }
    }

    /// <summary>The mean mu_k (D).</summary>
    public ReadOnlySpan<double> Mean(int k) => _means.AsSpan(k * D, D);

    /// <summary>log pi_k + log det M_k: log pi_k + log N_k(x) = this - (D log 2 pi + ||y||^2) / 2.</summary>
    public double LogWeightedDet(int k) => _logWeightedNorm[k] + 0.5 * D * Math.Log(2 * Math.PI);

    /// <summary>M_k as a dense (D, D) row-major matrix (tied, diagonal and spherical factors expanded) for the device GEMMs, y = (x - mu_k) M_k.</summary>
    public float[] DenseFactor(int k)
    {
        var m = new float[D * D];
        for (int i = 0; i < D; i++)
        {
            switch (Type)
            {
                case CovarianceType.Full:
                case CovarianceType.Tied:
                    int offset = Type == CovarianceType.Full ? k * D * D : 0;
                    for (int j = 0; j < D; j++)
                    {
                        m[i * D + j] = (float)_precisionCholesky[offset + i * D + j];
                    }
                    break;
                case CovarianceType.Diagonal:
                    m[i * D + i] = (float)_precisionCholesky[k * D + i];
                    break;
                default:
                    m[i * D + i] = (float)_precisionCholesky[k];
                    break;
            }
        }
        return m;
    }

    /// <summary>log pi_k + log N_k(x) given ||y||^2.</summary>
    public double WeightedLogProb(int k, double squaredNorm) => _logWeightedNorm[k] - 0.5 * squaredNorm;

    public void RequireFeatures(int d, string what)
    {
        if (d != D)
        {
            throw new ArgumentException($"{what}: the mixture was fitted on {D} features; got rows of {d}.");
        }
    }
}

/// <summary>The two scores of a Gaussian mixture that the adaptive attacks use (the device path computes them with <see cref="GaussianStageGradients"/>).</summary>
internal enum GaussianScore
{
    /// <summary>log p(x) = logsumexp_k (log pi_k + log N_k(x)); gradient -sum_k r_k(x) P_k (x - mu_k).</summary>
    LogDensity,

    /// <summary>-||M_k^T (x - mu_k)||^2 for the most likely component k; gradient -2 P_k (x - mu_k).</summary>
    NearestComponent,
}

/// <summary>A feature density that is a score of a Gaussian mixture's components.</summary>
internal interface IGaussianMixtureScore
{
    GaussianComponents Components { get; }

    GaussianScore Score { get; }
}

/// <summary>log p(x) under a fitted Gaussian mixture (as its ScoreSamples) and its gradient sum_k r_k(x) (-P_k (x - mu_k)).</summary>
public sealed class GmmLogDensity : IFeatureDensity, IGaussianMixtureScore
{
    private readonly GaussianComponents _components;

    GaussianComponents IGaussianMixtureScore.Components => _components;

    GaussianScore IGaussianMixtureScore.Score => GaussianScore.LogDensity;

    public GmmLogDensity(GaussianMixture mixture)
    {
        _components = new GaussianComponents(mixture);
    }

    public int Features => _components.D;

    public double[] ScoreAndGradient(ReadOnlySpan<float> x, int n, Span<float> gradient)
    {
        int d = Features;
        int kCount = _components.K;
        RequireRows(x, n, d, gradient);
        var scores = new double[n];
        var y = new double[kCount * d];
        var logProb = new double[kCount];
        var g = new double[d];
        for (int i = 0; i < n; i++)
        {
            var row = x.Slice(i * d, d);
            double max = double.NegativeInfinity;
            for (int k = 0; k < kCount; k++)
            {
                logProb[k] = _components.WeightedLogProb(k, _components.Whiten(row, k, y.AsSpan(k * d, d)));
                max = Math.Max(max, logProb[k]);
            }
            double sum = 0;
            for (int k = 0; k < kCount; k++)
            {
                sum += Math.Exp(logProb[k] - max);
            }
            double logP = max + Math.Log(sum);
            scores[i] = logP;
            if (gradient.IsEmpty)
            {
                continue;
            }
            Array.Clear(g);
            for (int k = 0; k < kCount; k++)
            {
                double responsibility = Math.Exp(logProb[k] - logP);
                _components.AddBack(k, y.AsSpan(k * d, d), -responsibility, g);
            }
            for (int j = 0; j < d; j++)
            {
                gradient[i * d + j] = (float)g[j];
            }
        }
        return scores;
    }

    internal static void RequireRows(ReadOnlySpan<float> x, int n, int d, Span<float> gradient)
    {
        if (x.Length != n * d)
        {
            throw new ArgumentException($"Expected {n} rows of {d} features ({n * d} values); got {x.Length}.", nameof(x));
        }
        if (!gradient.IsEmpty && gradient.Length != n * d)
        {
            throw new ArgumentException($"The gradient must hold {n * d} values (N, D); got {gradient.Length}.", nameof(gradient));
        }
    }
}

/// <summary>
/// Yao et al.'s hierarchical feature constraint term for one layer and class: minus the squared
/// Mahalanobis distance ||M_k^T (x - mu_k)||^2 to the component k with the largest pi_k N_k(x)
/// (the most likely component of the class), M_k its precision Cholesky factor. Gradient -2 P_k (x - mu_k).
/// </summary>
public sealed class GmmNearestComponent : IFeatureDensity, IGaussianMixtureScore
{
    private readonly GaussianComponents _components;

    GaussianComponents IGaussianMixtureScore.Components => _components;

    GaussianScore IGaussianMixtureScore.Score => GaussianScore.NearestComponent;

    public GmmNearestComponent(GaussianMixture mixture)
    {
        _components = new GaussianComponents(mixture);
    }

    public int Features => _components.D;

    public double[] ScoreAndGradient(ReadOnlySpan<float> x, int n, Span<float> gradient)
    {
        int d = Features;
        GmmLogDensity.RequireRows(x, n, d, gradient);
        var scores = new double[n];
        var y = new double[d];
        var bestY = new double[d];
        var g = new double[d];
        for (int i = 0; i < n; i++)
        {
            var row = x.Slice(i * d, d);
            double bestLogProb = double.NegativeInfinity;
            double bestNorm = 0;
            int best = 0;
            for (int k = 0; k < _components.K; k++)
            {
                double norm = _components.Whiten(row, k, y);
                double logProb = _components.WeightedLogProb(k, norm);
                if (k == 0 || logProb > bestLogProb)
                {
                    bestLogProb = logProb;
                    bestNorm = norm;
                    best = k;
                    y.CopyTo(bestY, 0);
                }
            }
            scores[i] = -bestNorm;
            if (gradient.IsEmpty)
            {
                continue;
            }
            Array.Clear(g);
            _components.AddBack(best, bestY, -2.0, g);
            for (int j = 0; j < d; j++)
            {
                gradient[i * d + j] = (float)g[j];
            }
        }
        return scores;
    }
}

/// <summary>
/// One density per class for each tapped stage (layer1..layer4 pooled; layer4's pooled output is
/// the penultimate feature vector). A null stage is not used; a stage must cover every class.
/// </summary>
public sealed class StageDensities
{
    public StageDensities(IReadOnlyList<IReadOnlyList<IFeatureDensity>?> perStageAndClass)
    {
        ArgumentNullException.ThrowIfNull(perStageAndClass);
        PerStage = perStageAndClass;
    }

    /// <summary>[stage][class]</summary>
    public IReadOnlyList<IReadOnlyList<IFeatureDensity>?> PerStage { get; }

    /// <summary>Builds densities from fitted mixtures [stage][class] (null stages skipped) with <paramref name="factory"/>.</summary>
    public static StageDensities FromMixtures(IReadOnlyList<IReadOnlyList<GaussianMixture>?> mixtures, Func<GaussianMixture, IFeatureDensity> factory)
    {
        ArgumentNullException.ThrowIfNull(mixtures);
        ArgumentNullException.ThrowIfNull(factory);
        return new StageDensities(mixtures.Select(s => s is null ? null : (IReadOnlyList<IFeatureDensity>)s.Select(factory).ToArray()).ToArray());
    }

    internal void Validate(IReadOnlyList<int> stageWidths, int classes)
    {
        if (PerStage.Count != stageWidths.Count)
        {
            throw new ArgumentException($"Give one (possibly null) entry per tapped stage ({stageWidths.Count}); got {PerStage.Count}.");
        }
        bool any = false;
        for (int s = 0; s < PerStage.Count; s++)
        {
            if (PerStage[s] is not { } perClass)
            {
                continue;
            }
            any = true;
            if (perClass.Count != classes)
            {
                throw new ArgumentException($"Stage layer{s + 1} has {perClass.Count} class densities; the model has {classes} classes.");
            }
            foreach (var density in perClass)
            {
                if (density.Features != stageWidths[s])
                {
                    throw new ArgumentException($"A layer{s + 1} density expects {density.Features} features; that stage has {stageWidths[s]}.");
                }
            }
        }
        if (!any)
        {
            throw new ArgumentException("No stage has densities; give at least one (e.g. layer4, the penultimate features).");
        }
    }

    /// <summary>Sum over stages of the score of image i's features under class classes[i], and d/d feature per stage (null for unused stages).</summary>
    public double[] Evaluate(float[][] stagePools, IReadOnlyList<int> stageWidths, int[] classes, bool gradients, out float[]?[] dStagePools)
    {
        int n = classes.Length;
        var total = new double[n];
        dStagePools = new float[]?[PerStage.Count];
        for (int s = 0; s < PerStage.Count; s++)
        {
            if (PerStage[s] is not { } perClass)
            {
                continue;
            }
            int d = stageWidths[s];
            var grad = gradients ? new float[n * d] : null;
            for (int i = 0; i < n; i++)
            {
                var row = stagePools[s].AsSpan(i * d, d);
                double[] score = perClass[classes[i]].ScoreAndGradient(row, 1, gradients ? grad.AsSpan(i * d, d) : []);
                total[i] += score[0];
            }
            dStagePools[s] = grad;
        }
        return total;
    }
}
