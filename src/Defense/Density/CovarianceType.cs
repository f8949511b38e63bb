namespace IlgpuOct.Defense.Density;

/// <summary>Covariance structure of a Gaussian mixture, as scikit-learn's <c>covariance_type</c>.</summary>
public enum CovarianceType
{
    /// <summary>Each component has its own full covariance: covariances (K, D, D).</summary>
    Full,

    /// <summary>Each component has its own diagonal covariance: covariances (K, D).</summary>
    Diagonal,

    /// <summary>All components share one full covariance: covariances (D, D).</summary>
    Tied,

    /// <summary>Each component has one variance: covariances (K).</summary>
    Spherical,
}

/// <summary>Settings of <see cref="GaussianMixture"/>; defaults are scikit-learn's.</summary>
public sealed record GaussianMixtureOptions
{
    public int Components { get; init; } = 1;

    public CovarianceType CovarianceType { get; init; } = CovarianceType.Full;

    /// <summary>Added to every covariance diagonal (scikit-learn's reg_covar).</summary>
    public double RegCovar { get; init; } = 1e-6;

    /// <summary>EM stops when the change of the mean log-likelihood lower bound is below this.</summary>
    public double Tolerance { get; init; } = 1e-3;

    public int MaxIterations { get; init; } = 200;

    /// <summary>Number of restarts; the fit with the largest lower bound is kept.</summary>
    public int Restarts { get; init; } = 1;

    /// <summary>Seed of the k-means++ initialisation: restart r uses Seed + r (unused with <see cref="Start"/>).</summary>
    public int Seed { get; init; }

    /// <summary>Iterations of Lloyd's k-means at initialisation.</summary>
    public int KMeansMaxIterations { get; init; } = 300;

    /// <summary>Explicit start (scikit-learn's weights_init/means_init/precisions_init); null = k-means.</summary>
    public GaussianMixtureStart? Start { get; init; }

    internal void Validate()
    {
        if (Components < 1)
        {
            throw new ArgumentException($"Components is {Components}; a mixture needs at least one component.");
        }
        if (!(RegCovar >= 0))
        {
            throw new ArgumentException($"RegCovar is {RegCovar}; use a non-negative value such as 1e-6.");
        }
        if (!(Tolerance >= 0))
        {
            throw new ArgumentException($"Tolerance is {Tolerance}; use a non-negative value such as 1e-3.");
        }
        if (MaxIterations < 0)
        {
            throw new ArgumentException($"MaxIterations is {MaxIterations}; use 0 or more.");
        }
        if (Restarts < 1)
        {
            throw new ArgumentException($"Restarts is {Restarts}; use 1 or more.");
        }
    }
}

/// <summary>
/// An explicit start: the first E-step uses these parameters. <see cref="Precisions"/> are precision
/// matrices (inverse covariances) in the shape of the covariance type, or null for identity.
/// </summary>
public sealed record GaussianMixtureStart(
    double[] Weights, // (K)
    double[] Means, // (K, D)
    double[]? Precisions = null); // (K, D, D) full, (K, D) diagonal, (D, D) tied, (K) spherical; null = identity

/// <summary>One EM iteration finished: restart index, iteration (1-based), lower bound and its change.</summary>
public readonly record struct GaussianMixtureProgress(int Restart, int Iteration, double LowerBound, double Change);
