using System.Globalization;
using IlgpuOct.Kernels;
using IlgpuOct.Nn.IO;

namespace IlgpuOct.Defense.Density;

/// <summary>
/// A Gaussian mixture fitted by expectation-maximisation exactly as scikit-learn's
/// <c>GaussianMixture</c>: E-step through precision Cholesky factors and a row-wise logsumexp,
/// M-step with nk = sum(resp) + 10 eps and reg_covar on every covariance diagonal, lower bound =
/// mean log-likelihood of the E-step, convergence when |change| &lt; tol, restarts keeping the
/// largest lower bound. On the float64 host engine (no accelerator, or the cpu accelerator) everything is float64 like
/// scikit-learn; on cpu-kernels or cuda the N-sized work runs as float32 kernels and GEMMs, and the
/// D x D factorisations stay on the host.
/// </summary>
public sealed class GaussianMixture
{
    private double[] _weights = []; // (K)
    private double[] _means = []; // (K, D)
    private double[] _covariances = []; // (K, D, D) full, (K, D) diagonal, (D, D) tied, (K) spherical
    private double[] _precisionCholesky = []; // same shape as the covariances

    public GaussianMixture(GaussianMixtureOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        Options = options;
    }

    public GaussianMixtureOptions Options { get; }

    public bool IsFitted { get; private set; }

    /// <summary>Number of features D seen at fit time.</summary>
    public int Features { get; private set; }

    public int Components => Options.Components;

    public CovarianceType CovarianceType => Options.CovarianceType;

    /// <summary>The best restart's final lower bound (mean log-likelihood of its last E-step).</summary>
    public double LowerBound { get; private set; } = double.NegativeInfinity;

    /// <summary>EM iterations of the best restart, counted as scikit-learn counts them (the converging one included).</summary>
    public int NIter { get; private set; }

    /// <summary>True when any restart converged (scikit-learn's converged_ never resets between restarts).</summary>
    public bool Converged { get; private set; }

    /// <summary>(K)</summary>
    public ReadOnlySpan<double> Weights => RequireFitted(_weights);

    /// <summary>(K, D)</summary>
    public ReadOnlySpan<double> Means => RequireFitted(_means);

    /// <summary>(K, D, D) full, (K, D) diagonal, (D, D) tied, (K) spherical.</summary>
    public ReadOnlySpan<double> Covariances => RequireFitted(_covariances);

    /// <summary>Same shape as <see cref="Covariances"/>; P = M M^T for full and tied.</summary>
    public ReadOnlySpan<double> PrecisionCholesky => RequireFitted(_precisionCholesky);

    /// <summary>Fits to <paramref name="x"/> (N, D) with the float64 host engine.</summary>
    public GaussianMixture Fit(float[,] x, IProgress<GaussianMixtureProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(x);
        return Fit(Flatten(x), x.GetLength(0), x.GetLength(1), progress, cancellationToken);
    }

    /// <summary>Fits to <paramref name="x"/> (N, D) on the engine <see cref="OperatorDispatch"/> picks for <paramref name="accelerator"/>.</summary>
    public GaussianMixture Fit(float[,] x, Accelerator accelerator, IProgress<GaussianMixtureProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(x);
        return Fit(Flatten(x), x.GetLength(0), x.GetLength(1), accelerator, progress, cancellationToken);
    }

    /// <summary>Fits to <paramref name="x"/> (N, D), row-major, with the float64 host engine (scikit-learn's arithmetic).</summary>
    public GaussianMixture Fit(
        ReadOnlySpan<float> x, // (N, D)
        int n,
        int d,
        IProgress<GaussianMixtureProgress>? progress = null,
        CancellationToken cancellationToken = default) =>
        Fit(x, n, d, OperatorEngine.Cpu, null, progress, cancellationToken);

    /// <summary>
    /// Fits to <paramref name="x"/> (N, D), row-major, on the engine <see cref="OperatorDispatch.EngineFor"/> picks
    /// for <paramref name="accelerator"/>: the float64 host engine on cpu, the float32 EM kernels elsewhere.
    /// </summary>
    public GaussianMixture Fit(
        ReadOnlySpan<float> x, // (N, D)
        int n,
        int d,
        Accelerator accelerator,
        IProgress<GaussianMixtureProgress>? progress = null,
        CancellationToken cancellationToken = default) =>
        Fit(x, n, d, OperatorDispatch.EngineFor(accelerator), accelerator, progress, cancellationToken);

