using System.Globalization;
using IlgpuOct.Defense.Density;
using IlgpuOct.Kernels;
using IlgpuOct.Nn.IO;

namespace IlgpuOct.Defense.Detection;

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

    public override void Fit(float[] features, int n, int d, int[] labels, int classes, Accelerator accelerator, CancellationToken cancellationToken = default)
    {
        CheckFitInput(features, n, d, labels, classes);
        _mixtures = FitPerClass(features, n, d, labels, classes, Options, accelerator, cancellationToken);
        _densities = [.. _mixtures.Select(m => (IFeatureDensity)new GmmLogDensity(m))];
        Classes = classes;
        Features = d;
    }

    /// <summary>One mixture per class on the rows of that class (also used for the HFC attacker's per-stage mixtures).</summary>
    public static GaussianMixture[] FitPerClass(float[] features, int n, int d, int[] labels, int classes, UadOptions options, Accelerator accelerator, CancellationToken cancellationToken)
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
            mixtures[c] = gmm.Fit(x, rows.Length, d, accelerator, null, cancellationToken);
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
