using IlgpuOct.Defense.Attacks;
using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Operators;
using IlgpuOct.Nn;
using IlgpuOct.Nn.Checkpoints;
using IlgpuOct.Nn.Data;
using IlgpuOct.Nn.Training;

namespace IlgpuOct.Defense.Training;

/// <summary>Settings shared by the FGSM-based modes (AT, SSAT).</summary>
public sealed record AdversarialTrainingOptions
{
    /// <summary>Each batch draws its FGSM epsilon uniformly from [EpsilonMin, EpsilonMax] (the paper: [0.001, 0.003]).</summary>
    public float EpsilonMin { get; init; } = 0.001f;

    public float EpsilonMax { get; init; } = 0.003f;

    /// <summary>Wong et al. (2020): start uniformly in [-eps, eps], then one step of 1.25 eps, projected to the eps ball. Off by default (the paper uses plain FGSM).</summary>
    public bool RandomStart { get; init; }

    /// <summary>Weight of the unlabeled term of SSAT (the paper: 5).</summary>
    public float Lambda { get; init; } = 5f;

    /// <summary>
    /// SSAT: lambda grows linearly from lambda/W to lambda over the first W steps (0 = the full lambda
    /// from the first step, as the paper states). A model that starts from random weights gives one
    /// pseudo-label to every image, and 5 x CE on those collapses it to one class; a warm-up lets
    /// the supervised part make the pseudo-labels meaningful first.
    /// </summary>
    public long LambdaWarmupSteps { get; init; }

    /// <summary>
    /// SSAT: only unlabeled images whose clean prediction has softmax probability >= this get a
    /// pseudo-label term (the sum still divides by all U images, as FixMatch). 0 = every image, as
    /// the paper states. With a weak model, 5 x CE on all of its own (partly wrong, class-skewed)
    /// predictions feeds the skew back and collapses training to one class.
    /// </summary>
    public float PseudoLabelThreshold { get; init; }

    /// <summary>
    /// SSAT: a checkpoint whose (fixed) predictions on the clean unlabeled images are the pseudo-labels,
    /// as in Carmon et al. (2019)'s robust self-training, where a model trained on the labeled data
    /// labels the unlabeled data once. Null = the model being trained labels them at every step, as
    /// the paper states; a model that labels its own training data can feed a class skew back into
    /// itself (with lambda = 5 it collapsed to one class on the quick profile).
    /// </summary>
    public string? PseudoLabelTeacher { get; init; }

    /// <summary>
    /// SSAT: divide the loss by 1 + lambda, so that lambda sets the unlabeled term's share and a step
    /// is as large as an AT step at the same learning rate (false = L_sup + lambda L_unsup, as the paper,
    /// whose gradient is up to 1 + lambda times AT's).
    /// </summary>
    public bool NormalizeByLambda { get; init; }

    /// <summary>SSAT: unlabeled images per step as a share of the labeled batch (1 = a batch of the same size).</summary>
    public float UnlabeledPerLabeled { get; init; } = 1f;

    /// <summary>SSAT: the unlabeled images of a step for a labeled batch of <paramref name="labeled"/> (at least 1).</summary>
    public int UnlabeledBatch(int labeled) => Math.Max(1, (int)MathF.Round(labeled * UnlabeledPerLabeled));

    /// <summary>The unlabeled weight at a step (see <see cref="LambdaWarmupSteps"/>).</summary>
    public float LambdaAt(long step) => LambdaWarmupSteps <= 0 ? Lambda : Lambda * Math.Min(1f, (step + 1) / (float)LambdaWarmupSteps);

    public void Validate()
    {
        if (!(EpsilonMin >= 0 && EpsilonMax >= EpsilonMin && EpsilonMax <= 1))
        {
            throw new ArgumentException($"The FGSM epsilon range must satisfy 0 <= min <= max <= 1; got [{EpsilonMin}, {EpsilonMax}].");
        }
        if (!(PseudoLabelThreshold >= 0 && PseudoLabelThreshold <= 1))
        {
            throw new ArgumentException($"The pseudo-label confidence threshold must lie in [0, 1]; got {PseudoLabelThreshold}.");
        }
        if (!(UnlabeledPerLabeled > 0 && UnlabeledPerLabeled <= 16))
        {
            throw new ArgumentException($"SSAT's unlabeled images per labeled image must lie in (0, 16]; got {UnlabeledPerLabeled}.");
        }
        if (LambdaWarmupSteps < 0)
        {
            throw new ArgumentException($"The lambda warm-up must be >= 0 steps; got {LambdaWarmupSteps}.");
        }
        if (!(Lambda >= 0) || !float.IsFinite(Lambda))
        {
            throw new ArgumentException($"--lambda must be a finite number >= 0; got {Lambda}.");
        }
    }

