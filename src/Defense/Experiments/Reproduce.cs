using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Serialization;
using IlgpuOct.Defense.Attacks;
using IlgpuOct.Defense.Detection;
using IlgpuOct.Defense.Metrics;
using IlgpuOct.Defense.Density;
using IlgpuOct.Defense.Risk;
using IlgpuOct.Defense.Training;
using IlgpuOct.Kernels;
using IlgpuOct.Nn;
using IlgpuOct.Nn.Checkpoints;
using IlgpuOct.Nn.Data;
using IlgpuOct.Nn.Training;

namespace IlgpuOct.Defense.Experiments;

/// <summary>Settings of one reproduce run.</summary>
public sealed record ReproduceOptions
{
    public required ReproduceProfile Profile { get; init; }

    /// <summary>Data set file; null = generate the synthetic OCT set into the run folder.</summary>
    public string? DataPath { get; init; }

    public required string OutputDirectory { get; init; }

    public int Seed { get; init; }

    /// <summary>Recompute the data set's SHA-256 once at the start (off: --no-verify); the training stages then skip it.</summary>
    public bool VerifyData { get; init; } = true;
}

/// <summary>What the run is doing (stage i of n, and a line about it).</summary>
public sealed record ReproduceProgress(int Stage, int Stages, string What, string Detail);

public sealed record ModelSummary(string Mode, string? Skipped, double CleanTestAccuracy, double CleanAttackSubsetAccuracy, double TrainSeconds, string? Checkpoint, IReadOnlyList<EpochMetrics> Epochs);

/// <summary>One point of Figure 4: accuracy of a model under an attack at one strength.</summary>
public sealed record CurvePoint(string Mode, string Attack, string Parameter, double Value, int Attacked, double Accuracy, int Successful, double MeanL2, double MeanLinf);

/// <summary>
/// A detector judged on one attack. Positives = successful adversarial images (clean image
/// correctly classified, adversarial one misclassified); negatives = the correctly classified
/// clean images; per class = by predicted class (the adversarial prediction for positives).
/// Detection score = minus the detector's normality score.
/// </summary>
public sealed record DetectionRow(string Mode, string Attack, double Epsilon, string Detector, int Successful, int[] SuccessfulPerClass,
    double?[] AuprcPerClass, double? AuprcMean, double? AurocPooled, double? AuprcPooled, double SuccessfulRejected, double CleanRejected);

/// <summary>Risk of the classifier alone (Detector = "none") or with a detector, on the attacked subset plus its adversarial versions.</summary>
public sealed record RiskRow(string Mode, string Attack, double Epsilon, string Detector, RiskCounts Counts, double Risk, double RiskPerImage, double CleanAccuracy, double AdversarialAccuracy);

public sealed record ReproduceResults(
    string Profile,
    string Data,
    string DataSource,
    IReadOnlyList<string> ClassNames,
    int Seed,
    string Device,
    double WallSeconds,
    IReadOnlyList<ModelSummary> Models,
    IReadOnlyList<CurvePoint> Figure4,
    IReadOnlyList<DetectionRow> Detection,
    IReadOnlyList<RiskRow> Risk,
    IReadOnlyList<string> Findings,
    IReadOnlyList<string> Notes);

