using IlgpuOct.Defense.Density;
using IlgpuOct.Kernels;
using IlgpuOct.Nn;
using IlgpuOct.Nn.Checkpoints;
using IlgpuOct.Nn.Data;
using IlgpuOct.Nn.IO;

namespace IlgpuOct.Defense.Detection;

/// <summary>Settings of <c>detect fit</c>.</summary>
public sealed record DetectorFitOptions
{
    public required string ModelPath { get; init; }

    public required string DataPath { get; init; }

    public string Detector { get; init; } = UadDetector.DetectorName;

    public double CleanRejectionRate { get; init; } = 0.05;

    public int Components { get; init; } = 2;

    public CovarianceType CovarianceType { get; init; } = CovarianceType.Full;

    public double RelativeRegularization { get; init; } = 1e-2;

    /// <summary>KDE bandwidth; null = Scott's rule.</summary>
    public double? Bandwidth { get; init; }

    public int Seed { get; init; }
}

/// <summary>Summary of a scored set of images.</summary>
public sealed record DetectorScoreSummary(string Detector, int Images, int Rejected, double Threshold, double MeanScore, double Accuracy, double[] Scores, int[] Predicted);

/// <summary>Fitting a detector on a model's features of a data set, and scoring images with it.</summary>
public static class DetectorWorkflow
{
    public static FeatureDetector Fit(Accelerator accelerator, DetectorFitOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        ArgumentNullException.ThrowIfNull(options);
        using var data = DatasetFile.Open(options.DataPath);
        var (model, _) = Checkpoint.Open(accelerator, options.ModelPath);
        using (model)
        {
            RequireCompatible(model, data);
            FeatureDetector detector = options.Detector.ToLowerInvariant() switch
            {
                UadDetector.DetectorName => new UadDetector(new UadOptions
                {
                    Components = options.Components,
                    CovarianceType = options.CovarianceType,
                    RelativeRegularization = options.RelativeRegularization,
                    Seed = options.Seed,
                }),
                MahalanobisDetector.DetectorName => new MahalanobisDetector(),
                KdeDetector.DetectorName => new KdeDetector(options.Bandwidth, seed: options.Seed),
                _ => throw new ArgumentException($"Unknown detector '{options.Detector}'; use uad, mahalanobis or kde."),
            };
            var train = data.Split("train");
            var (images, labels) = Load(train);
            var features = ModelFeatures.Compute(model, images, train.Count, false, cancellationToken);
            detector.Fit(features.Features, train.Count, model.Config.FeatureCount, labels, data.ClassCount, accelerator, cancellationToken);
            var calibration = data.Split(data.HasSplit("val") ? "val" : "train");
            var (valImages, _) = Load(calibration);
            var val = ModelFeatures.Compute(model, valImages, calibration.Count, false, cancellationToken);
            detector.Calibrate(detector.Score(val.Features, calibration.Count, val.Predicted), options.CleanRejectionRate);
            return detector;
        }
    }

    /// <summary>Scores the images of a data set split, or of an adversarial file or `attack` output folder ("adv" (N, C, H, W), optional "labels" (N)).</summary>
    public static DetectorScoreSummary Score(Accelerator accelerator, string detectorPath, string modelPath, string? dataPath, string split, string? adversarialPath,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        if ((dataPath is null) == (adversarialPath is null))
        {
            throw new ArgumentException("Give exactly one of --data FILE or --adv ADVFILE.");
        }
        var detector = FeatureDetector.Load(detectorPath);
        var (model, _) = Checkpoint.Open(accelerator, modelPath);
        using (model)
        {
            if (detector.Features != model.Config.FeatureCount)
            {
                throw new ArgumentException($"The detector was fitted on {detector.Features} features; this model has {model.Config.FeatureCount}.");
            }
            float[] images;
            int[]? labels;
            int n;
            if (dataPath is not null)
            {
                using var data = DatasetFile.Open(dataPath);
                RequireCompatible(model, data);
                var s = data.HasSplit(split) ? data.Split(split) : throw new ArgumentException($"'{dataPath}' has no '{split}' split.");
                (images, labels) = Load(s);
                n = s.Count;
            }
            else
            {
                string advFile = Directory.Exists(adversarialPath) ? Path.Combine(adversarialPath, "adversarial.safetensors") : adversarialPath!;
                var adversarial = AdversarialFile.Read(advFile, model.Config.InChannels, model.Config.NumClasses);
                (images, n, labels) = (adversarial.Images, adversarial.Count, adversarial.Labels);
            }
            var outputs = ModelFeatures.Compute(model, images, n, false, cancellationToken);
            double[] scores = detector.Score(outputs.Features, n, outputs.Predicted);
            int rejected = detector.Rejects(scores).Count(r => r);
            double accuracy = labels is null ? double.NaN : Enumerable.Range(0, n).Count(i => outputs.Predicted[i] == labels[i]) / (double)n;
            return new DetectorScoreSummary(detector.Name, n, rejected, detector.Threshold, scores.Average(), accuracy, scores, outputs.Predicted);
        }
    }

    private static (float[] Images, int[] Labels) Load(DatasetSplit split)
    {
        int[] idx = [.. Enumerable.Range(0, split.Count)];
        var images = new float[(long)split.Count * split.Channels * split.Height * split.Width];
        split.CopyImages(idx, images);
        var labels = new int[split.Count];
        split.CopyLabels(idx, labels);
        return (images, labels);
    }

    private static void RequireCompatible(ResNet18 model, DatasetFile data)
    {
        if (model.Config.NumClasses != data.ClassCount || model.Config.InChannels != data.Channels)
        {
            throw new ArgumentException($"The model has {model.Config.NumClasses} classes and {model.Config.InChannels} channel(s); the data set has {data.ClassCount} and {data.Channels}.");
        }
    }
}
