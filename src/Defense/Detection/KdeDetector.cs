using System.Globalization;
using IlgpuOct.Defense.Density;
using IlgpuOct.Kernels;
using IlgpuOct.Nn.IO;

namespace IlgpuOct.Defense.Detection;

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

    public override void Fit(float[] features, int n, int d, int[] labels, int classes, Accelerator accelerator, CancellationToken cancellationToken = default)
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
