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

    /// <summary>ImageNet weights every trained model starts from (the profile must train width 64); null = seeded initialisation.</summary>
    public Nn.Onnx.PretrainedSource? Pretrained { get; init; }
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
/// SystemSuccess = share of all attacked images whose adversarial version is misclassified and
/// accepted by the detector (what the attacker of the whole system achieves).
public sealed record DetectionRow(string Mode, string Attack, double Epsilon, string Detector, int Successful, int[] SuccessfulPerClass,
    double?[] AuprcPerClass, double? AuprcMean, double? AurocPooled, double? AuprcPooled, double SuccessfulRejected, double CleanRejected, double SystemSuccess);

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
    IReadOnlyList<string> Notes)
{
    /// <summary>Process CPU time of the run (all threads), to size profiles on a machine shared with other jobs.</summary>
    public double CpuSeconds { get; init; }

    public IReadOnlyList<LambdaChoice> LambdaChoices { get; init; } = [];

    public FeatureEmbedding? Embedding { get; init; }

    public IReadOnlyList<GalleryItem> Gallery { get; init; } = [];

    /// <summary>Per-image outcomes (also outcomes.json beside results.json).</summary>
    [JsonIgnore]
    public IReadOnlyList<AttackOutcome> Outcomes { get; init; } = [];
}

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
    public const string OutcomesJson = "outcomes.json";
    public const string GalleryFolder = "gallery";
    public static readonly string[] DetectorNames = [UadDetector.DetectorName, MahalanobisDetector.DetectorName, KdeDetector.DetectorName];

    internal static readonly JsonSerializerOptions Json = new()
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
        if (options.Pretrained is not null)
        {
            Nn.Onnx.ResNetOnnxImport.RequirePretrainedWidth(profile.Width, $"profile '{profile.Name}'");
        }
        var clock = Stopwatch.StartNew();
        var cpuStart = Process.GetCurrentProcess().TotalProcessorTime;
        string outDir = Path.GetFullPath(options.OutputDirectory);
        Directory.CreateDirectory(outDir);
        int stages = 1 + 2 * profile.Modes.Count + 1;
        int stage = 0;
        var notes = new List<string>();

        // 1. Data.
        bool npz = options.DataPath is not null && options.DataPath.EndsWith(".npz", StringComparison.OrdinalIgnoreCase);
        string dataPath = options.DataPath is null || npz ? Path.Combine(outDir, "data.dat") : Path.GetFullPath(options.DataPath);
        if (npz && !File.Exists(dataPath))
        {
            progress?.Report(new ReproduceProgress(++stage, stages, "data", $"importing {options.DataPath} at {profile.Resolution}x{profile.Resolution}"));
            var imported = NpzImport.Import(Path.GetFullPath(options.DataPath!), new NpzImportOptions(new Preprocess(profile.Resolution), profile.ImportUnlabeledFraction, options.Seed),
                null, cancellationToken);
            DatasetFile.Write(dataPath, imported.Content);
        }
        else if (options.DataPath is null && !File.Exists(dataPath))
        {
            progress?.Report(new ReproduceProgress(++stage, stages, "data", $"generating synthetic OCT {profile.Resolution}x{profile.Resolution}"));
            var content = SyntheticOct.Generate(profile.Resolution, profile.Resolution,
                [("train", profile.TrainImages), ("unlabeled", profile.UnlabeledImages), ("val", profile.ValImages), ("test", profile.TestImages)],
                options.Seed, null, cancellationToken, profile.DataMinSeverity);
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
        var outcomes = new List<AttackOutcome>();
        var lambdaChoices = new List<LambdaChoice>();
        var gallery = new List<GalleryItem>();
        FeatureEmbedding? embedding = null;
        var attackIdx = AttackSubset(data.Split("test"), profile.AttackImages, options.Seed);
        foreach (string mode in profile.Modes)
        {
            cancellationToken.ThrowIfCancellationRequested();
            progress?.Report(new ReproduceProgress(++stage, stages, $"train {mode}", $"width {profile.Width}, {profile.EpochsFor(mode)} epochs, batch {profile.BatchSize}"));
            string? skip = mode == "gce" && data.ClassCount < 3 ? "GCE needs at least 3 classes (its normaliser is log(K - 1))"
                : mode == "ssat" && !data.HasSplit("unlabeled") ? "the data set has no 'unlabeled' split" : null;
            if (skip is not null)
            {
                models.Add(new ModelSummary(mode, skip, double.NaN, double.NaN, 0, null, []));
                notes.Add($"{mode.ToUpperInvariant()} skipped: {skip}.");
                ++stage;
                continue;
            }
            string modelDir = Path.Combine(outDir, "models", mode);
            var trainOptions = new TrainingOptions
            {
                DataPath = dataPath,
                VerifyData = false, // verified once above
                OutputDirectory = modelDir,
                Epochs = profile.EpochsFor(mode),
                BatchSize = profile.BatchSize,
                LearningRate = profile.LearningRate,
                Mode = mode,
                ModeFactory = DefenseTrainingModes.Factory(mode, dataPath, null, new AdversarialTrainingOptions
                {
                    PseudoLabelThreshold = profile.SsatPseudoLabelThreshold,
                    PseudoLabelTeacher = mode == "ssat" && models.Any(m => m.Mode == profile.SsatTeacherMode && m.Skipped is null)
                        ? Path.Combine(outDir, "models", profile.SsatTeacherMode!, Trainer.LastCheckpointName) : null,
                    UnlabeledPerLabeled = profile.SsatUnlabeledPerLabeled,
                    LambdaWarmupSteps = (long)(profile.SsatWarmupFraction * profile.Epochs * ((data.Split("train").Count + profile.BatchSize - 1) / profile.BatchSize)),
                }, options.Seed),
                Seed = options.Seed,
                Width = profile.Width,
                Pretrained = options.Pretrained,
                Resume = File.Exists(Path.Combine(modelDir, Trainer.LastCheckpointName)),
            };
            var trained = Trainer.Run(accelerator, trainOptions, trainingProgress, cancellationToken);
            if (trained.Cancelled)
            {
                throw new OperationCanceledException($"Cancelled while training {mode}; the run folder keeps a checkpoint and a rerun with the same --out continues.");
            }
            double trainSeconds = trained.TrainingSeconds; // all sessions, also those before a resume
            progress?.Report(new ReproduceProgress(++stage, stages, $"attack {mode}", $"{attackIdx.Length} test images"));
            var (model, _) = Checkpoint.Open(accelerator, Path.Combine(modelDir, Trainer.LastCheckpointName));
            using (model)
            {
                double testAccuracy = Trainer.EvaluateAccuracy(model, data.Split("test"), 64, cancellationToken);
                var evaluation = new ModelEvaluation(model, data, valSplit, attackIdx, profile, options.Seed, accelerator, progress is null ? null
                    : new Progress<string>(s => progress.Report(new ReproduceProgress(stage, stages, $"attack {mode}", s))), cancellationToken)
                {
                    // The figures that show single images and features: of the first trained model.
                    IllustrationDirectory = models.All(m => m.Skipped is not null) ? outDir : null,
                };
                evaluation.Run(mode);
                curve.AddRange(evaluation.Curve);
                detection.AddRange(evaluation.Detection);
                risk.AddRange(evaluation.Risk);
                outcomes.AddRange(evaluation.Outcomes);
                lambdaChoices.AddRange(evaluation.LambdaChoices);
                gallery.AddRange(evaluation.Gallery);
                embedding ??= evaluation.Embedding;
                models.Add(new ModelSummary(mode, null, testAccuracy, evaluation.CleanSubsetAccuracy, trainSeconds, Path.GetRelativePath(outDir, trained.CheckpointPath), trained.Epochs));
            }
        }
        progress?.Report(new ReproduceProgress(++stage, stages, "report", outDir));
        var findings = Findings.Derive(profile, models, curve, detection, risk);
        var results = new ReproduceResults(profile.Name, dataPath, data.Source, data.ClassNames, options.Seed, accelerator.ToString() ?? "", clock.Elapsed.TotalSeconds,
            models, curve, detection, risk, findings, notes)
        {
            CpuSeconds = (Process.GetCurrentProcess().TotalProcessorTime - cpuStart).TotalSeconds,
            LambdaChoices = lambdaChoices,
            Embedding = embedding,
            Gallery = gallery,
            Outcomes = outcomes,
        };
        AtomicFile.WriteAllText(Path.Combine(outDir, ResultsJson), JsonSerializer.Serialize(results, Json) + "\n");
        AtomicFile.WriteAllText(Path.Combine(outDir, OutcomesJson), JsonSerializer.Serialize(outcomes, Json) + "\n");
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
            ["precision"] = Accelerator.PrecisionName(accelerator.Precision),
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

    public List<AttackOutcome> Outcomes { get; } = [];

    public List<LambdaChoice> LambdaChoices { get; } = [];

    public List<GalleryItem> Gallery { get; } = [];

    public FeatureEmbedding? Embedding { get; private set; }

    /// <summary>Where gallery PNGs go, and whether to embed features (t-SNE); null = neither.</summary>
    public string? IllustrationDirectory { get; init; }

    public double CleanSubsetAccuracy { get; private set; }

    private int K => model.Config.NumClasses;

    private float[] _cleanImages = []; // (N, C, H, W) the attacked images

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
        _cleanImages = images;
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
            using var objective = new CrossEntropyObjective(classifier);
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
        // Lambda is chosen per attack on held-out test images outside the attacked subset.
        int[] sweepIdx = profile.AdaptiveLambdas.Count > 1 ? HeldOutSubset(test, attackIdx, profile.LambdaSweepImages, seed) : [];
        float[] sweepImages = Images(test, sweepIdx);
        int[] sweepShape = [sweepIdx.Length, data.Channels, data.Height, data.Width];
        var sweepGoal = AttackGoal.Untargeted(Labels(test, sweepIdx));
        foreach (float eps in profile.AdaptiveEpsilons)
        {
            var pgd = new PgdOptions { Epsilon = eps, Steps = profile.PgdSteps };
            var adaptiveAttacks = new List<(string Name, FeatureDetector Target, Func<float[], int[], AttackGoal, double, AttackResult> Attack)>();
            if (stageMixtures is not null)
            {
                adaptiveAttacks.Add(("hfc", detectors.First(x => x.Name == UadDetector.DetectorName),
                    (x, shp, g, lambda) => AdaptiveAttacks.Hfc(tapped, stageMixtures, x, shp, g, pgd, lambda, AdaptiveLoss.CrossEntropy, 0f, null, cancellationToken)));
            }
            foreach (var target in detectors)
            {
                adaptiveAttacks.Add(($"density-pgd[{target.Name}]", target,
                    (x, shp, g, lambda) => AdaptiveAttacks.DensityPgd(tapped, target.ClassDensities, x, shp, g, pgd, lambda, null, cancellationToken)));
            }
            foreach (var (name, target, attack) in adaptiveAttacks)
            {
                double lambda = profile.AdaptiveLambdas[0];
                if (sweepIdx.Length > 0)
                {
                    var success = new double[profile.AdaptiveLambdas.Count];
                    for (int l = 0; l < success.Length; l++)
                    {
                        progress?.Report($"{name} eps {eps}: lambda {profile.AdaptiveLambdas[l]} on {sweepIdx.Length} held-out images");
                        var trial = attack(sweepImages, sweepShape, sweepGoal, profile.AdaptiveLambdas[l]);
                        var trialOut = Forward(trial.Adversarial, sweepIdx.Length, false);
                        bool[] rejected = target.Rejects(target.Score(trialOut.Features, sweepIdx.Length, trial.PredAdv));
                        success[l] = Enumerable.Range(0, sweepIdx.Length).Count(i => trial.Success[i] && !rejected[i]) / (double)sweepIdx.Length;
                    }
                    int best = Array.IndexOf(success, success.Max());
                    lambda = profile.AdaptiveLambdas[best];
                    LambdaChoices.Add(new LambdaChoice(seed, mode, name, Round(eps), target.Name, sweepIdx.Length, [.. profile.AdaptiveLambdas], success, lambda));
                }
                progress?.Report($"{name} eps {eps} lambda {lambda}");
                var result = attack(images, shape, goal, lambda);
                AddCurve(mode, name, "eps", Round(eps), result, cleanCorrect);
                Judge(mode, name, Round(eps), result, detectors, cleanOut, cleanCorrect, cleanScores, labels, lambda);
            }
        }
    }

    /// <summary>
    /// Test images outside the attacked subset for the lambda sweep: a seeded random sample of the
    /// rest of the split (empty when nothing is left), so lambda is not chosen on the images it is judged on.
    /// </summary>
    internal static int[] HeldOutSubset(DatasetSplit test, int[] attackIdx, int count, int seed)
    {
        var attacked = new HashSet<int>(attackIdx);
        return [.. Seeds.Permutation(test.Count, Seeds.Derive(seed, 7401, 0)).Where(i => !attacked.Contains(i)).Take(count).Order()];
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
        bool shown = attack.StartsWith("fgsm", StringComparison.Ordinal) || attack.StartsWith("pgd", StringComparison.Ordinal)
            ? Math.Abs(value - profile.TableEpsilon) < 1e-9
            : attack != "cw-l2" || value == profile.CwConstants.Max();
        if (IllustrationDirectory is not null && shown)
        {
            Gallery.Add(GalleryStrip.Write(IllustrationDirectory, mode, attack, parameter, value, _cleanImages, result, cleanCorrect));
        }
    }

    private void Judge(string mode, string attack, double eps, AttackResult result, List<FeatureDetector> detectors, ForwardOutputs clean, bool[] cleanCorrect,
        Dictionary<string, double[]> cleanScores, int[] labels, double? lambda = null)
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
        if (IllustrationDirectory is not null && attack == "pgd" && Math.Abs(eps - profile.TableEpsilon) < 1e-9)
        {
            Embedding = FeatureEmbeddings.Embed(mode, attack, eps, clean.Features, adv.Features, n, model.Config.FeatureCount, labels, seed, cancellationToken);
        }
        var outcomes = new List<DetectorOutcome>();
        Outcomes.Add(new AttackOutcome(mode, attack, eps, lambda, labels, cleanCorrect, advCorrect, outcomes));
        foreach (var detector in detectors)
        {
            double[] advScores = detector.Score(adv.Features, n, advPredicted);
            double[] cln = cleanScores[detector.Name];
            bool[] cleanRejected = detector.Rejects(cln);
            bool[] advRejected = detector.Rejects(advScores);
            outcomes.Add(new DetectorOutcome(detector.Name, cln, advScores, cleanRejected, advRejected));
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
                cleanRejected.Count(r => r) / (double)n,
                Enumerable.Range(0, n).Count(i => !advCorrect[i] && !advRejected[i]) / (double)n));
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