/// <summary>
/// The paper's experiment end to end: data, NT/GCE/AT/SSAT training, FGSM/PGD/C&amp;W curves,
/// UAD with Mahalanobis and KDE baselines, plain and adaptive attacks (HFC, density-PGD against
/// each detector), Table 1 (AUPRC per class), Table 2 (risk with and without the detector).
/// </summary>
public static class Reproduce
{
    public const string ResultsJson = "results.json";
    public const string ResultsMarkdown = "results.md";
    public const string Figure4Csv = "figure4.csv";
    public const string Figure4SvgName = "figure4.svg";
    public static readonly string[] DetectorNames = [UadDetector.DetectorName, MahalanobisDetector.DetectorName, KdeDetector.DetectorName];

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public static ReproduceResults Run(Accelerator accelerator, ReproduceOptions options, IProgress<ReproduceProgress>? progress = null,
        IProgress<TrainingProgress>? trainingProgress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        ArgumentNullException.ThrowIfNull(options);
        var profile = options.Profile;
        profile.Validate();
        var clock = Stopwatch.StartNew();
        string outDir = Path.GetFullPath(options.OutputDirectory);
        Directory.CreateDirectory(outDir);
        int stages = 1 + 2 * profile.Modes.Count + 1;
        int stage = 0;
        var notes = new List<string>();

        // 1. Data.
        string dataPath = options.DataPath is null ? Path.Combine(outDir, "data.dat") : Path.GetFullPath(options.DataPath);
        if (options.DataPath is null && !File.Exists(dataPath))
        {
            progress?.Report(new ReproduceProgress(++stage, stages, "data", $"generating synthetic OCT {profile.Resolution}x{profile.Resolution}"));
            var content = SyntheticOct.Generate(profile.Resolution, profile.Resolution,
                [("train", profile.TrainImages), ("unlabeled", profile.UnlabeledImages), ("val", profile.ValImages), ("test", profile.TestImages)],
                options.Seed, null, cancellationToken);
            DatasetFile.Write(dataPath, content);
        }
        else
        {
            progress?.Report(new ReproduceProgress(++stage, stages, "data", dataPath));
        }
        using var data = DatasetFile.Open(dataPath, options.VerifyData);
        foreach (string split in new[] { "train", "test" })
        {
            if (!data.HasSplit(split))
            {
                throw new ArgumentException($"'{dataPath}' has no '{split}' split; reproduce needs train and test (and ideally unlabeled and val).");
            }
        }
        string valSplit = data.HasSplit("val") ? "val" : "train";
        if (valSplit == "train")
        {
            notes.Add("The data set has no 'val' split: detector thresholds were calibrated on training images (optimistic).");
        }
        WriteConfig(outDir, options, dataPath, data, accelerator);

        var models = new List<ModelSummary>();
        var curve = new List<CurvePoint>();
        var detection = new List<DetectionRow>();
        var risk = new List<RiskRow>();
        var attackIdx = AttackSubset(data.Split("test"), profile.AttackImages, options.Seed);
        foreach (string mode in profile.Modes)
        {
            cancellationToken.ThrowIfCancellationRequested();
            progress?.Report(new ReproduceProgress(++stage, stages, $"train {mode}", $"width {profile.Width}, {profile.Epochs} epochs, batch {profile.BatchSize}"));
            string? skip = mode == "gce" && data.ClassCount < 3 ? "GCE needs at least 3 classes (its normaliser is log(K - 1))"
                : mode == "ssat" && !data.HasSplit("unlabeled") ? "the data set has no 'unlabeled' split" : null;
            if (skip is not null)
            {
                models.Add(new ModelSummary(mode, skip, double.NaN, double.NaN, 0, null, []));
                notes.Add($"{mode.ToUpperInvariant()} skipped: {skip}.");
                ++stage;
                continue;
            }
            var trainClock = Stopwatch.StartNew();
            string modelDir = Path.Combine(outDir, "models", mode);
            var trainOptions = new TrainingOptions
            {
                DataPath = dataPath,
                VerifyData = false, // verified once above
                OutputDirectory = modelDir,
                Epochs = profile.Epochs,
                BatchSize = profile.BatchSize,
                LearningRate = profile.LearningRate,
                Mode = mode,
                ModeFactory = DefenseTrainingModes.Factory(mode, dataPath, null, new AdversarialTrainingOptions
                {
                    PseudoLabelThreshold = profile.SsatPseudoLabelThreshold,
                    LambdaWarmupSteps = (long)(profile.SsatWarmupFraction * profile.Epochs * ((data.Split("train").Count + profile.BatchSize - 1) / profile.BatchSize)),
                }, options.Seed),
                Seed = options.Seed,
                Width = profile.Width,
                Resume = File.Exists(Path.Combine(modelDir, Trainer.LastCheckpointName)),
            };
            var trained = Trainer.Run(accelerator, trainOptions, trainingProgress, cancellationToken);
            if (trained.Cancelled)
            {
                throw new OperationCanceledException($"Cancelled while training {mode}; the run folder keeps a checkpoint and a rerun with the same --out continues.");
            }
            double trainSeconds = trainClock.Elapsed.TotalSeconds;
            progress?.Report(new ReproduceProgress(++stage, stages, $"attack {mode}", $"{attackIdx.Length} test images"));
            var (model, _) = Checkpoint.Open(accelerator, Path.Combine(modelDir, Trainer.LastCheckpointName));
            using (model)
            {
                double testAccuracy = Trainer.EvaluateAccuracy(model, data.Split("test"), 64, cancellationToken);
                var evaluation = new ModelEvaluation(model, data, valSplit, attackIdx, profile, options.Seed, accelerator, progress is null ? null
                    : new Progress<string>(s => progress.Report(new ReproduceProgress(stage, stages, $"attack {mode}", s))), cancellationToken);
                evaluation.Run(mode);
                curve.AddRange(evaluation.Curve);
                detection.AddRange(evaluation.Detection);
                risk.AddRange(evaluation.Risk);
                models.Add(new ModelSummary(mode, null, testAccuracy, evaluation.CleanSubsetAccuracy, trainSeconds, Path.GetRelativePath(outDir, trained.CheckpointPath), trained.Epochs));
            }
        }
        progress?.Report(new ReproduceProgress(++stage, stages, "report", outDir));
        var findings = Findings.Derive(profile, models, curve, detection, risk);
        var results = new ReproduceResults(profile.Name, dataPath, data.Source, data.ClassNames, options.Seed, accelerator.ToString() ?? "", clock.Elapsed.TotalSeconds,
            models, curve, detection, risk, findings, notes);
        AtomicFile.WriteAllText(Path.Combine(outDir, ResultsJson), JsonSerializer.Serialize(results, Json) + "\n");
        AtomicFile.WriteAllText(Path.Combine(outDir, Figure4Csv), ResultsReport.Figure4Csv(curve));
        AtomicFile.WriteAllText(Path.Combine(outDir, Figure4SvgName), Figure4Svg.Render(curve));
        AtomicFile.WriteAllText(Path.Combine(outDir, ResultsMarkdown), ResultsReport.Markdown(results, profile, data));
        return results;
    }

