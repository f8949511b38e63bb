using System.Globalization;
using IlgpuOct.Defense.Density;
using IlgpuOct.Kernels;
using IlgpuOct.Nn.IO;

namespace IlgpuOct.Defense.Detection;

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

    public override void Fit(float[] features, int n, int d, int[] labels, int classes, Accelerator accelerator, CancellationToken cancellationToken = default)
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
        double[] cholesky = DenseMath.Cholesky(covariance, d, (pivot, value) =>
            new ArgumentException($"The covariance is not positive definite (pivot {pivot} is {value}); raise the regularisation."));
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
