using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Operators;
using IlgpuOct.Nn.Checkpoints;
using IlgpuOct.Nn.Data;
using IlgpuOct.Nn.IO;

namespace IlgpuOct.Nn.Training;

/// <summary>
/// The training loop: seeded shuffled mini-batches copied from the memory-mapped data set,
/// forward/backward through the mode, SGD with a per-step schedule, test accuracy after every
/// epoch, <c>metrics.jsonl</c>, an atomic checkpoint per epoch, and on cancellation a checkpoint
/// at the current step from which <see cref="TrainingOptions.Resume"/> continues exactly.
/// </summary>
public static class Trainer
{
    public const string LastCheckpointName = "last.safetensors";
    public const string MetricsName = "metrics.jsonl";
    public const string ConfigName = "config.json";

    private static readonly JsonSerializerOptions JsonLine = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <summary>Checkpoint metadata: wall seconds of training (steps and per-epoch evaluation) over every session up to this checkpoint.</summary>
    public const string TrainingSecondsKey = "training_seconds";

    public static string EpochCheckpointName(int epoch) => $"epoch-{epoch:D3}.safetensors";

    public static TrainingResult Run(Accelerator accelerator, TrainingOptions options, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        using var data = DatasetFile.Open(options.DataPath, options.VerifyData);
        var train = RequireSplit(data, options.TrainSplit);
        if (train.Count == 0)
        {
            throw new ArgumentException($"The '{options.TrainSplit}' split of '{data.Path}' has no images; nothing to train on (import or generate a set with training images).");
        }
        var test = RequireSplit(data, options.TestSplit);
        var config = new ResNetConfig(options.Width, data.Channels, data.ClassCount);
        var mode = options.ModeFactory?.Invoke() ?? TrainingModes.Create(options.Mode);
        using var modeLifetime = mode as IDisposable;
        var notices = new List<string>();

        string outDir = Path.GetFullPath(options.OutputDirectory);
        Directory.CreateDirectory(outDir);
        AtomicFile.RemoveStaleTemporaries(outDir);
        string lastPath = Path.Combine(outDir, LastCheckpointName);
        string metricsPath = Path.Combine(outDir, MetricsName);
        string settings = SettingsText(options, mode.Name);

        ResNet18 model;
        long startStep = 0;
        var accumulator = new EpochAccumulator();
        var history = new List<EpochMetrics>();
        double earlierSessionsSeconds = 0; // training wall time of the sessions before a resume
        if (options.Resume)
        {
            var (file, info, resumePath) = ResumePoint(outDir, lastPath, notices);
            CheckResumable(file, info, config, data.Checksum, settings, resumePath);
            model = new ResNet18(accelerator, info.Config, info.Seed);
            Checkpoint.LoadState(model, file);
            startStep = info.Step;
            accumulator = EpochAccumulator.FromMetadata(file);
            history.AddRange(ReadMetrics(metricsPath).Where(m => m.Epoch <= info.Epoch));
            earlierSessionsSeconds = TrainingSecondsOf(file, history, accumulator);
            WriteMetrics(metricsPath, history);
            notices.Add($"resumed from {resumePath} at epoch {info.Epoch + 1}, step {info.Step}");
        }
        else
        {
            if (File.Exists(lastPath))
            {
                throw new ArgumentException($"'{outDir}' already holds a run ({LastCheckpointName}); continue it with --resume or choose another --out.");
            }
            model = new ResNet18(accelerator, config, options.Seed);
            if (options.Pretrained is not null)
            {
                try
                {
                    notices.AddRange(Onnx.ResNetOnnxImport.LoadPretrained(model, options.Pretrained));
                }
                catch
                {
                    model.Dispose();
                    throw;
                }
                notices.Add($"initialised from {options.Pretrained.ModelPath}");
            }
            WriteConfig(Path.Combine(outDir, ConfigName), options, mode.Name, config, data, accelerator);
            WriteMetrics(metricsPath, history);
        }

        using (model)
        {
            var sgd = new SgdOptimizer(options.Momentum, options.WeightDecay);
            var batches = train.Batches(options.BatchSize, model.Seed);
            int batchesPerEpoch = batches.BatchesPerEpoch;
            long totalSteps = (long)options.Epochs * batchesPerEpoch;
            var schedule = options.Schedule == "step"
                ? LearningRateSchedule.Step(options.LearningRate, Math.Max(1, (totalSteps + 2) / 3), 0.1f)
                : LearningRateSchedule.Cosine(options.LearningRate, totalSteps);
            using var buffers = new StepBuffers(accelerator);
            using var totals = new DeviceEpochTotals(accelerator);
            using var staging = new BatchStaging(accelerator, data.Channels, data.Height, data.Width);
            var runClock = Stopwatch.StartNew();
            long stepsThisRun = 0;
            long step = startStep;
            string lastCheckpoint = lastPath;
            for (int epoch = (int)(startStep / batchesPerEpoch); epoch < options.Epochs; epoch++)
            {
                var epochClock = Stopwatch.StartNew();
                int skip = epoch == startStep / batchesPerEpoch ? (int)(startStep % batchesPerEpoch) : 0;
                float lr = 0;
                totals.Start(accumulator.LossSum, accumulator.Correct);
                long epochStartStep = step;
                long lastReadStep = step;
                foreach (var indices in batches.Epoch(epoch).Skip(skip))
                {
                    if (cancellationToken.IsCancellationRequested)
                    {
                        accumulator.Seconds += epochClock.Elapsed.TotalSeconds;
                        accumulator.Read(totals);
                        double secondsSoFar = earlierSessionsSeconds + runClock.Elapsed.TotalSeconds;
                        SaveCheckpoint(lastPath, model, epoch, step, data.Checksum, settings, accumulator, secondsSoFar);
                        notices.Add($"cancelled: checkpoint written at epoch {epoch + 1}, step {step} ({lastPath}); continue with --resume");
                        return new TrainingResult(history, true, lastPath, epoch, step, notices) { TrainingSeconds = secondsSoFar };
                    }
                    var (images, labels, _) = staging.Load(train, indices.Span);
                    lr = schedule.At(step);
                    var batch = new TrainingBatch(model, images, labels, epoch, step, model.Seed);
                    var logits = mode.ComputeGradients(batch, buffers);
                    // The loss and the correct count stay on the device; the host reads the running sums only for progress and at the epoch's end.
                    totals.Add(logits, labels, buffers.Loss.View);
                    sgd.Step(model.Parameters, lr);
                    accumulator.Seen += indices.Length;
                    step++;
                    stepsThisRun++;
                    if (progress is not null)
                    {
                        // The epoch's first report shows figures at once; later ones lag by up to the interval.
                        if (step == epochStartStep + 1 || step - lastReadStep >= options.MetricsInterval || step % batchesPerEpoch == 0)
                        {
                            ReadAndCheck(accumulator, totals, epoch, lastReadStep, step, lr, outDir);
                            lastReadStep = step;
                        }
                        double elapsed = runClock.Elapsed.TotalSeconds;
                        double perStep = elapsed / stepsThisRun;
                        progress.Report(new TrainingProgress("train", epoch + 1, options.Epochs, step, totalSteps,
                            accumulator.MeanLoss, accumulator.Accuracy,
                            accumulator.Seen / Math.Max(accumulator.Seconds + epochClock.Elapsed.TotalSeconds, 1e-9), lr,
                            runClock.Elapsed, TimeSpan.FromSeconds(perStep * (totalSteps - step))));
                    }
                }
                if (lastReadStep != step)
                {
                    ReadAndCheck(accumulator, totals, epoch, lastReadStep, step, lr, outDir);
                }
                double trainSeconds = accumulator.Seconds + epochClock.Elapsed.TotalSeconds;
                progress?.Report(new TrainingProgress("evaluate", epoch + 1, options.Epochs, step, totalSteps,
                    accumulator.MeanLoss, accumulator.Accuracy, accumulator.Seen / Math.Max(trainSeconds, 1e-9), lr, runClock.Elapsed, null));
                // Not cancellable: an epoch ends with its metrics and checkpoint; a cancel lands at the next batch.
                double testAccuracy = EvaluateAccuracy(model, test, options.BatchSize, staging, CancellationToken.None);
                var metrics = new EpochMetrics(epoch + 1, accumulator.MeanLoss, accumulator.Accuracy, testAccuracy,
                    accumulator.Seen / Math.Max(trainSeconds, 1e-9), lr, accumulator.Seconds + epochClock.Elapsed.TotalSeconds, step);
                history.Add(metrics);
                WriteMetrics(metricsPath, history);
                accumulator = new EpochAccumulator();
                lastCheckpoint = Path.Combine(outDir, EpochCheckpointName(epoch + 1));
                SaveCheckpoint(lastCheckpoint, model, epoch + 1, step, data.Checksum, settings, accumulator, earlierSessionsSeconds + runClock.Elapsed.TotalSeconds);
                string epochCheckpoint = lastCheckpoint;
                AtomicFile.Write(lastPath, stream =>
                {
                    using var source = File.OpenRead(epochCheckpoint);
                    source.CopyTo(stream);
                });
            }
            return new TrainingResult(history, false, lastCheckpoint, options.Epochs, step, notices) { TrainingSeconds = earlierSessionsSeconds + runClock.Elapsed.TotalSeconds };
        }
    }