    /// <summary>
    /// The attacked test images: a seeded class-balanced sample (round robin over the classes,
    /// each class's indices shuffled), in file order. Files whose test split is sorted by class
    /// (MedMNIST) would otherwise give a one-class subset.
    /// </summary>
    public static int[] AttackSubset(DatasetSplit test, int count, int seed)
    {
        ArgumentNullException.ThrowIfNull(test);
        var labels = test.Labels;
        var perClass = Enumerable.Range(0, test.ClassNames.Count)
            .Select(c => new Queue<int>(Seeds.Permutation(test.Count, Seeds.Derive(seed, 7400, c)).Where(i => labels[i] == c)))
            .Where(q => q.Count > 0)
            .ToList();
        var chosen = new List<int>(Math.Min(count, test.Count));
        while (chosen.Count < Math.Min(count, test.Count))
        {
            foreach (var queue in perClass)
            {
                if (queue.Count > 0 && chosen.Count < count)
                {
                    chosen.Add(queue.Dequeue());
                }
            }
        }
        chosen.Sort();
        return [.. chosen];
    }

    private static void WriteConfig(string outDir, ReproduceOptions options, string dataPath, DatasetFile data, Accelerator accelerator)
    {
        var doc = new Dictionary<string, object?>
        {
            ["profile"] = options.Profile,
            ["data"] = dataPath,
            ["data_checksum"] = data.Checksum,
            ["data_source"] = data.Source,
            ["seed"] = options.Seed,
            ["device"] = accelerator.ToString(),
            ["detectors"] = DetectorNames,
            ["clean_rejection_rate"] = options.Profile.CleanRejectionRate,
        };
        AtomicFile.WriteAllText(Path.Combine(outDir, "config.json"), JsonSerializer.Serialize(doc, Json) + "\n");
    }