    /// <summary>The epsilon of a batch: uniform in [min, max] from a generator seeded by (seed, step, stream).</summary>
    public float EpsilonFor(int seed, long step, int stream) =>
        EpsilonMin + (float)(new Random(Seeds.Derive(seed, 7100 + stream, step)).NextDouble() * (EpsilonMax - EpsilonMin));
}

/// <summary>
/// FGSM training samples on a frozen (evaluation-mode) view of the model, on the device: the attack
/// verbs' PGD loop (<see cref="Pgd.Steps"/>, one step) on the cross-entropy objective against classes
/// already on the device. x_adv = clip(x + eps sign(d CE / dx), 0, 1), or with the random start:
/// x' = clip(x + U[-eps, eps]), then x_adv = clip(proj_eps(x' + 1.25 eps sign(d CE(x') / dx)), 0, 1).
/// Buffers are kept for the largest batch, so steps after the first allocate nothing and read nothing
/// back; the random start uploads its host-drawn offsets.
/// </summary>
public sealed class FgsmSampler(IDifferentiableClassifier classifier) : IDisposable
{
    private readonly CrossEntropyObjective _objective = new(classifier);
    private Tensor? _original; // (N, C, H, W) the clean images of the last call
    private Tensor? _offsets; // (N, C, H, W) the random start's offsets
    private float[] _hostOffsets = []; // (N * C * H * W)

    public IDifferentiableClassifier Classifier => _objective.Classifier;

    /// <summary>Replaces device images (N, C, H, W) in [0, 1] by their FGSM images against device classes (N).</summary>
    public void Attack(Tensor images, View<int> classes, float epsilon, bool randomStart, Random random)
    {
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(random);
        if (epsilon <= 0)
        {
            return;
        }
        var accelerator = images.Accelerator;
        var original = Tensor.ReuseLargest(ref _original, accelerator, images.Shape);
        original.CopyFrom(images);
        if (randomStart)
        {
            if (_hostOffsets.Length != images.Length)
            {
                _hostOffsets = new float[images.Length];
            }
            AttackMath.RandomOffsets(_hostOffsets, epsilon, random);
            var offsets = Tensor.ReuseLargest(ref _offsets, accelerator, images.Shape);
            offsets.Upload(_hostOffsets);
            AttackKernels.OffsetClip(accelerator, images.View, original.View, offsets.View);
        }
        var options = new PgdOptions { Epsilon = epsilon, Steps = 1, StepSize = randomStart ? 1.25f * epsilon : epsilon };
        Pgd.Steps(images, original, x => _objective.Gradient(x, classes, targeted: false), options, name: "fgsm");
    }

    public void Dispose()
    {
        _objective.Dispose();
        _original?.Dispose();
        _offsets?.Dispose();
    }
}

/// <summary>FGSM samples of host images (N, C, H, W) against host labels: uploads, runs <see cref="FgsmSampler"/>, downloads (tests and one-off use).</summary>
public static class FgsmSamples
{
    public static float[] Make(IDifferentiableClassifier classifier, float[] images, int[] shape, int[] labels, float epsilon, bool randomStart, Random random)
    {
        ArgumentNullException.ThrowIfNull(classifier);
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(labels);
        AttackChecks.RequireImages(images, shape, classifier.InChannels);
        AttackChecks.RequireLabels(labels, shape[0], classifier.NumClasses, nameof(labels));
        var accelerator = classifier.Accelerator;
        using var x = Tensor.FromHost(accelerator, images, shape);
        using var classes = accelerator.Upload<int>(labels);
        using var sampler = new FgsmSampler(classifier);
        sampler.Attack(x, classes.View, epsilon, randomStart, random);
        return x.Download();
    }
}

