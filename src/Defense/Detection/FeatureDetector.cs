using System.Globalization;
using IlgpuOct.Defense.Density;
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
    void Fit(float[] features, int n, int d, int[] labels, int classes, Accelerator accelerator, CancellationToken cancellationToken = default);

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

    public abstract void Fit(float[] features, int n, int d, int[] labels, int classes, Accelerator accelerator, CancellationToken cancellationToken = default);

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