    internal static ReproduceResults ReadResults(string path) =>
        JsonSerializer.Deserialize<ReproduceResults>(File.ReadAllText(path), Json) ?? throw new InvalidFileFormatException($"'{path}' is empty.");
}


/// <summary>Evaluates one trained model: features, detectors, attacks, detection and risk rows.</summary>
internal sealed class ModelEvaluation(ResNet18 model, DatasetFile data, string valSplit, int[] attackIdx, ReproduceProfile profile, int seed,
    Accelerator accelerator, IProgress<string>? progress, CancellationToken cancellationToken, IReadOnlyList<FeatureDetector>? givenDetectors = null,
    string? saveAdversarialPath = null)
{
    private const int ForwardBatch = 64;

    public List<CurvePoint> Curve { get; } = [];

    public List<DetectionRow> Detection { get; } = [];

    public List<RiskRow> Risk { get; } = [];

    public double CleanSubsetAccuracy { get; private set; }

    private int K => model.Config.NumClasses;

    public void Run(string mode)
    {
        var train = data.Split("train");
        int fitCount = profile.DetectorFitImages > 0 ? Math.Min(profile.DetectorFitImages, train.Count) : train.Count;
        var fitIdx = Enumerable.Range(0, fitCount).ToArray();
        int[] trainLabels = Labels(train, fitIdx);
        bool adaptive = profile.AdaptiveModes.Count == 0 || profile.AdaptiveModes.Contains(mode);
        progress?.Report("features and detectors");
        bool needsHfc = adaptive && (givenDetectors is null || givenDetectors.Any(x => x is UadDetector));
        var trainOut = givenDetectors is null || needsHfc ? Forward(Images(train, fitIdx), fitIdx.Length, stagePools: needsHfc) : null;
        var val = data.Split(valSplit);
        var valIdx = Enumerable.Range(0, val.Count).ToArray();
        var valOut = givenDetectors is null ? Forward(Images(val, valIdx), valIdx.Length, false) : null;
        int d = model.Config.FeatureCount;
        var detectors = new List<FeatureDetector>(givenDetectors ?? []);
        foreach (string name in givenDetectors is null ? Reproduce.DetectorNames : [])
        {
            var detector = FeatureDetector.Create(name, seed);
            detector.Fit(trainOut!.Features, fitIdx.Length, d, trainLabels, K, accelerator, cancellationToken);
            detector.Calibrate(detector.Score(valOut!.Features, valIdx.Length, valOut.Predicted), profile.CleanRejectionRate);
            detectors.Add(detector);
        }

        var test = data.Split("test");
        float[] images = Images(test, attackIdx);
        int[] labels = Labels(test, attackIdx);
        int n = attackIdx.Length;
        int[] shape = [n, data.Channels, data.Height, data.Width];
        var cleanOut = Forward(images, n, false);
        bool[] cleanCorrect = [.. Enumerable.Range(0, n).Select(i => cleanOut.Predicted[i] == labels[i])];
        CleanSubsetAccuracy = cleanCorrect.Count(c => c) / (double)n;
        var cleanScores = detectors.ToDictionary(x => x.Name, x => x.Score(cleanOut.Features, n, cleanOut.Predicted));
        var goal = AttackGoal.Untargeted(labels);

        using (var classifier = new ResNetClassifier(model))
        {
            var objective = new CrossEntropyObjective(classifier);
            foreach (float eps in profile.FgsmEpsilons)
            {
                progress?.Report($"fgsm eps {eps}");
                var result = Fgsm.Run(objective, images, shape, goal, eps, cancellationToken);
                AddCurve(mode, "fgsm", "eps", Round(eps), result, cleanCorrect);
                if (profile.JudgeEveryAttack)
                {
                    Judge(mode, "fgsm", Round(eps), result, detectors, cleanOut, cleanCorrect, cleanScores, labels);
                }
            }
            foreach (float eps in profile.PgdEpsilons)
            {
                progress?.Report($"pgd-{profile.PgdSteps} eps {eps}");
                var result = Pgd.Run(objective, images, shape, goal, new PgdOptions { Epsilon = eps, Steps = profile.PgdSteps }, null, cancellationToken);
                AddCurve(mode, $"pgd-{profile.PgdSteps}", "eps", Round(eps), result, cleanCorrect);
                if (profile.JudgeEveryAttack || eps == profile.TableEpsilon || profile.RiskEpsilons.Contains(eps))
                {
                    Judge(mode, "pgd", Round(eps), result, detectors, cleanOut, cleanCorrect, cleanScores, labels);
                }
            }
            foreach (double c in profile.CwConstants)
            {
                progress?.Report($"c&w c {c}");
                var cw = new CarliniWagnerOptions { InitialC = c, BinarySearchSteps = 1, MaxIterations = profile.CwIterations, LearningRate = profile.CwLearningRate };
                var result = CarliniWagnerL2.Run(classifier, images, shape, goal, cw, null, cancellationToken);
                AddCurve(mode, "cw-l2", "c", c, result, cleanCorrect);
                if (profile.JudgeEveryAttack)
                {
                    Judge(mode, "cw-l2", c, result, detectors, cleanOut, cleanCorrect, cleanScores, labels);
                }
            }
        }

        if (!adaptive)
        {
            return;
        }
        using var tapped = new ResNetClassifier(model);
        // The HFC attacker models every stage: its own per-class mixtures on layer1..layer3, UAD's on layer4.
        IReadOnlyList<GaussianMixture>?[]? stageMixtures = null;
        if (needsHfc)
        {
            var uad = (UadDetector)detectors.First(x => x.Name == UadDetector.DetectorName);
            stageMixtures = new IReadOnlyList<GaussianMixture>?[4];
            for (int s = 0; s < 3; s++)
            {
                int width = tapped.StageWidths[s];
                stageMixtures[s] = UadDetector.FitPerClass(trainOut!.StagePools![s], fitIdx.Length, width, trainLabels, K, uad.Options, accelerator, cancellationToken);
            }
            stageMixtures[3] = uad.Mixtures;
        }
        foreach (float eps in profile.AdaptiveEpsilons)
        {
            var pgd = new PgdOptions { Epsilon = eps, Steps = profile.PgdSteps };
            if (stageMixtures is not null)
            {
                progress?.Report($"hfc eps {eps}");
                var hfc = AdaptiveAttacks.Hfc(tapped, stageMixtures, images, shape, goal, pgd, profile.AdaptiveLambda, AdaptiveLoss.CrossEntropy, 0f, null, cancellationToken);
                AddCurve(mode, "hfc", "eps", Round(eps), hfc, cleanCorrect);
                Judge(mode, "hfc", Round(eps), hfc, detectors, cleanOut, cleanCorrect, cleanScores, labels);
            }
            foreach (var target in detectors)
            {
                progress?.Report($"density-pgd vs {target.Name} eps {eps}");
                var result = AdaptiveAttacks.DensityPgd(tapped, target.ClassDensities, images, shape, goal, pgd, profile.AdaptiveLambda, null, cancellationToken);
                AddCurve(mode, $"density-pgd[{target.Name}]", "eps", Round(eps), result, cleanCorrect);
                Judge(mode, $"density-pgd[{target.Name}]", Round(eps), result, detectors, cleanOut, cleanCorrect, cleanScores, labels);
            }
        }
    }

    /// <summary>The float epsilon as the decimal it was written as (0.005, not 0.004999999888).</summary>
    internal static double Round(float eps) => Math.Round((double)eps, 7);

    private void AddCurve(string mode, string attack, string parameter, double value, AttackResult result, bool[] cleanCorrect)
    {
        if (saveAdversarialPath is not null && Curve.Count == 0)
        {
            Evaluate.SaveAdversarial(saveAdversarialPath, result.Adversarial, result.Shape, result.Labels);
        }
        int n = result.Count;
        int correct = 0, successful = 0;
        for (int i = 0; i < n; i++)
        {
            correct += result.PredAdv[i] == result.Labels[i] ? 1 : 0;
            successful += cleanCorrect[i] && result.Success[i] ? 1 : 0;
        }
        Curve.Add(new CurvePoint(mode, attack, parameter, value, n, correct / (double)n, successful,
            result.L2.Length == n ? result.L2.Average() : double.NaN, result.Linf.Length == n ? result.Linf.Average() : double.NaN));
    }

    private void Judge(string mode, string attack, double eps, AttackResult result, List<FeatureDetector> detectors, ForwardOutputs clean, bool[] cleanCorrect,
        Dictionary<string, double[]> cleanScores, int[] labels)
    {
        int n = result.Count;
        var adv = Forward(result.Adversarial, n, false);
        // The attack's own predictions, so these rows count exactly what the curve counts.
        int[] advPredicted = result.PredAdv;
        bool[] advCorrect = [.. Enumerable.Range(0, n).Select(i => advPredicted[i] == labels[i])];
        bool[] successful = [.. Enumerable.Range(0, n).Select(i => cleanCorrect[i] && !advCorrect[i])];
        double cleanAcc = cleanCorrect.Count(c => c) / (double)n;
        double advAcc = advCorrect.Count(c => c) / (double)n;
        var none = RiskCounts.From(cleanCorrect, null, advCorrect, null);
        var noneRisk = RiskMeasure.Compute(none, profile.UnitRisks);
        Risk.Add(new RiskRow(mode, attack, eps, "none", none, noneRisk.Total, noneRisk.PerImage, cleanAcc, advAcc));
        foreach (var detector in detectors)
        {
            double[] advScores = detector.Score(adv.Features, n, advPredicted);
            double[] cln = cleanScores[detector.Name];
            bool[] cleanRejected = detector.Rejects(cln);
            bool[] advRejected = detector.Rejects(advScores);
            var counts = RiskCounts.From(cleanCorrect, cleanRejected, advCorrect, advRejected);
            var value = RiskMeasure.Compute(counts, profile.UnitRisks);
            Risk.Add(new RiskRow(mode, attack, eps, detector.Name, counts, value.Total, value.PerImage, cleanAcc, advAcc));

            var perClassCount = new int[K];
            var perClassAp = new double?[K];
            var allLabels = new List<int>();
            var allScores = new List<double>();
            for (int c = 0; c < K; c++)
            {
                var y = new List<int>();
                var s = new List<double>();
                for (int i = 0; i < n; i++)
                {
                    if (cleanCorrect[i] && clean.Predicted[i] == c)
                    {
                        y.Add(0);
                        s.Add(-cln[i]);
                    }
                    if (successful[i] && advPredicted[i] == c)
                    {
                        y.Add(1);
                        s.Add(-advScores[i]);
                        perClassCount[c]++;
                    }
                }
                if (y.Contains(0) && y.Contains(1))
                {
                    perClassAp[c] = RankingMetrics.AveragePrecision(y.ToArray(), s.ToArray());
                }
                allLabels.AddRange(y);
                allScores.AddRange(s);
            }
            var present = perClassAp.Where(a => a.HasValue).Select(a => a!.Value).ToArray();
            bool both = allLabels.Contains(0) && allLabels.Contains(1);
            int successCount = successful.Count(x => x);
            Detection.Add(new DetectionRow(mode, attack, eps, detector.Name, successCount, perClassCount, perClassAp,
                present.Length > 0 ? present.Average() : null,
                both ? RankingMetrics.RocAuc(allLabels.ToArray(), allScores.ToArray()) : null,
                both ? RankingMetrics.AveragePrecision(allLabels.ToArray(), allScores.ToArray()) : null,
                successCount == 0 ? double.NaN : Enumerable.Range(0, n).Count(i => successful[i] && advRejected[i]) / (double)successCount,
                cleanRejected.Count(r => r) / (double)n));
        }
    }

    private ForwardOutputs Forward(float[] images, int n, bool stagePools) => ModelFeatures.Compute(model, images, n, stagePools, cancellationToken);

    internal static float[] Images(DatasetSplit split, int[] indices)
    {
        var result = new float[(long)indices.Length * split.Channels * split.Height * split.Width];
        split.CopyImages(indices, result);
        return result;
    }

    internal static int[] Labels(DatasetSplit split, int[] indices)
    {
        var result = new int[indices.Length];
        split.CopyLabels(indices, result);
        return result;
    }
}