    private GaussianMixture Fit(
        ReadOnlySpan<float> x, // (N, D)
        int n,
        int d,
        OperatorEngine engineKind,
        Accelerator? accelerator, // the accelerator of the Kernels engine
        IProgress<GaussianMixtureProgress>? progress,
        CancellationToken cancellationToken)
    {
        CheckData(x, n, d, "fit");
        if (n < 2)
        {
            throw new ArgumentException($"A mixture needs at least 2 points to fit; got {n}.");
        }
        if (Options.Start is null && n < Components)
        {
            throw new ArgumentException($"{n} points cannot seed {Components} components; use fewer components or more points.");
        }
        if (Options.Start is not null)
        {
            ValidateStart(Options.Start, d);
        }
        float[] xf = x.ToArray();
        double[] xd = Array.ConvertAll(xf, v => (double)v);
        int k = Components;
        var type = CovarianceType;
        double maxLowerBound = double.NegativeInfinity;
        Parameters? best = null;
        int bestNIter = 0;
        bool converged = false;
        using EmEngine engine = EmEngine.Create(engineKind, accelerator, xf, xd, n, d, k, type, Options.RegCovar);
        for (int restart = 0; restart < Options.Restarts; restart++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            // Restart r seeds its k-means with Seed + r, so a restart can be reproduced alone.
            var current = Initialize(xd, n, d, new Random(unchecked(Options.Seed + restart)), cancellationToken);
            double lowerBound = double.NegativeInfinity;
            if (Options.MaxIterations == 0)
            {
                best = current;
                bestNIter = 0;
                continue;
            }
            int iteration = 0;
            for (iteration = 1; iteration <= Options.MaxIterations; iteration++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                double previous = lowerBound;
                lowerBound = engine.EStep(current.Weights, current.Means, current.PrecisionCholesky);
                var (weights, means, covariances) = engine.MStep();
                double total = weights.Sum();
                for (int c = 0; c < k; c++)
                {
                    weights[c] /= total;
                }
                double[] factors;
                using (GaussianMixtureHost.Scope(accelerator, "GaussianMixtureHost.PrecisionCholesky", GaussianMixtureHost.PrecisionCholeskyCost(d, k, type)))
                {
                    factors = GaussianMixtureHost.PrecisionCholeskyFromCovariances(covariances, type, k, d);
                }
                current = new Parameters(weights, means, covariances, factors);
                double change = lowerBound - previous;
                progress?.Report(new GaussianMixtureProgress(restart, iteration, lowerBound, change));
                if (Math.Abs(change) < Options.Tolerance)
                {
                    converged = true;
                    break;
                }
            }
            iteration = Math.Min(iteration, Options.MaxIterations);
            if (lowerBound > maxLowerBound || double.IsNegativeInfinity(maxLowerBound))
            {
                maxLowerBound = lowerBound;
                best = current;
                bestNIter = iteration;
            }
        }
        (_weights, _means, _covariances, _precisionCholesky) = best!;
        Features = d;
        NIter = bestNIter;
        LowerBound = maxLowerBound;
        Converged = converged;
        IsFitted = true;
        return this;
    }

    /// <summary>Per-point log density of each row of <paramref name="x"/> (N, D).</summary>
    public double[] ScoreSamples(float[,] x) => ScoreSamples(Flatten(x), RowsOf(x));

    /// <summary>Posterior probabilities (N, K) of each row of <paramref name="x"/> (N, D).</summary>
    public double[] PredictProba(float[,] x) => PredictProba(Flatten(x), RowsOf(x));

    /// <summary>Most probable component of each row of <paramref name="x"/> (N, D).</summary>
    public int[] Predict(float[,] x) => Predict(Flatten(x), RowsOf(x));

    public double Bic(float[,] x) => Bic(Flatten(x), RowsOf(x));

    public double Aic(float[,] x) => Aic(Flatten(x), RowsOf(x));