/// <summary>GCE: guided complement entropy (Chen et al. 2019, alpha = 1/3) instead of cross-entropy; needs at least 3 classes.</summary>
public sealed class GuidedComplementTraining : TrainingMode
{
    public override string Name => "gce";

    public override ILossFunction Loss { get; } = new GuidedComplementEntropyLoss();
}

/// <summary>The GCE operator as a training loss (mean over the batch).</summary>
public sealed class GuidedComplementEntropyLoss : ILossFunction
{
    public string Name => "guided-complement-entropy";

    public void Compute(Tensor logits, View<int> labels, Tensor dLogits, View<float> loss)
    {
        ArgumentNullException.ThrowIfNull(logits);
        ArgumentNullException.ThrowIfNull(dLogits);
        if (logits.Dim(1) < 3)
        {
            throw new ArgumentException($"GCE training needs at least 3 classes (its normaliser is log(K - 1)); this data set has {logits.Dim(1)}. Use nt, at or ssat.");
        }
        GuidedComplementEntropy.Compute(logits.Accelerator, new LogitsShape(logits.Dim(0), logits.Dim(1)), logits.View, labels, loss, dLogits.View);
    }
}

/// <summary>
/// AT: the first half of every mini-batch stays clean, the second half is replaced by FGSM images
/// of itself (eps uniform in [0.001, 0.003], one draw per batch, from the model in evaluation mode
/// at the current step); the loss is cross-entropy over the whole batch.
/// </summary>
public sealed class AdversarialTraining(AdversarialTrainingOptions? options = null) : TrainingMode, IDisposable
{
    private readonly ModelFgsm _fgsm = new();

    public AdversarialTrainingOptions Options { get; } = Validated(options ?? new AdversarialTrainingOptions());

    public override string Name => "at";

    /// <summary>The epsilon of the last prepared batch (for tests and logs).</summary>
    public float LastEpsilon { get; private set; }

    public override void PrepareBatch(TrainingBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        LastEpsilon = ReplaceSecondHalf(_fgsm.For(batch.Model), batch.Images, batch.Labels, Options, batch.Seed, batch.Step, 0);
    }

    /// <summary>Overwrites images [N/2, N) of <paramref name="images"/> (N, C, H, W) on the device with their FGSM versions against labels (N); returns the epsilon used.</summary>
    internal static float ReplaceSecondHalf(FgsmSampler sampler, Tensor images, View<int> labels, AdversarialTrainingOptions options, int seed, long step, int stream)
    {
        int n = images.Dim(0);
        int half = n / 2;
        int adv = n - half;
        float eps = options.EpsilonFor(seed, step, stream);
        if (adv == 0)
        {
            return eps;
        }
        sampler.Attack(images.Rows(half, adv), labels.Slice(half, adv), eps, options.RandomStart, new Random(Seeds.Derive(seed, 7200 + stream, step)));
        return eps;
    }

    public void Dispose() => _fgsm.Dispose();

    private static AdversarialTrainingOptions Validated(AdversarialTrainingOptions o)
    {
        o.Validate();
        return o;
    }
}

/// <summary>
/// SSAT (semi-supervised adversarial training): L = L_sup + lambda L_unsup (divided by 1 + lambda
/// with <see cref="AdversarialTrainingOptions.NormalizeByLambda"/>). L_sup is the AT loss of
/// the labeled batch (half clean, half FGSM); for L_unsup a batch of unlabeled images (of the same
/// size, or <see cref="AdversarialTrainingOptions.UnlabeledPerLabeled"/> times it) gets pseudo-labels = the evaluation-mode prediction on the clean images of the current
/// model, or of a fixed teacher (<see cref="AdversarialTrainingOptions.PseudoLabelTeacher"/>, computed
/// once), then FGSM images against those pseudo-labels, and L_unsup is their cross-entropy against the
/// pseudo-labels. Both parts go through one training-mode forward pass (the batch-norm statistics
/// are those of the joint batch); the loss gradient is dL_sup/dz on the labeled rows and
/// lambda dL_unsup/dz on the unlabeled rows, each part a mean over its own rows.
/// </summary>
public sealed class SemiSupervisedAdversarialTraining : TrainingMode, IDisposable
{
    private readonly DatasetFile? _ownedFile;
    private readonly DatasetSplit _unlabeled;
    private readonly int _dataSeed;
    private readonly ModelFgsm _fgsm = new();
    private Tensor? _joint; // (B + U, C, H, W)
    private Tensor? _jointDLogits; // (B + U, K)
    private DeviceBuffer<int>? _pseudoLabels; // (at least U) the step's pseudo-labels, the FGSM's classes
    private DeviceBuffer<int>? _confident; // (at least U) 1 where the pseudo-label counts
    private Tensor? _rowLoss; // (B + U) each row's cross-entropy (scratch)
    private DeviceBuffer<double>? _parts; // (3) L_sup, L_unsup, confident count of the last step
    private int _lastUnlabeled; // U of the last step
    private float[] _unlabeledHost = [];
    private (int[] Labels, int[] Confident)? _teacherLabels; // (unlabeled count) each, from PseudoLabelTeacher

