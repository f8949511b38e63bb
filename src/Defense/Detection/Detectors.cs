using System.Globalization;
using IlgpuOct.Defense.Attacks;
using IlgpuOct.Defense.Mixture;
using IlgpuOct.Kernels;
using IlgpuOct.Nn.IO;

namespace IlgpuOct.Defense.Detection;

/// <summary>
/// An adversarial-sample detector on penultimate features. <see cref="Score"/> is higher for
/// "more normal" images (a log density or a negative squared distance under the class the
/// classifier predicted); an image is rejected when its score is below <see cref="Threshold"/>,
/// which <see cref="Calibrate"/> places so that a chosen fraction of clean validation images is rejected.
/// </summary>
public interface IAdversarialDetector
{
    string Name { get; }

    int Classes { get; }

    int Features { get; }

    /// <summary>Reject when the score is below this.</summary>
    double Threshold { get; }

    /// <summary>The clean rejection rate the threshold was calibrated for.</summary>
    double CleanRejectionRate { get; }

    /// <summary>Fits on clean training features (N, D) with their true labels (N).</summary>
    void Fit(float[] features, int n, int d, int[] labels, int classes, Accelerator? accelerator = null, CancellationToken cancellationToken = default);

    /// <summary>Normality scores (N) of features (N, D) under the density of each row's predicted class.</summary>
    double[] Score(float[] features, int n, int[] predicted);

    /// <summary>The per-class scores as differentiable densities (what an adaptive attacker differentiates).</summary>
    IReadOnlyList<IFeatureDensity> ClassDensities { get; }

    /// <summary>Sets the threshold at the <paramref name="rejectionRate"/> quantile of clean validation scores.</summary>
    void Calibrate(double[] cleanScores, double rejectionRate);

    void Save(string path);
}

/// <summary>Threshold handling and scoring through the per-class densities.</summary>
public abstract class FeatureDetector : IAdversarialDetector
{
    public const string Format = "ilgpuoct.detector.v1";

    public abstract string Name { get; }

    public int Classes { get; protected set; }

    public int Features { get; protected set; }

    public double Threshold { get; private set; } = double.NegativeInfinity;

    public double CleanRejectionRate { get; private set; }

    public abstract IReadOnlyList<IFeatureDensity> ClassDensities { get; }

    public abstract void Fit(float[] features, int n, int d, int[] labels, int classes, Accelerator? accelerator = null, CancellationToken cancellationToken = default);

    public virtual double[] Score(float[] features, int n, int[] predicted)
    {
        ArgumentNullException.ThrowIfNull(features);
        ArgumentNullException.ThrowIfNull(predicted);
        RequireFitted();
        CheckRows(features, n, predicted);
        var scores = new double[n];
        var densities = ClassDensities;
        for (int c = 0; c < Classes; c++)
        {
            int[] rows = Enumerable.Range(0, n).Where(i => predicted[i] == c).ToArray();
            if (rows.Length == 0)
            {
                continue;
            }
            var x = Gather(features, Features, rows);
            double[] s = densities[c].ScoreAndGradient(x, rows.Length, []);
            for (int j = 0; j < rows.Length; j++)
            {
                scores[rows[j]] = s[j];
            }
        }
        return scores;
    }

    public void Calibrate(double[] cleanScores, double rejectionRate)
    {
        ArgumentNullException.ThrowIfNull(cleanScores);
        if (!(rejectionRate >= 0 && rejectionRate < 1))
        {
            throw new ArgumentException($"The clean rejection rate must lie in [0, 1); got {rejectionRate}.");
        }
        if (cleanScores.Length == 0)
        {
            throw new ArgumentException("Calibration needs clean validation scores; none were given.");
        }
        Threshold = Quantile(cleanScores, rejectionRate);
        CleanRejectionRate = rejectionRate;
    }

    /// <summary>Sets a threshold read from a file.</summary>
    protected void SetThreshold(double threshold, double rate)
    {
        Threshold = threshold;
        CleanRejectionRate = rate;
    }