    /// <summary>Top-1 accuracy of the model in evaluation mode on a split, in order, <paramref name="batchSize"/> images at a time.</summary>
    public static double EvaluateAccuracy(ResNet18 model, DatasetSplit split, int batchSize, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(split);
        using var staging = new BatchStaging(model.Accelerator, split.Channels, split.Height, split.Width);
        return EvaluateAccuracy(model, split, batchSize, staging, cancellationToken);
    }

    private static double EvaluateAccuracy(ResNet18 model, DatasetSplit split, int batchSize, BatchStaging staging, CancellationToken cancellationToken)
    {
        if (split.Count == 0)
        {
            return double.NaN;
        }
        long correct = 0;
        foreach (var indices in split.Batches(batchSize, 0, shuffle: false).Epoch(0))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var (images, _, hostLabels) = staging.Load(split, indices.Span);
            var outputs = model.Infer(images);
            correct += Accuracy.CountCorrect(outputs.Logits, hostLabels);
        }
        return (double)correct / split.Count;
    }

    /// <summary>
    /// The checkpoint to resume from: <c>last</c> when it reads, else (missing or broken) the newest
    /// <c>epoch-N</c> checkpoint that reads, with a notice saying which and why.
    /// </summary>
    private static (SafeTensorFile File, CheckpointInfo Info, string Path) ResumePoint(string outDir, string lastPath, List<string> notices)
    {
        string? lastProblem = null;
        if (File.Exists(lastPath))
        {
            try
            {
                var file = SafeTensorFile.Read(lastPath);
                return (file, Checkpoint.ReadInfo(file), lastPath);
            }
            catch (Exception e) when (e is InvalidDataException or IOException)
            {
                lastProblem = e.Message;
            }
        }
        var epochs = Directory.EnumerateFiles(outDir, "epoch-*.safetensors")
            .Select(p => (Path: p, Epoch: int.TryParse(System.IO.Path.GetFileNameWithoutExtension(p)["epoch-".Length..], NumberStyles.None, CultureInfo.InvariantCulture, out int e) ? e : -1))
            .Where(p => p.Epoch >= 0)
            .OrderByDescending(p => p.Epoch);
        var skipped = new List<string>();
        string why = lastProblem is null ? "missing" : $"unreadable ({lastProblem})";
        foreach (var (path, _) in epochs)
        {
            try
            {
                var file = SafeTensorFile.Read(path);
                var info = Checkpoint.ReadInfo(file);
                notices.Add($"{LastCheckpointName} is {why}; resuming from {path}{(skipped.Count > 0 ? $" (skipped unreadable {string.Join(", ", skipped)})" : "")}");
                return (file, info, path);
            }
            catch (Exception e) when (e is InvalidDataException or IOException)
            {
                skipped.Add(System.IO.Path.GetFileName(path));
                lastProblem ??= e.Message;
            }
        }
        throw lastProblem is null
            ? new FileNotFoundException($"--resume was given but '{outDir}' holds no {LastCheckpointName} and no epoch-N checkpoint; start without --resume.", lastPath)
            : new InvalidFileFormatException(lastPath, Checkpoint.FormatName, "resume", $"no checkpoint in '{outDir}' can be read ({lastProblem}); start without --resume or choose another --out");
    }

    private static DatasetSplit RequireSplit(DatasetFile data, string name) =>
        data.HasSplit(name)
            ? data.Split(name)
            : throw new ArgumentException($"The data set '{data.Path}' has no '{name}' split (it has: {string.Join(", ", data.Splits.Select(s => s.Name))}).");

    /// <summary>The settings a resumed run must share with the original, one canonical line.</summary>
    private static string SettingsText(TrainingOptions o, string mode) => string.Create(CultureInfo.InvariantCulture,
        $"mode={mode},epochs={o.Epochs},batch={o.BatchSize},lr={o.LearningRate:R},momentum={o.Momentum:R},weight_decay={o.WeightDecay:R},schedule={o.Schedule},width={o.Width},seed={o.Seed},train={o.TrainSplit},test={o.TestSplit}{(o.Pretrained is null ? "" : ",pretrained=" + Path.GetFileName(o.Pretrained.ModelPath))}");

    private static void CheckResumable(SafeTensorFile file, CheckpointInfo info, ResNetConfig config, string checksum, string settings, string path)
    {
        var problems = new List<string>();
        if (info.Config != config)
        {
            problems.Add($"the checkpoint's model is {info.Config}, the data and options give {config}");
        }
        if (info.DataChecksum != checksum)
        {
            problems.Add($"the checkpoint was trained on data with checksum {info.DataChecksum}, this file has {checksum}");
        }
        string saved = file.Metadata.GetValueOrDefault("training", "");
        if (saved != settings)
        {
            problems.Add($"the checkpoint's settings are '{saved}', this run's are '{settings}'");
        }
        if (problems.Count > 0)
        {
            throw new ArgumentException($"Cannot resume from '{path}': {string.Join("; ", problems)}. Resume with the original options or start a new --out.");
        }
    }

    private static void SaveCheckpoint(string path, ResNet18 model, int epoch, long step, string checksum, string settings, EpochAccumulator accumulator,
        double trainingSeconds)
    {
        var meta = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["training"] = settings,
            [TrainingSecondsKey] = trainingSeconds.ToString("R", CultureInfo.InvariantCulture),
        };
        accumulator.WriteTo(meta);
        Checkpoint.Save(path, model, epoch, step, checksum, meta);
    }

    private static void WriteConfig(string path, TrainingOptions o, string mode, ResNetConfig config, DatasetFile data, Accelerator accelerator)
    {
        var doc = new Dictionary<string, object?>
        {
            ["data"] = Path.GetFullPath(o.DataPath),
            ["data_checksum"] = data.Checksum,
            ["train_split"] = o.TrainSplit,
            ["test_split"] = o.TestSplit,
            ["mode"] = mode,
            ["epochs"] = o.Epochs,
            ["batch"] = o.BatchSize,
            ["lr"] = o.LearningRate,
            ["momentum"] = o.Momentum,
            ["weight_decay"] = o.WeightDecay,
            ["schedule"] = o.Schedule,
            ["seed"] = o.Seed,
            ["width"] = config.Width,
            ["in_channels"] = config.InChannels,
            ["num_classes"] = config.NumClasses,
            ["classes"] = data.ClassNames,
            ["device"] = accelerator.ToString(),
            ["precision"] = Accelerator.PrecisionName(accelerator.Precision),
            ["pretrained"] = o.Pretrained?.ModelPath,
        };
        AtomicFile.WriteAllText(path, JsonSerializer.Serialize(doc, new JsonSerializerOptions { WriteIndented = true }) + "\n");
    }

    private static void WriteMetrics(string path, IReadOnlyList<EpochMetrics> metrics)
    {
        var sb = new StringBuilder();
        foreach (var m in metrics)
        {
            sb.Append(JsonSerializer.Serialize(m, JsonLine)).Append('\n');
        }
        AtomicFile.WriteAllText(path, sb.ToString());
    }

    /// <summary>Reads a metrics.jsonl file written by this trainer (empty when it does not exist).</summary>
    public static List<EpochMetrics> ReadMetrics(string path)
    {
        if (!File.Exists(path))
        {
            return [];
        }
        return File.ReadAllLines(path).Where(l => l.Length > 0)
            .Select(l => JsonSerializer.Deserialize<EpochMetrics>(l, JsonLine) ?? throw new InvalidFileFormatException($"'{path}' holds an empty metrics line."))
            .ToList();
    }

    /// <summary>Running sums of the epoch in progress; saved with a mid-epoch checkpoint so a resumed epoch reports the same figures.</summary>
    /// <summary>
    /// The training time stored in a checkpoint; checkpoints written before it was stored give the
    /// epochs' own seconds (steps only) plus the unfinished epoch's.
    /// </summary>
    private static double TrainingSecondsOf(SafeTensorFile file, IReadOnlyList<EpochMetrics> history, EpochAccumulator unfinishedEpoch)
    {
        var fields = new SafeTensorFields(file, Checkpoint.FormatName);
        return fields.Has(TrainingSecondsKey)
            ? fields.Double(TrainingSecondsKey, 0, double.MaxValue)
            : history.Sum(m => m.Seconds) + unfinishedEpoch.Seconds;
    }

    /// <summary>Reads the device's running sums into the accumulator; a non-finite loss sum stops the run (the step's own loss is not read, so the step is a range).</summary>
    private static void ReadAndCheck(EpochAccumulator accumulator, DeviceEpochTotals totals, int epoch, long lastReadStep, long step, float lr, string outDir)
    {
        accumulator.Read(totals);
        if (!double.IsFinite(accumulator.LossSum))
        {
            throw new TrainingDivergedException(
                $"The training loss became {accumulator.MeanLoss} at epoch {epoch + 1}, step {step} or before (after step {lastReadStep}; learning rate {lr:G4}); lower --lr or check the data. The last good checkpoint is in '{outDir}'.");
        }
    }

    private sealed class EpochAccumulator
    {
        public double LossSum { get; private set; }

        public long Correct { get; private set; }

        /// <summary>Images trained on this epoch (counted on the host every step).</summary>
        public long Seen { get; set; }

        /// <summary>Images behind <see cref="LossSum"/> and <see cref="Correct"/>, which lag behind <see cref="Seen"/> between device reads.</summary>
        private long _seenAtRead;

        public double Seconds { get; set; }

        public double MeanLoss => _seenAtRead == 0 ? double.NaN : LossSum / _seenAtRead;

        public double Accuracy => _seenAtRead == 0 ? double.NaN : (double)Correct / _seenAtRead;

        public void Read(DeviceEpochTotals totals)
        {
            (LossSum, Correct) = totals.Read();
            _seenAtRead = Seen;
        }

        public void WriteTo(Dictionary<string, string> meta)
        {
            meta["epoch_loss_sum"] = LossSum.ToString("R", CultureInfo.InvariantCulture);
            meta["epoch_correct"] = Correct.ToString(CultureInfo.InvariantCulture);
            meta["epoch_seen"] = Seen.ToString(CultureInfo.InvariantCulture);
            meta["epoch_seconds"] = Seconds.ToString("R", CultureInfo.InvariantCulture);
        }

        public static EpochAccumulator FromMetadata(SafeTensorFile file)
        {
            var fields = new SafeTensorFields(file, Checkpoint.FormatName);
            double D(string k, double min = 0) => fields.Has(k) ? fields.Double(k, min, double.MaxValue) : 0;
            return new EpochAccumulator
            {
                LossSum = D("epoch_loss_sum", -double.MaxValue), // GCE's loss is negative
                Correct = fields.OptionalLong("epoch_correct", 0, long.MaxValue, 0),
                Seen = fields.OptionalLong("epoch_seen", 0, long.MaxValue, 0),
                _seenAtRead = fields.OptionalLong("epoch_seen", 0, long.MaxValue, 0),
                Seconds = D("epoch_seconds"),
            };
        }
    }
}