    /// <param name="unlabeled">Images whose labels are never read.</param>
    public SemiSupervisedAdversarialTraining(DatasetSplit unlabeled, AdversarialTrainingOptions? options = null, int seed = 0)
    {
        _unlabeled = unlabeled ?? throw new ArgumentNullException(nameof(unlabeled));
        if (unlabeled.Count == 0)
        {
            throw new ArgumentException("SSAT needs unlabeled images; the given split is empty.");
        }
        Options = options ?? new AdversarialTrainingOptions();
        Options.Validate();
        _dataSeed = seed;
    }

    private SemiSupervisedAdversarialTraining(DatasetFile file, DatasetSplit split, AdversarialTrainingOptions? options, int seed)
        : this(split, options, seed)
    {
        _ownedFile = file;
    }

    /// <summary>
    /// Opens the unlabeled images: <paramref name="unlabeledFile"/>'s 'unlabeled' split (else its 'train' split, labels ignored)
    /// when given, else the 'unlabeled' split of the training data set.
    /// </summary>
    public static SemiSupervisedAdversarialTraining Open(string dataPath, string? unlabeledFile, AdversarialTrainingOptions? options, int seed)
    {
        string path = unlabeledFile ?? dataPath;
        var file = DatasetFile.Open(path);
        try
        {
            string split = file.HasSplit("unlabeled") ? "unlabeled" : unlabeledFile is not null && file.HasSplit("train") ? "train" : "";
            if (split.Length == 0)
            {
                throw new ArgumentException($"'{path}' has no 'unlabeled' split (it has: {string.Join(", ", file.Splits.Select(s => s.Name))}); SSAT needs one, or give --unlabeled FILE.");
            }
            return new SemiSupervisedAdversarialTraining(file, file.Split(split), options, seed);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    public AdversarialTrainingOptions Options { get; }

    public override string Name => "ssat";

    /// <summary>Supervised and unsupervised parts of the last step's loss (read from the device when asked, for logs and tests).</summary>
    public (double Supervised, double Unsupervised) LastLossParts
    {
        get
        {
            double[] parts = LastParts();
            return (parts[0], parts[1]);
        }
    }

    /// <summary>Unlabeled images of the last step that passed <see cref="AdversarialTrainingOptions.PseudoLabelThreshold"/> (read when asked).</summary>
    public int LastConfidentCount => (int)LastParts()[2];

    /// <summary>Pseudo-labels of the last step's unlabeled batch (read when asked).</summary>
    public int[] LastPseudoLabels => _pseudoLabels is null ? [] : _pseudoLabels.Accelerator.Download(_pseudoLabels.View.Slice(0, _lastUnlabeled));

    private double[] LastParts() => _parts is null ? [0, 0, 0] : _parts.Accelerator.Download(_parts.View);

    /// <summary>The teacher's pseudo-labels of every unlabeled image, 64 images per forward pass.</summary>
    private static (int[] Labels, int[] Confident) TeacherPseudoLabels(Accelerator accelerator, string path, DatasetSplit unlabeled, int classes, float threshold)
    {
        var (teacher, _) = Checkpoint.Open(accelerator, path);
        using (teacher)
        {
            if (teacher.Config.NumClasses != classes || teacher.Config.InChannels != unlabeled.Channels)
            {
                throw new ArgumentException($"The SSAT pseudo-label teacher '{path}' has {teacher.Config.InChannels} input channel(s) and {teacher.Config.NumClasses} classes; "
                    + $"the data has {unlabeled.Channels} and {classes}. Give a checkpoint trained on this data set.");
            }
            using var classifier = new ResNetClassifier(teacher);
            int n = unlabeled.Count, per = unlabeled.Channels * unlabeled.Height * unlabeled.Width;
            var labels = new int[n];
            var confident = new int[n];
            const int Chunk = 64;
            for (int start = 0; start < n; start += Chunk)
            {
                int count = Math.Min(Chunk, n - start);
                var images = new float[count * per];
                unlabeled.CopyImages([.. Enumerable.Range(start, count)], images);
                float[] logits = classifier.Logits(images, [count, unlabeled.Channels, unlabeled.Height, unlabeled.Width]);
                SemiSupervisedBookkeeping.PseudoLabelsCpu(new LogitsShape(count, classes), logits, labels.AsSpan(start, count), confident.AsSpan(start, count), threshold);
            }
            return (labels, confident);
        }
    }

    /// <summary>The unlabeled images of a step: a seeded cycle through the split, <paramref name="count"/> at a time.</summary>
    public int[] UnlabeledIndices(long step, int count)
    {
        int total = _unlabeled.Count;
        long start = step * count;
        var indices = new int[count];
        for (int i = 0; i < count; i++)
        {
            long position = start + i;
            long round = position / total;
            int[] permutation = Seeds.Permutation(total, Seeds.Derive(_dataSeed, 7300, round));
            indices[i] = permutation[(int)(position % total)];
        }
        return indices;
    }

    public override Tensor ComputeGradients(TrainingBatch batch, StepBuffers buffers)
    {
        ArgumentNullException.ThrowIfNull(batch);
        ArgumentNullException.ThrowIfNull(buffers);
        var model = batch.Model;
        var accelerator = model.Accelerator;
        int b = batch.Count;
        int c = batch.Images.Dim(1), h = batch.Images.Dim(2), w = batch.Images.Dim(3);
        if (_unlabeled.Channels != c || _unlabeled.Height != h || _unlabeled.Width != w)
        {
            throw new ArgumentException($"The unlabeled images are {_unlabeled.Channels}x{_unlabeled.Height}x{_unlabeled.Width}, the labeled ones {c}x{h}x{w}; they must match.");
        }
        // Supervised part: the AT batch, made on the device.
        var sampler = _fgsm.For(model);
        AdversarialTraining.ReplaceSecondHalf(sampler, batch.Images, batch.Labels, Options, batch.Seed, batch.Step, 0);

        // Unsupervised part: the unlabeled images go straight into the joint batch's last rows; pseudo-labels
        // from the clean images, then FGSM against them in place.
        int u = Options.UnlabeledBatch(b);
        int k = model.Config.NumClasses;
        int per = c * h * w;
        if (_unlabeledHost.Length != u * per)
        {
            _unlabeledHost = new float[u * per];
        }
        int[] unlabeledIdx = UnlabeledIndices(batch.Step, u);
        _unlabeled.CopyImages(unlabeledIdx, _unlabeledHost);
        var joint = Tensor.ReuseLargest(ref _joint, accelerator, b + u, c, h, w);
        var unlabeledRows = joint.Rows(b, u);
        unlabeledRows.Upload(_unlabeledHost);
        var pseudo = Ints(ref _pseudoLabels, accelerator, u);
        var confident = Ints(ref _confident, accelerator, u);
        if (Options.PseudoLabelTeacher is { } teacherPath)
        {
            var (teacherLabels, teacherConfident) = _teacherLabels ??= TeacherPseudoLabels(accelerator, teacherPath, _unlabeled, k, Options.PseudoLabelThreshold);
            accelerator.CopyFromHost<int>([.. unlabeledIdx.Select(i => teacherLabels[i])], pseudo);
            accelerator.CopyFromHost<int>([.. unlabeledIdx.Select(i => teacherConfident[i])], confident);
        }
        else
        {
            var clean = sampler.Classifier.LogitsTensor(unlabeledRows);
            SemiSupervisedBookkeeping.PseudoLabels(accelerator, new LogitsShape(u, k), clean.View, pseudo, confident, Options.PseudoLabelThreshold);
        }
        float eps = Options.EpsilonFor(batch.Seed, batch.Step, 1);
        sampler.Attack(unlabeledRows, pseudo, eps, Options.RandomStart, new Random(Seeds.Derive(batch.Seed, 7201, batch.Step)));

        // One forward over [labeled AT batch; unlabeled FGSM batch]; the loss, its parts and dL/dz stay on the device.
        joint.Rows(0, b).CopyFrom(batch.Images);
        var logits = model.Forward(joint, training: true);
        float lambda = Options.LambdaAt(batch.Step);
        float scale = Options.NormalizeByLambda ? 1f / (1f + lambda) : 1f;
        var dLogits = Tensor.ReuseLargest(ref _jointDLogits, accelerator, b + u, k);
        var rowLoss = Tensor.ReuseLargest(ref _rowLoss, accelerator, b + u);
        _parts ??= accelerator.Allocate<double>(SemiSupervisedBookkeeping.PartsLength);
        SemiSupervisedBookkeeping.Loss(accelerator, new SemiSupervisedShape(b, u, k), logits.View, batch.Labels, pseudo, confident, lambda, scale,
            rowLoss.View, dLogits.View, buffers.Loss.View, _parts.View);
        _lastUnlabeled = u;
        model.Backward(dLogits, BackwardMode.Parameters);
        // The trainer reports accuracy against the labeled batch: the labeled rows' logits.
        return logits.Rows(0, b);
    }

    /// <summary>The first <paramref name="count"/> ints of a buffer kept for the largest count.</summary>
    private static View<int> Ints(ref DeviceBuffer<int>? buffer, Accelerator accelerator, int count)
    {
        if (buffer is null || buffer.Length < count)
        {
            buffer?.Dispose();
            buffer = accelerator.Allocate<int>(count);
        }
        return buffer.View.Slice(0, count);
    }

    public void Dispose()
    {
        _fgsm.Dispose();
        _joint?.Dispose();
        _jointDLogits?.Dispose();
        _pseudoLabels?.Dispose();
        _confident?.Dispose();
        _rowLoss?.Dispose();
        _parts?.Dispose();
        _ownedFile?.Dispose();
    }
}

/// <summary>An FGSM sampler on the evaluation-mode view of the model being trained, kept across steps (rebuilt if the model changes).</summary>
internal sealed class ModelFgsm : IDisposable
{
    private ResNet18? _model;
    private ResNetClassifier? _classifier;
    private FgsmSampler? _sampler;

    public FgsmSampler For(ResNet18 model)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (!ReferenceEquals(model, _model) || _sampler is null)
        {
            Dispose();
            _model = model;
            _classifier = new ResNetClassifier(model);
            _sampler = new FgsmSampler(_classifier);
        }
        return _sampler;
    }

    public void Dispose()
    {
        _sampler?.Dispose();
        _classifier?.Dispose();
        _sampler = null;
        _classifier = null;
        _model = null;
    }
}

/// <summary>Registers gce and at by name (ssat needs its unlabeled data, so it is built with <see cref="SemiSupervisedAdversarialTraining.Open"/>).</summary>
public static class DefenseTrainingModes
{
    public static readonly IReadOnlyList<string> All = ["nt", "gce", "at", "ssat"];

    public static void Register()
    {
        TrainingModes.Register("gce", () => new GuidedComplementTraining());
        TrainingModes.Register("at", () => new AdversarialTraining());
    }

    /// <summary>A factory for <paramref name="mode"/> with the given settings (ssat opens its unlabeled images).</summary>
    public static Func<TrainingMode> Factory(string mode, string dataPath, string? unlabeledFile, AdversarialTrainingOptions options, int seed) =>
        mode.ToLowerInvariant() switch
        {
            "nt" => () => new NaturalTraining(),
            "gce" => () => new GuidedComplementTraining(),
            "at" => () => new AdversarialTraining(options),
            "ssat" => () => SemiSupervisedAdversarialTraining.Open(dataPath, unlabeledFile, options, seed),
            _ => throw new ArgumentException($"Unknown training mode '{mode}'; use one of: {string.Join(", ", All)}."),
        };
}