    /// <summary>True where a score falls below the threshold.</summary>
    public bool[] Rejects(double[] scores) => Array.ConvertAll(scores ?? throw new ArgumentNullException(nameof(scores)), s => !(s >= Threshold));

    /// <summary>The largest value t such that the fraction of scores strictly below t is at most <paramref name="rate"/>: the floor(rate N)-th smallest score.</summary>
    public static double Quantile(double[] scores, double rate)
    {
        double[] sorted = [.. scores.Order()];
        int index = (int)Math.Floor(rate * sorted.Length);
        return sorted[Math.Min(index, sorted.Length - 1)];
    }

    public abstract void Save(string path);

    protected Dictionary<string, string> BaseMetadata() => new(StringComparer.Ordinal)
    {
        ["format"] = Format,
        ["detector"] = Name,
        ["classes"] = Classes.ToString(CultureInfo.InvariantCulture),
        ["features"] = Features.ToString(CultureInfo.InvariantCulture),
        ["threshold"] = Threshold.ToString("R", CultureInfo.InvariantCulture),
        ["clean_rejection_rate"] = CleanRejectionRate.ToString("R", CultureInfo.InvariantCulture),
        ["score"] = "higher = more normal; reject when score < threshold",
    };

    protected void ReadBaseMetadata(SafeTensorFields fields)
    {
        (Classes, Features, double threshold, double rate) = DetectorFile.BaseMetadata(fields);
        SetThreshold(threshold, rate);
    }

    protected void RequireFitted()
    {
        if (Classes == 0)
        {
            throw new InvalidOperationException($"The {Name} detector is not fitted; call Fit first.");
        }
    }

    protected static void CheckFitInput(float[] features, int n, int d, int[] labels, int classes)
    {
        ArgumentNullException.ThrowIfNull(features);
        ArgumentNullException.ThrowIfNull(labels);
        if (n < 1 || d < 1 || features.Length != (long)n * d)
        {
            throw new ArgumentException($"Features must be (N, D) = ({n}, {d}), {(long)n * d} values; got {features.Length}.");
        }
        if (labels.Length != n)
        {
            throw new ArgumentException($"{n} feature rows need {n} labels; got {labels.Length}.");
        }
        if (classes < 2 || labels.Any(l => (uint)l >= (uint)classes))
        {
            throw new ArgumentException($"Labels must lie in [0, {classes}) with at least 2 classes.");
        }
        for (int c = 0; c < classes; c++)
        {
            if (!labels.Contains(c))
            {
                throw new ArgumentException($"Class {c} has no training features; every class needs some to fit its density.");
            }
        }
    }

    private void CheckRows(float[] features, int n, int[] predicted)
    {
        if (features.Length != (long)n * Features || predicted.Length != n)
        {
            throw new ArgumentException($"Scoring needs features ({n}, {Features}) and {n} predicted labels; got {features.Length} values and {predicted.Length} labels.");
        }
        if (predicted.Any(p => (uint)p >= (uint)Classes))
        {
            throw new ArgumentException($"Predicted labels must lie in [0, {Classes}).");
        }
    }

    internal static float[] Gather(float[] x, int d, int[] rows)
    {
        var result = new float[rows.Length * d];
        for (int j = 0; j < rows.Length; j++)
        {
            Array.Copy(x, (long)rows[j] * d, result, (long)j * d, d);
        }
        return result;
    }

    internal static int[] RowsOf(int[] labels, int c) => Enumerable.Range(0, labels.Length).Where(i => labels[i] == c).ToArray();

    /// <summary>Mean over features of the per-feature variance of x (N, D): the scale the regularisers are relative to.</summary>
    internal static double MeanVariance(float[] x, int n, int d)
    {
        double total = 0;
        for (int j = 0; j < d; j++)
        {
            double s = 0, s2 = 0;
            for (int i = 0; i < n; i++)
            {
                double v = x[(long)i * d + j];
                s += v;
                s2 += v * v;
            }
            double mean = s / n;
            total += Math.Max(0, s2 / n - mean * mean);
        }
        return Math.Max(total / d, 1e-12);
    }