/// <summary>
/// The epoch's running loss sum and correct count on the device (<see cref="BatchMetrics"/>): one
/// buffer allocated per run, one upload per epoch, one download per read.
/// </summary>
internal sealed class DeviceEpochTotals(Accelerator accelerator) : IDisposable
{
    private readonly DeviceBuffer<double> _totals = accelerator.Allocate<double>(BatchMetrics.TotalsLength); // (2): loss sum, correct count
    private readonly double[] _host = new double[BatchMetrics.TotalsLength];

    /// <summary>Sets the sums (a resumed epoch starts from its checkpoint's).</summary>
    public void Start(double lossSum, long correct)
    {
        _host[0] = lossSum;
        _host[1] = correct;
        accelerator.CopyFromHost<double>(_host, _totals.View);
    }

    /// <summary>Adds a step: the mean loss (1) times N and the correct rows of logits (N, K) against labels (N).</summary>
    public void Add(Tensor logits, View<int> labels, View<float> loss) =>
        BatchMetrics.Accumulate(accelerator, new LogitsShape(logits.Dim(0), logits.Dim(1)), logits.View, labels, loss, _totals.View);

    public (double LossSum, long Correct) Read()
    {
        accelerator.CopyToHost(_totals.View, _host);
        return (_host[0], (long)_host[1]);
    }

