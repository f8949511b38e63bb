using IlgpuOct.Defense.Detection;
using IlgpuOct.Kernels;
using IlgpuOct.Nn.Checkpoints;
using IlgpuOct.Nn.Data;
using IlgpuOct.Nn.IO;
using IlgpuOct.Nn.Training;

namespace IlgpuOct.Defense.Experiments;

/// <summary>Settings of <c>ilgpuoct evaluate</c>.</summary>
public sealed record EvaluateOptions
{
    public required string ModelPath { get; init; }

    public required string DataPath { get; init; }

    /// <summary>Recompute the data set's SHA-256 before use (off: --no-verify).</summary>
    public bool VerifyData { get; init; } = true;

    /// <summary>A detector file from <c>detect fit</c>; null = fit UAD, Mahalanobis and KDE on the training split.</summary>
    public string? DetectorPath { get; init; }

    /// <summary>fgsm, pgd, cw, adaptive (HFC when UAD is among the detectors, and density-PGD against each detector) or none.</summary>
    public string Attack { get; init; } = "pgd";

    public float Epsilon { get; init; } = 0.005f;

    public int Steps { get; init; } = 10;

    public double CwConstant { get; init; } = 0.1;

    public int CwIterations { get; init; } = 100;

    /// <summary>Test images attacked (a seeded class-balanced sample of the test split).</summary>
    public int Images { get; init; } = 200;

    public double AdaptiveLambda { get; init; } = 1.0;

    public double CleanRejectionRate { get; init; } = 0.05;

    public int Seed { get; init; }

    /// <summary>Writes the adversarial images of the (first) attack as safetensors ("adv" (N, C, H, W), "labels" (N)), as `ilgpuoct attack` does.</summary>
    public string? SaveAdversarialPath { get; init; }
}

public sealed record EvaluateResult(double CleanTestAccuracy, double CleanSubsetAccuracy, IReadOnlyList<CurvePoint> Curve, IReadOnlyList<DetectionRow> Detection, IReadOnlyList<RiskRow> Risk);

/// <summary>Clean accuracy, accuracy under one attack, detector AUROC/AUPRC and risk with and without the detector(s).</summary>
public static class Evaluate
{
    public static EvaluateResult Run(Accelerator accelerator, EvaluateOptions options, IProgress<string>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        ArgumentNullException.ThrowIfNull(options);
        string attack = options.Attack.ToLowerInvariant();
        if (attack is not ("fgsm" or "pgd" or "cw" or "adaptive" or "none"))
        {
            throw new ArgumentException($"--attack must be fgsm, pgd, cw, adaptive or none; got '{options.Attack}'.");
        }
        using var data = DatasetFile.Open(options.DataPath, options.VerifyData);
        var (model, _) = Checkpoint.Open(accelerator, options.ModelPath);
        using (model)
        {
            if (model.Config.NumClasses != data.ClassCount || model.Config.InChannels != data.Channels)
            {
                throw new ArgumentException($"The model has {model.Config.NumClasses} classes and {model.Config.InChannels} channel(s); the data set has {data.ClassCount} and {data.Channels}.");
            }
            FeatureDetector[]? detectors = options.DetectorPath is null ? null : [FeatureDetector.Load(options.DetectorPath)];
            if (detectors is not null && detectors[0].Features != model.Config.FeatureCount)
            {
                throw new ArgumentException($"The detector was fitted on {detectors[0].Features} features; this model has {model.Config.FeatureCount}. Fit it on this model's features.");
            }
            var test = data.Split("test");
            int[] idx = Reproduce.AttackSubset(test, options.Images, options.Seed);
            var profile = new ReproduceProfile
            {
                Name = "evaluate",
                AttackImages = idx.Length,
                FgsmEpsilons = attack == "fgsm" ? [options.Epsilon] : [],
                PgdEpsilons = attack == "pgd" ? [options.Epsilon] : [],
                PgdSteps = options.Steps,
                CwConstants = attack == "cw" ? [options.CwConstant] : [],
                CwIterations = options.CwIterations,
                AdaptiveEpsilons = attack == "adaptive" ? [options.Epsilon] : [],
                AdaptiveLambdas = [options.AdaptiveLambda],
                TableEpsilon = options.Epsilon,
                RiskEpsilons = [],
                CleanRejectionRate = options.CleanRejectionRate,
                JudgeEveryAttack = true,
            };
            double testAccuracy = Trainer.EvaluateAccuracy(model, test, 64, cancellationToken);
            var evaluation = new ModelEvaluation(model, data, data.HasSplit("val") ? "val" : "train", idx, profile, options.Seed, accelerator, progress, cancellationToken, detectors,
                options.SaveAdversarialPath);
            evaluation.Run("model");
            return new EvaluateResult(testAccuracy, evaluation.CleanSubsetAccuracy, evaluation.Curve, evaluation.Detection, evaluation.Risk);
        }
    }

    internal static void SaveAdversarial(string path, float[] images, int[] shape, int[] labels)
    {
        var file = AdversarialFile.Create(images, shape, labels);
        file.Write(path);
    }
}