    /// <summary>Reads any detector written by <see cref="Save"/>.</summary>
    public static FeatureDetector Load(string path)
    {
        var fields = DetectorFile.Open(path);
        return fields.Text("detector") switch
        {
            UadDetector.DetectorName => UadDetector.FromFile(fields),
            MahalanobisDetector.DetectorName => MahalanobisDetector.FromFile(fields),
            KdeDetector.DetectorName => KdeDetector.FromFile(fields),
            var other => throw fields.Error("__metadata__ 'detector'", $"it is '{other}', expected uad, mahalanobis or kde"),
        };
    }

    /// <summary>A detector by name with default settings: uad, mahalanobis or kde.</summary>
    public static FeatureDetector Create(string name, int seed = 0) => name.ToLowerInvariant() switch
    {
        UadDetector.DetectorName => new UadDetector(new UadOptions { Seed = seed }),
        MahalanobisDetector.DetectorName => new MahalanobisDetector(),
        KdeDetector.DetectorName => new KdeDetector(),
        _ => throw new ArgumentException($"Unknown detector '{name}'; use uad, mahalanobis or kde."),
    };
}

/// <summary>Settings of <see cref="UadDetector"/>.</summary>
public sealed record UadOptions
{
    /// <summary>Components per class; reduced per class to floor(N_c / (D + 1)) (at least 1) so every component can have a non-singular covariance.</summary>
    public int Components { get; init; } = 2;

    public CovarianceType CovarianceType { get; init; } = CovarianceType.Full;

    /// <summary>reg_covar = RelativeRegularization x (mean feature variance of the class).</summary>
    public double RelativeRegularization { get; init; } = 1e-2;

    public int Restarts { get; init; } = 1;

    public int Seed { get; init; }
}

/// <summary>
/// UAD (the paper's unsupervised adversarial detection): one Gaussian mixture per class on the
/// penultimate features of clean training images; score = log density under the mixture of the
/// predicted class. Defaults: up to 2 full-covariance components per class with reg_covar 1% of
/// the mean feature variance. Why: with 512 features and ~1000 images per class a full covariance
/// has 131k free parameters, so more components leave each with fewer points than dimensions
/// (singular); the cap N_c / (D + 1) keeps every component estimable, and the relative
/// regulariser keeps the smallest eigenvalues away from zero whatever the feature scale.
/// </summary>
public sealed class UadDetector(UadOptions? options = null) : FeatureDetector
{
    public const string DetectorName = "uad";

    private GaussianMixture[] _mixtures = [];
    private IFeatureDensity[] _densities = [];

    public UadOptions Options { get; } = options ?? new UadOptions();

    public override string Name => DetectorName;

    public IReadOnlyList<GaussianMixture> Mixtures => _mixtures;

    public override IReadOnlyList<IFeatureDensity> ClassDensities => _densities;

    public override void Fit(float[] features, int n, int d, int[] labels, int classes, Accelerator? accelerator = null, CancellationToken cancellationToken = default)
    {
        CheckFitInput(features, n, d, labels, classes);
        _mixtures = FitPerClass(features, n, d, labels, classes, Options, accelerator, cancellationToken);
        _densities = [.. _mixtures.Select(m => (IFeatureDensity)new GmmLogDensity(m))];
        Classes = classes;
        Features = d;
    }

    /// <summary>One mixture per class on the rows of that class (also used for the HFC attacker's per-stage mixtures).</summary>
    public static GaussianMixture[] FitPerClass(float[] features, int n, int d, int[] labels, int classes, UadOptions options, Accelerator? accelerator, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(options);
        var mixtures = new GaussianMixture[classes];
        for (int c = 0; c < classes; c++)
        {
            int[] rows = RowsOf(labels, c);
            var x = Gather(features, d, rows);
            int k = Math.Clamp(rows.Length / (d + 1), 1, Math.Max(1, options.Components));
            var gmm = new GaussianMixture(new GaussianMixtureOptions
            {
                Components = k,
                CovarianceType = options.CovarianceType,
                RegCovar = options.RelativeRegularization * MeanVariance(x, rows.Length, d),
                Restarts = options.Restarts,
                Seed = options.Seed + c,
            });
            // The cpu engine is the float64 host path; any other accelerator runs the EM kernels.
            mixtures[c] = gmm.Fit(x, rows.Length, d, accelerator is { Kind: AcceleratorKind.Cpu } ? null : accelerator, null, cancellationToken);
        }
        return mixtures;
    }