    private int RowsOf(float[,] x)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (IsFitted && x.GetLength(1) != Features)
        {
            throw new ArgumentException($"x has {x.GetLength(1)} columns but the mixture was fitted to {Features} features.");
        }
        return x.GetLength(0);
    }

    /// <summary>Per-point log density log p(x_n) (N), in float64.</summary>
    public double[] ScoreSamples(ReadOnlySpan<float> x, int n) // x (N, D)
    {
        var (logProbNorm, _) = Evaluate(x, n);
        return logProbNorm;
    }

    /// <summary>Mean per-point log density.</summary>
    public double Score(ReadOnlySpan<float> x, int n) => ScoreSamples(x, n).Average(); // x (N, D)

    /// <summary>Posterior probability of each component (N, K).</summary>
    public double[] PredictProba(ReadOnlySpan<float> x, int n) // x (N, D)
    {
        var (_, logResp) = Evaluate(x, n);
        return Array.ConvertAll(logResp, Math.Exp);
    }

    /// <summary>Most probable component of each point (N).</summary>
    public int[] Predict(ReadOnlySpan<float> x, int n) // x (N, D)
    {
        var (_, logResp) = Evaluate(x, n);
        int k = Components;
        var labels = new int[n];
        for (int i = 0; i < n; i++)
        {
            int best = 0;
            for (int c = 1; c < k; c++)
            {
                if (logResp[i * k + c] > logResp[i * k + best])
                {
                    best = c;
                }
            }
            labels[i] = best;
        }
        return labels;
    }

    /// <summary>Free parameters: covariance parameters + K D means + K - 1 weights (scikit-learn's _n_parameters).</summary>
    public int ParameterCount
    {
        get
        {
            int d = Features;
            int k = Components;
            long covariance = CovarianceType switch
            {
                CovarianceType.Full => (long)k * d * (d + 1) / 2,
                CovarianceType.Diagonal => (long)k * d,
                CovarianceType.Tied => (long)d * (d + 1) / 2,
                _ => k,
            };
            return checked((int)(covariance + (long)d * k + k - 1));
        }
    }

    /// <summary>Bayesian information criterion: -2 N score + p ln N.</summary>
    public double Bic(ReadOnlySpan<float> x, int n) => -2 * Score(x, n) * n + ParameterCount * Math.Log(n); // x (N, D)

    /// <summary>Akaike information criterion: -2 N score + 2 p.</summary>
    public double Aic(ReadOnlySpan<float> x, int n) => -2 * Score(x, n) * n + 2.0 * ParameterCount; // x (N, D)

    /// <summary>What the readers of a mixture file call it in their errors.</summary>
    public const string FormatName = "Gaussian mixture file";

    public const string FileFormat = "ilgpuoct.gaussian_mixture.v1";

    /// <summary>The most components and features a mixture file may declare.</summary>
    public const int MaxComponents = 1 << 16;
    public const int MaxFeatures = 1 << 16;

    /// <summary>Writes the fitted mixture as safetensors (float64 tensors, settings in the metadata), atomically.</summary>
    public void Save(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var file = new SafeTensorFile();
        AddTo(file, "");
        file.Write(path);
    }

    /// <summary>Adds the mixture's tensors and settings to <paramref name="file"/>, every name prefixed (detector files hold one per class).</summary>
    public void AddTo(SafeTensorFile file, string prefix)
    {
        ArgumentNullException.ThrowIfNull(file);
        RequireFitted(_weights);
        var inv = CultureInfo.InvariantCulture;
        var meta = new Dictionary<string, string>
        {
            ["format"] = FileFormat,
            ["covariance_type"] = CovarianceType.ToString(),
            ["components"] = Components.ToString(inv),
            ["features"] = Features.ToString(inv),
            ["reg_covar"] = Options.RegCovar.ToString("R", inv),
            ["tol"] = Options.Tolerance.ToString("R", inv),
            ["max_iter"] = Options.MaxIterations.ToString(inv),
            ["n_init"] = Options.Restarts.ToString(inv),
            ["seed"] = Options.Seed.ToString(inv),
            ["n_iter"] = NIter.ToString(inv),
            ["converged"] = Converged ? "true" : "false",
            ["lower_bound"] = LowerBound.ToString("R", inv),
        };
        foreach (var (key, value) in meta)
        {
            file.Metadata[prefix + key] = value;
        }
        int[] covShape = CovarianceShape(CovarianceType, Components, Features);
        file.Add(prefix + "weights", _weights, Components);
        file.Add(prefix + "means", _means, Components, Features);
        file.Add(prefix + "covariances", _covariances, covShape);
        file.Add(prefix + "precisions_cholesky", _precisionCholesky, covShape);
    }

    /// <summary>Reads a mixture written by <see cref="Save"/>; every field is checked (an InvalidFileFormatException names the problem).</summary>
    public static GaussianMixture Load(string path) => FromFields(new SafeTensorFields(SafeTensorFile.Read(path), FormatName));

    /// <summary>Reads a mixture from checked fields (a file, or one class of a detector file).</summary>
    public static GaussianMixture FromFields(SafeTensorFields fields)
    {
        ArgumentNullException.ThrowIfNull(fields);
        fields.Expect("format", FileFormat);
        var options = new GaussianMixtureOptions
        {
            Components = fields.Int("components", 1, MaxComponents),
            CovarianceType = fields.Enum<CovarianceType>("covariance_type"),
            RegCovar = fields.Double("reg_covar", 0, double.MaxValue),
            Tolerance = fields.Double("tol", 0, double.MaxValue),
            MaxIterations = fields.Int("max_iter", 0, int.MaxValue),
            Restarts = fields.Int("n_init", 1, int.MaxValue),
            Seed = fields.Int("seed", int.MinValue, int.MaxValue),
        };
        var gmm = new GaussianMixture(options)
        {
            Features = fields.Int("features", 1, MaxFeatures),
            NIter = fields.Int("n_iter", 0, int.MaxValue),
            Converged = fields.Bool("converged"),
            LowerBound = fields.Double("lower_bound", allowInfinite: true),
        };
        int[] covShape = CovarianceShape(options.CovarianceType, options.Components, gmm.Features);
        fields.Product("tensor 'covariances'", int.MaxValue, covShape);
        fields.Product("tensor 'means'", int.MaxValue, options.Components, gmm.Features);
        gmm._weights = fields.Doubles("weights", finite: true, options.Components);
        int bad = Array.FindIndex(gmm._weights, w => !(w >= 0 && w <= 1));
        if (bad >= 0)
        {
            throw fields.Error("tensor 'weights'", $"element {bad} is {gmm._weights[bad]}, expected a weight in [0, 1]");
        }
        gmm._means = fields.Doubles("means", finite: true, options.Components, gmm.Features);
        gmm._covariances = fields.Doubles("covariances", finite: true, covShape);
        gmm._precisionCholesky = fields.Doubles("precisions_cholesky", finite: true, covShape);
        gmm.IsFitted = true;
        return gmm;
    }

    internal static int[] CovarianceShape(CovarianceType type, int k, int d) => type switch
    {
        CovarianceType.Full => [k, d, d],
        CovarianceType.Diagonal => [k, d],
        CovarianceType.Tied => [d, d],
        _ => [k],
    };

    private (double[] LogProbNorm, double[] LogResp) Evaluate(ReadOnlySpan<float> x, int n)
    {
        RequireFitted(_weights);
        CheckData(x, n, Features, "score");
        int k = Components;
        double[] xd = new double[x.Length];
        for (int i = 0; i < xd.Length; i++)
        {
            xd[i] = x[i];
        }
        var logProb = new double[n * k];
        GaussianMixtureHost.EstimateLogGaussianProb(xd, n, Features, k, _means, _precisionCholesky, CovarianceType, logProb);
        var logProbNorm = new double[n];
        var logResp = new double[n * k];
        GaussianMixtureHost.LogResponsibilities(logProb, Array.ConvertAll(_weights, Math.Log), n, k, logProbNorm, logResp);
        return (logProbNorm, logResp);
    }

    private Parameters Initialize(double[] x, int n, int d, Random random, CancellationToken cancellationToken)
    {
        int k = Components;
        var type = CovarianceType;
        if (Options.Start is { } start)
        {
            double[] precisionCholesky = start.Precisions is null
                ? IdentityPrecisionCholesky(type, k, d)
                : GaussianMixtureHost.PrecisionCholeskyFromPrecisions(start.Precisions, type, k, d);
            double[] covariances = GaussianMixtureHost.CovariancesFromPrecisionCholesky(precisionCholesky, type, k, d);
            return new Parameters((double[])start.Weights.Clone(), (double[])start.Means.Clone(), covariances, precisionCholesky);
        }
        var (_, labels) = KMeans.Fit(x, n, d, k, random, Options.KMeansMaxIterations, cancellationToken: cancellationToken);
        var resp = new double[n * k];
        for (int i = 0; i < n; i++)
        {
            resp[i * k + labels[i]] = 1.0;
        }
        var (weights, means, cov) = GaussianMixtureHost.EstimateParameters(x, resp, n, d, k, Options.RegCovar, type);
        for (int c = 0; c < k; c++)
        {
            weights[c] /= n;
        }
        return new Parameters(weights, means, cov, GaussianMixtureHost.PrecisionCholeskyFromCovariances(cov, type, k, d));
    }

    private static double[] IdentityPrecisionCholesky(CovarianceType type, int k, int d)
    {
        switch (type)
        {
            case CovarianceType.Full:
            case CovarianceType.Tied:
            {
                int count = type == CovarianceType.Full ? k : 1;
                var result = new double[count * d * d];
                for (int c = 0; c < count; c++)
                {
                    for (int j = 0; j < d; j++)
                    {
                        result[c * d * d + j * d + j] = 1.0;
                    }
                }
                return result;
            }
            case CovarianceType.Diagonal:
                return Enumerable.Repeat(1.0, k * d).ToArray();
            default:
                return Enumerable.Repeat(1.0, k).ToArray();
        }
    }

    private void ValidateStart(GaussianMixtureStart start, int d)
    {
        int k = Components;
        if (start.Weights is null || start.Weights.Length != k)
        {
            throw new ArgumentException($"Start.Weights must hold {k} values (one per component).");
        }
        if (start.Weights.Any(w => !(w >= 0 && w <= 1)) || Math.Abs(start.Weights.Sum() - 1.0) > 1e-6)
        {
            throw new ArgumentException($"Start.Weights must lie in [0, 1] and sum to 1; they sum to {start.Weights.Sum():R}.");
        }
        if (start.Means is null || start.Means.Length != k * d)
        {
            throw new ArgumentException($"Start.Means must hold K * D = {k} * {d} values; got {start.Means?.Length ?? 0}.");
        }
        if (start.Precisions is not null)
        {
            int expected = CovarianceShape(CovarianceType, k, d).Aggregate(1, (a, b) => a * b);
            if (start.Precisions.Length != expected)
            {
                throw new ArgumentException($"Start.Precisions must hold {expected} values for {CovarianceType} covariances; got {start.Precisions.Length}.");
            }
        }
    }

    private static void CheckData(ReadOnlySpan<float> x, int n, int d, string what)
    {
        if (n < 1 || d < 1)
        {
            throw new ArgumentException($"Cannot {what} {n} x {d} data; pass N >= 1 points of D >= 1 features.");
        }
        if ((long)n * d != x.Length)
        {
            throw new ArgumentException($"x holds {x.Length} values but N * D = {n} * {d} = {(long)n * d}; pass x as (N, D) row-major.");
        }
        foreach (float v in x)
        {
            if (!float.IsFinite(v))
            {
                throw new ArgumentException($"x contains {v}; remove non-finite values before the mixture {what}.");
            }
        }
    }

    private T RequireFitted<T>(T value) => IsFitted ? value : throw new InvalidOperationException("The mixture is not fitted: call Fit (or Load) first.");

    private static float[] Flatten(float[,] x)
    {
        var flat = new float[x.Length];
        Buffer.BlockCopy(x, 0, flat, 0, x.Length * sizeof(float));
        return flat;
    }

    private sealed record Parameters(double[] Weights, double[] Means, double[] Covariances, double[] PrecisionCholesky);
}
