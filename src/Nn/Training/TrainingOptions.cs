namespace IlgpuOct.Nn.Training;

/// <summary>Settings of one training run (what <c>ilgpuoct train</c> passes).</summary>
public sealed record TrainingOptions
{
    public required string DataPath { get; init; }

    public required string OutputDirectory { get; init; }

    public int Epochs { get; init; } = 10;

    public int BatchSize { get; init; } = 64;

    public float LearningRate { get; init; } = 0.05f;

    public float Momentum { get; init; } = 0.9f;

    public float WeightDecay { get; init; } = 5e-4f;

    /// <summary>cosine (per step, the default) or step (x0.1 at 50% and 75% of the steps).</summary>
    public string Schedule { get; init; } = "cosine";

    public string Mode { get; init; } = "nt";

    /// <summary>Builds the mode when it needs more than its name (e.g. SSAT's unlabeled data); null = <see cref="TrainingModes.Create"/>(Mode). Disposed after the run when disposable.</summary>
    public Func<TrainingMode>? ModeFactory { get; init; }

    public int Seed { get; init; }

    public int Width { get; init; } = 64;

    /// <summary>ImageNet weights to start from (ONNX, width 64; fc keeps its seeded initialisation); null = the seeded initialisation.</summary>
    public Onnx.PretrainedSource? Pretrained { get; init; }

    /// <summary>Continue from the output folder's last checkpoint.</summary>
    public bool Resume { get; init; }

    public string TrainSplit { get; init; } = "train";

    public string TestSplit { get; init; } = "test";

    /// <summary>Recompute the data set's SHA-256 once before training (off: --no-verify).</summary>
    public bool VerifyData { get; init; } = true;

    /// <summary>
    /// Steps between reads of the device's running loss and accuracy for progress reports (their
    /// figures lag by up to this many steps); the first and last step of every epoch read them too. Without a progress
    /// listener the run reads them once per epoch.
    /// </summary>
    public int MetricsInterval { get; init; } = 10;

    /// <summary>Largest mini-batch (keeps every per-batch size computation far from overflow).</summary>
    public const int MaxBatchSize = 65_536;

    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(DataPath))
        {
            throw new ArgumentException("Give the data set file (--data FILE; make one with `ilgpuoct data import` or `data synth`).");
        }
        if (string.IsNullOrWhiteSpace(OutputDirectory))
        {
            throw new ArgumentException("Give an output folder (--out DIR).");
        }
        if (Epochs < 1)
        {
            throw new ArgumentException($"--epochs must be at least 1; got {Epochs}.");
        }
        if (BatchSize is < 2 or > MaxBatchSize)
        {
            throw new ArgumentException($"--batch must be in 2..{MaxBatchSize} (batch norm needs more than one image); got {BatchSize}.");
        }
        if (!(LearningRate > 0) || !float.IsFinite(LearningRate))
        {
            throw new ArgumentException($"--lr must be a positive number; got {LearningRate}.");
        }
        if (MetricsInterval < 1)
        {
            throw new ArgumentException($"The metrics interval must be at least 1 step; got {MetricsInterval}.");
        }
        if (Schedule is not ("cosine" or "step"))
        {
            throw new ArgumentException($"--schedule must be cosine or step; got '{Schedule}'.");
        }
        if (Width < 1 || Width > Checkpoints.Checkpoint.MaxWidth)
        {
            throw new ArgumentException($"--width must be in 1..{Checkpoints.Checkpoint.MaxWidth} (64 is torchvision's ResNet-18); got {Width}.");
        }
        if (Pretrained is not null)
        {
            Onnx.ResNetOnnxImport.RequirePretrainedWidth(Width);
        }
    }
}

/// <summary>What the run reports while it trains.</summary>
public sealed record TrainingProgress(
    string Phase,
    int Epoch,
    int Epochs,
    long Step,
    long TotalSteps,
    double Loss,
    double Accuracy,
    double ImagesPerSecond,
    double LearningRate,
    TimeSpan Elapsed,
    TimeSpan? Remaining);

/// <summary>One line of metrics.jsonl.</summary>
public sealed record EpochMetrics(
    int Epoch,
    double TrainLoss,
    double TrainAccuracy,
    double TestAccuracy,
    double ImagesPerSecond,
    double Lr,
    double Seconds,
    long Step);

/// <summary>How a run ended.</summary>
public sealed record TrainingResult(
    IReadOnlyList<EpochMetrics> Epochs,
    bool Cancelled,
    string CheckpointPath,
    int Epoch,
    long Step,
    IReadOnlyList<string> Notices)
{
    /// <summary>Wall seconds of training over every session of the run (a resumed run adds the time stored in its checkpoint).</summary>
    public double TrainingSeconds { get; init; }
}

/// <summary>The loss became NaN or infinite; the message names the epoch and step.</summary>
public sealed class TrainingDivergedException(string message) : InvalidOperationException(message);