    public override double[] Score(float[] features, int n, int[] predicted)
    {
        ArgumentNullException.ThrowIfNull(features);
        ArgumentNullException.ThrowIfNull(predicted);
        RequireFitted();
        var scores = new double[n];
        for (int c = 0; c < Classes; c++)
        {
            int[] rows = RowsOf(predicted, c);
            if (rows.Length == 0)
            {
                continue;
            }
            double[] s = _mixtures[c].ScoreSamples(Gather(features, Features, rows), rows.Length);
            for (int j = 0; j < rows.Length; j++)
            {
                scores[rows[j]] = s[j];
            }
        }
        return scores;
    }

    public override void Save(string path)
    {
        RequireFitted();
        var file = new SafeTensorFile(BaseMetadata());
        for (int c = 0; c < Classes; c++)
        {
            _mixtures[c].AddTo(file, $"class{c}.");
        }
        file.Write(path);
    }

    internal static UadDetector FromFile(SafeTensorFields fields)
    {
        var detector = new UadDetector();
        detector.ReadBaseMetadata(fields);
        var mixtures = new GaussianMixture[detector.Classes];
        for (int c = 0; c < detector.Classes; c++)
        {
            mixtures[c] = GaussianMixture.FromFields(fields.Under($"class{c}."));
            if (mixtures[c].Features != detector.Features)
            {
                throw fields.Error($"__metadata__ 'class{c}.features'", $"it is {mixtures[c].Features}, expected the detector's {detector.Features}");
            }
        }
        detector._mixtures = mixtures;
        detector._densities = [.. mixtures.Select(m => (IFeatureDensity)new GmmLogDensity(m))];
        return detector;
    }
}

/// <summary>
/// Lee et al. (2018): one Gaussian per class with a covariance shared by all classes (the pooled
/// within-class covariance); score = -1/2 (x - mu_c)^T Sigma^-1 (x - mu_c) for the predicted class c.
/// </summary>
public sealed class MahalanobisDetector(double relativeRegularization = 1e-3) : FeatureDetector
{
    public const string DetectorName = "mahalanobis";

    private double[] _means = []; // (C, D)
    private double[] _covariance = []; // (D, D) shared
    private IFeatureDensity[] _densities = [];

    public override string Name => DetectorName;

    public double RelativeRegularization { get; } = relativeRegularization;

    public override IReadOnlyList<IFeatureDensity> ClassDensities => _densities;

    public override void Fit(float[] features, int n, int d, int[] labels, int classes, Accelerator? accelerator = null, CancellationToken cancellationToken = default)
    {
        CheckFitInput(features, n, d, labels, classes);
        var means = new double[classes * d];
        var counts = new int[classes];
        for (int i = 0; i < n; i++)
        {
            counts[labels[i]]++;
            for (int j = 0; j < d; j++)
            {
                means[labels[i] * d + j] += features[(long)i * d + j];
            }
        }
        for (int c = 0; c < classes; c++)
        {
            for (int j = 0; j < d; j++)
            {
                means[c * d + j] /= counts[c];
            }
        }
        var cov = new double[d * d];
        var centered = new double[d];
        for (int i = 0; i < n; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            for (int j = 0; j < d; j++)
            {
                centered[j] = features[(long)i * d + j] - means[labels[i] * d + j];
            }
            for (int a = 0; a < d; a++)
            {
                double ca = centered[a];
                for (int b = 0; b <= a; b++)
                {
                    cov[a * d + b] += ca * centered[b];
                }
            }
        }
        double trace = 0;
        for (int a = 0; a < d; a++)
        {
            for (int b = 0; b <= a; b++)
            {
                cov[a * d + b] /= n;
                cov[b * d + a] = cov[a * d + b];
            }
            trace += cov[a * d + a];
        }
        double reg = RelativeRegularization * Math.Max(trace / d, 1e-12);
        for (int a = 0; a < d; a++)
        {
            cov[a * d + a] += reg;
        }
        Set(means, cov, classes, d);
    }