    public void Dispose() => _totals.Dispose();
}

/// <summary>
/// Host staging for batches: pixels are copied from the memory-mapped file into one reusable
/// float array and uploaded into one reusable device tensor per batch shape.
/// </summary>
internal sealed class BatchStaging(Accelerator accelerator, int channels, int height, int width) : IDisposable
{
    private float[] _host = [];
    private int[] _hostLabels = [];
    private Tensor? _images; // (B, C, H, W) in [0, 1]
    private DeviceBuffer<int>? _labels; // (B)

    public (Tensor Images, View<int> Labels, int[] HostLabels) Load(DatasetSplit split, ReadOnlySpan<int> indices)
    {
        int b = indices.Length;
        int perImage = channels * height * width;
        if (_host.Length != b * perImage)
        {
            _host = new float[b * perImage];
            _hostLabels = new int[b];
        }
        split.CopyImages(indices, _host);
        split.CopyLabels(indices, _hostLabels);
        var images = Tensor.Reuse(ref _images, accelerator, b, channels, height, width);
        images.Upload(_host);
        if (_labels is null || _labels.Length != b)
        {
            _labels?.Dispose();
            _labels = accelerator.Allocate<int>(b);
        }
        accelerator.CopyFromHost<int>(_hostLabels, _labels.View);
        return (images, _labels.View, _hostLabels);
    }

    public void Dispose()
    {
        _images?.Dispose();
        _labels?.Dispose();
    }
}