    private void Set(double[] means, double[] covariance, int classes, int d)
    {
        _means = means;
        _covariance = covariance;
        double[] cholesky = DenseMath.Cholesky(covariance, d);
        _densities = [.. Enumerable.Range(0, classes).Select(c => (IFeatureDensity)new GaussianQuadraticDensity(means.AsSpan(c * d, d).ToArray(), cholesky, d))];
        Classes = classes;
        Features = d;
    }

    public override void Save(string path)
    {
        RequireFitted();
        var meta = BaseMetadata();
        meta["relative_regularization"] = RelativeRegularization.ToString("R", CultureInfo.InvariantCulture);
        var file = new SafeTensorFile(meta);
        file.Add("means", _means, Classes, Features);
        file.Add("covariance", _covariance, Features, Features);
        file.Write(path);
    }

    internal static MahalanobisDetector FromFile(SafeTensorFields fields)
    {
        var detector = new MahalanobisDetector(fields.Double("relative_regularization", 0, double.MaxValue));
        detector.ReadBaseMetadata(fields);
        int c = detector.Classes, d = detector.Features;
        fields.Product("tensor 'means'", int.MaxValue, c, d);
        fields.Product("tensor 'covariance'", int.MaxValue, d, d);
        double[] means = fields.Doubles("means", finite: true, c, d);
        double[] covariance = fields.Doubles("covariance", finite: true, d, d);
        try
        {
            detector.Set(means, covariance, c, d);
        }
        catch (ArgumentException e)
        {
            throw fields.Error("tensor 'covariance'", e.Message, e);
        }
        return detector;
    }
}

/// <summary>
/// Feinman et al. (2017): Gaussian kernel density of the penultimate features of each class's
/// clean training images; score = log (1/M sum_i N(x; x_i, h^2 I)) for the predicted class.
/// Bandwidth: given, or (default) Scott's rule on the class's mean feature standard deviation.
/// At most <see cref="MaxPointsPerClass"/> training points per class are kept (a seeded subset).
/// </summary>
public sealed class KdeDetector(double? bandwidth = null, int maxPointsPerClass = 1000, int seed = 0) : FeatureDetector
{
    public const string DetectorName = "kde";

    private float[][] _points = []; // per class (M_c, D)
    private double[] _bandwidths = []; // (C)
    private IFeatureDensity[] _densities = [];

    public override string Name => DetectorName;

    public double? Bandwidth { get; } = bandwidth;

    public int MaxPointsPerClass { get; } = maxPointsPerClass;

    public IReadOnlyList<double> Bandwidths => _bandwidths;

    public override IReadOnlyList<IFeatureDensity> ClassDensities => _densities;

    public override void Fit(float[] features, int n, int d, int[] labels, int classes, Accelerator? accelerator = null, CancellationToken cancellationToken = default)
    {
        CheckFitInput(features, n, d, labels, classes);
        if (Bandwidth is { } h && !(h > 0))
        {
            throw new ArgumentException($"The KDE bandwidth must be positive; got {h}.");
        }
        var points = new float[classes][];
        var bandwidths = new double[classes];
        for (int c = 0; c < classes; c++)
        {
            int[] rows = RowsOf(labels, c);
            if (rows.Length > MaxPointsPerClass)
            {
                var random = new Random(seed + c);
                rows = [.. rows.OrderBy(_ => random.Next()).Take(MaxPointsPerClass).Order()];
            }
            points[c] = Gather(features, d, rows);
            bandwidths[c] = Bandwidth ?? Math.Sqrt(MeanVariance(points[c], rows.Length, d)) * Math.Pow(rows.Length, -1.0 / (d + 4));
        }
        Set(points, bandwidths, d);
    }

    private void Set(float[][] points, double[] bandwidths, int d)
    {
        _points = points;
        _bandwidths = bandwidths;
        _densities = [.. points.Select((p, c) => (IFeatureDensity)new KernelDensity(p, d, bandwidths[c]))];
        Classes = points.Length;
        Features = d;
    }

    public override void Save(string path)
    {
        RequireFitted();
        var file = new SafeTensorFile(BaseMetadata());
        file.Add("bandwidths", _bandwidths, Classes);
        for (int c = 0; c < Classes; c++)
        {
            file.Add($"class{c}.points", _points[c], _points[c].Length / Features, Features);
        }
        file.Write(path);
    }

    internal static KdeDetector FromFile(SafeTensorFields fields)
    {
        var detector = new KdeDetector();
        detector.ReadBaseMetadata(fields);
        int d = detector.Features;
        var points = new float[detector.Classes][];
        for (int c = 0; c < detector.Classes; c++)
        {
            string name = $"class{c}.points";
            var shape = fields.HasTensor(name) ? fields.File[name].Shape : [];
            int m = shape.Length == 2 && shape[0] >= 1 ? shape[0] : throw fields.Error($"tensor '{name}'", $"it is missing or not (M >= 1, {d})");
            points[c] = Array.ConvertAll(fields.Doubles(name, finite: true, m, d), v => (float)v);
        }
        double[] bandwidths = fields.Doubles("bandwidths", finite: true, detector.Classes);
        int bad = Array.FindIndex(bandwidths, h => !(h > 0));
        if (bad >= 0)
        {
            throw fields.Error("tensor 'bandwidths'", $"element {bad} is {bandwidths[bad]}, expected a positive bandwidth");
        }
        detector.Set(points, bandwidths, d);
        return detector;
    }
}

/// <summary>score(x) = -1/2 ||L^-1 (x - mu)||^2 with Sigma = L L^T; gradient -Sigma^-1 (x - mu).</summary>
public sealed class GaussianQuadraticDensity(double[] mean, double[] cholesky, int d) : IFeatureDensity
{
    public int Features => d;

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

/// <summary>log (1/M sum_i N(x; p_i, h^2 I)) and its gradient sum_i w_i (p_i - x) / h^2 (w the softmax weights).</summary>
public sealed class KernelDensity(float[] points, int d, double bandwidth) : IFeatureDensity
{
    private readonly int _m = points.Length / d;

    public int Features => d;

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

/// <summary>Small dense linear algebra in float64 (row-major).</summary>
public static class DenseMath
{
    /// <summary>Lower Cholesky factor L of a symmetric positive-definite A (D, D).</summary>
    public static double[] Cholesky(double[] a, int d)
    {
        var l = new double[d * d];
        for (int j = 0; j < d; j++)
        {
            double s = a[j * d + j];
            for (int k = 0; k < j; k++)
            {
                s -= l[j * d + k] * l[j * d + k];
            }
            if (!(s > 0))
            {
                throw new ArgumentException($"The covariance is not positive definite (pivot {j} is {s}); raise the regularisation.");
            }
            double diag = Math.Sqrt(s);
            l[j * d + j] = diag;
            for (int i = j + 1; i < d; i++)
            {
                double t = a[i * d + j];
                for (int k = 0; k < j; k++)
                {
                    t -= l[i * d + k] * l[j * d + k];
                }
                l[i * d + j] = t / diag;
            }
        }
        return l;
    }

    /// <summary>y = L^-1 y in place.</summary>
    public static void SolveLower(double[] l, int d, Span<double> y)
    {
        for (int i = 0; i < d; i++)
        {
            double s = y[i];
            for (int k = 0; k < i; k++)
            {
                s -= l[i * d + k] * y[k];
            }
            y[i] = s / l[i * d + i];
        }
    }

    /// <summary>y = L^-T y in place.</summary>
    public static void SolveUpperTransposed(double[] l, int d, Span<double> y)
    {
        for (int i = d - 1; i >= 0; i--)
        {
            double s = y[i];
            for (int k = i + 1; k < d; k++)
            {
                s -= l[k * d + i] * y[k];
            }
            y[i] = s / l[i * d + i];
        }
    }
}
