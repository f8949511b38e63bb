using IlgpuOct.Defense.Risk;

namespace IlgpuOct.Defense.Experiments;

/// <summary>Sizes, training and attack settings of one <c>reproduce</c> run.</summary>
public sealed record ReproduceProfile
{
    public required string Name { get; init; }

    /// <summary>Generated synthetic data (when no --data is given): resolution and split sizes (balanced).</summary>
    public int Resolution { get; init; } = 64;

    public int TrainImages { get; init; } = 800;

    public int UnlabeledImages { get; init; } = 200;

    public int ValImages { get; init; } = 200;

    public int TestImages { get; init; } = 200;

    /// <summary>Floor of the synthetic pathology's severity (see <see cref="Nn.Data.SyntheticOct.Render"/>); 0 = the hardest set.</summary>
    public float DataMinSeverity { get; init; }

    /// <summary>Seeds run by default (each trains, attacks and evaluates on its own data and initialisation).</summary>
    public IReadOnlyList<int> Seeds { get; init; } = [0];

    /// <summary>Data set used when no --data is given (a path relative to the working folder or the repository); null = synthetic OCT.</summary>
    public string? DefaultDataPath { get; init; }

    /// <summary>Share of each class of a .npz's train split that becomes the 'unlabeled' split (SSAT) on import.</summary>
    public double ImportUnlabeledFraction { get; init; } = 0.2;

    public IReadOnlyList<string> Modes { get; init; } = ["nt", "gce", "at", "ssat"];

    public int Width { get; init; } = 8;

    public int Epochs { get; init; } = 3;

    /// <summary>Epochs of the GCE model when it differs (GCE learns more slowly than cross-entropy); null: <see cref="Epochs"/>.</summary>
    public int? GceEpochs { get; init; }

    /// <summary>The epochs a training mode gets.</summary>
    public int EpochsFor(string mode) => mode == "gce" && GceEpochs is int gce ? gce : Epochs;

    public int BatchSize { get; init; } = 32;

    /// <summary>SSAT lambda warm-up as a fraction of all training steps (see <see cref="Training.AdversarialTrainingOptions.LambdaWarmupSteps"/>).</summary>
    public double SsatWarmupFraction { get; init; } = 0.5;

    /// <summary>SSAT pseudo-label confidence threshold (see <see cref="Training.AdversarialTrainingOptions.PseudoLabelThreshold"/>).</summary>
    public float SsatPseudoLabelThreshold { get; init; } = 0.9f;

    /// <summary>
    /// SSAT: the mode whose trained model of the same seed gives the fixed pseudo-labels (robust self-training,
    /// see <see cref="Training.AdversarialTrainingOptions.PseudoLabelTeacher"/>); null, or a mode not run, = the
    /// model being trained labels them (the paper's statement, which collapsed SSAT to one class on the quick profile).
    /// </summary>
    public string? SsatTeacherMode { get; init; } = "nt";

    /// <summary>SSAT: unlabeled images per step as a share of the labeled batch (see <see cref="Training.AdversarialTrainingOptions.UnlabeledPerLabeled"/>).</summary>
    public float SsatUnlabeledPerLabeled { get; init; } = 1f;

    public float LearningRate { get; init; } = 0.05f;

    /// <summary>Test images attacked (the first ones of the test split, which is shuffled and balanced).</summary>
    public int AttackImages { get; init; } = 200;

    /// <summary>Training images whose features fit the detectors (0 = all).</summary>
    public int DetectorFitImages { get; init; }

    public IReadOnlyList<float> FgsmEpsilons { get; init; } = [0.001f, 0.002f, 0.005f, 0.01f];

    public IReadOnlyList<float> PgdEpsilons { get; init; } = [0.001f, 0.002f, 0.005f, 0.01f];

    public int PgdSteps { get; init; } = 10;

    /// <summary>C&amp;W L2 trade-off constants, one fixed-c run each (no binary search) so accuracy can be plotted against c.</summary>
    public IReadOnlyList<double> CwConstants { get; init; } = [0.01, 0.1, 1.0];

    public int CwIterations { get; init; } = 20;

    public double CwLearningRate { get; init; } = 0.01;

    /// <summary>PGD epsilon of Table 1 (the paper: 0.005).</summary>
    public float TableEpsilon { get; init; } = 0.005f;

    /// <summary>PGD epsilons of Table 2 (the paper: 0.005 and 0.01).</summary>
    public IReadOnlyList<float> RiskEpsilons { get; init; } = [0.005f, 0.01f];

    /// <summary>Epsilons of the adaptive attacks (HFC, density-PGD against each detector).</summary>
    public IReadOnlyList<float> AdaptiveEpsilons { get; init; } = [0.005f, 0.01f];

    /// <summary>
    /// Weights of the feature term of the adaptive attacks; with more than one, each attack's
    /// lambda is the one with the highest system-level success on <see cref="LambdaSweepImages"/>
    /// held-out test images (0 = plain PGD, so the sweep can only make the attack stronger against the system).
    /// </summary>
    public IReadOnlyList<double> AdaptiveLambdas { get; init; } = [1.0];

    public int LambdaSweepImages { get; init; } = 64;

    /// <summary>Models the adaptive attacks run against (empty = all).</summary>
    public IReadOnlyList<string> AdaptiveModes { get; init; } = [];

    public double CleanRejectionRate { get; init; } = 0.05;

    /// <summary>Judge the detectors on every attack (evaluate), not only on PGD at the table epsilons and the adaptive attacks.</summary>
    public bool JudgeEveryAttack { get; init; }

    public UnitRisks UnitRisks { get; init; } = new();

    /// <summary>
    /// Three seeds in at most 15 minutes on 2 idle CPU cores: a budget of about 1500 CPU-s, 500 per seed. Sized from
    /// CPU time (user + sys) measured on a machine loaded by other jobs (load average 30-60), which inflates CPU time.
    /// Measured on 2 idle cores, 2026-11-30 (commit 221469e): the README's main command took 10 min 58 s wall from
    /// `dotnet run` (650 s inside the run, 1206 CPU-s), NT 91.7 / 94.3 / 94.0 % on seeds 0 / 1 / 2 (the build of
    /// 2026-11-29, before the CPU convolution's summation order changed: 12 min 4 s, NT 94.75 / 95.0 / 94.75 %).
    /// <list type="bullet">
    /// <item>Data: 64x64 synthetic OCT with visibility floor 0.75, 3200/800/400/400. With the recipe below NT reaches
    /// 91.7-94.3 % clean test accuracy over seeds 0-2.</item>
    /// <item>Training, width 8, batch 32, lr 0.05 cosine, 6 epochs (8 before: 95.25-95.5 %, a quarter more time).
    /// Measured for 6 epochs: NT 45-56 CPU-s, AT 66 (FGSM on half of each batch), SSAT 109-116. SSAT draws half a labeled
    /// batch of unlabeled images per step (<see cref="SsatUnlabeledPerLabeled"/> 0.5; the unlabeled split is a quarter
    /// of the labeled one, so an epoch still sees each unlabeled image twice). With a full batch it cost 3.2 times NT.
    /// GCE costs what NT costs per epoch but learns more slowly: at 6 epochs it reached 78.8 % (seed 0) against 91.75 % at
    /// 8, so it keeps 8 (<see cref="GceEpochs"/>). That is about 310 CPU-s of training per seed.</item>
    /// <item>Attacks on 160 test images per model (200 before), measured in a run: fitting the three detectors 5 CPU-s,
    /// FGSM under 1 each, PGD-10 3 each, C&amp;W (2 constants x 10 steps) about 2: about 16 CPU-s per model.
    /// The adaptive attacks (HFC and density-PGD against each of the three detectors at eps 0.005) run on NT and AT
    /// only. Their lambda sweep is cut to [0, 0.1, 1] on 32 held-out images; they cost about 17 CPU-s per model.</item>
    /// </list>
    /// Estimated total: about 400 CPU-s per seed (285 training, 100 attacks, the rest data, t-SNE and reports) and
    /// 1200 for three seeds on the loaded machine, which leaves a margin of a fifth under the budget.
    /// </summary>
    public static ReproduceProfile Quick { get; } = new()
    {
        Name = "quick",
        Seeds = [0, 1, 2],
        DataMinSeverity = 0.75f,
        AdaptiveLambdas = [0, 0.1, 1],
        LambdaSweepImages = 32,
        AdaptiveModes = ["nt", "at"],
        TrainImages = 3200,
        UnlabeledImages = 800,
        ValImages = 400,
        TestImages = 400,
        Epochs = 6,
        GceEpochs = 8,
        SsatUnlabeledPerLabeled = 0.5f,
        AttackImages = 160,
        FgsmEpsilons = [0.002f, 0.005f, 0.01f],
        PgdEpsilons = [0.002f, 0.005f, 0.01f],
        CwConstants = [0.1, 1.0],
        CwIterations = 10,
        CwLearningRate = 0.05,
        AdaptiveEpsilons = [0.005f],
    };

    /// <summary>
    /// The same experiment on the real paediatric chest X-rays of PneumoniaMNIST (28x28, 2 classes,
    /// upsampled to 32x32; GCE is not applicable to 2 classes); three seeds in about 15 minutes on 2 CPU cores.
    /// A 32x32 image costs about a quarter of a 64x64 one, so it keeps 8 epochs and 200 attacked images.
    /// </summary>
    public static ReproduceProfile Pneumonia { get; } = Quick with
    {
        Name = "pneumonia",
        DefaultDataPath = "../shared/data/pneumoniamnist.npz",
        Resolution = 32,
        Epochs = 8,
        AttackImages = 200,
    };

    /// <summary>
    /// The paper's protocol (for a GPU): 224x224, 4000/1000/500/1000, width 64, 10 epochs, batch 64,
    /// three seeds. Expected time, estimated from operation counts (not measured: no GPU was lent):
    /// about 21 PFLOP per seed (training 2.6, attacks 18, C&amp;W's 500 steps per image the bulk), so
    /// 20-40 minutes per seed on one H200 at 10-20 TFLOP/s effective FP32, 1-2 hours for three seeds.
    /// </summary>
    public static ReproduceProfile Paper { get; } = new()
    {
        Name = "paper",
        Seeds = [0, 1, 2],
        AdaptiveLambdas = [0, 0.01, 0.1, 1],
        Resolution = 224,
        TrainImages = 4000,
        UnlabeledImages = 1000,
        ValImages = 500,
        TestImages = 1000,
        Width = 64,
        Epochs = 10,
        BatchSize = 64,
        LearningRate = 0.05f,
        AttackImages = 1000,
        FgsmEpsilons = [0.0005f, 0.001f, 0.002f, 0.003f, 0.005f, 0.0075f, 0.01f],
        PgdEpsilons = [0.0005f, 0.001f, 0.002f, 0.003f, 0.005f, 0.0075f, 0.01f],
        CwConstants = [0.001, 0.01, 0.1, 1.0, 10.0],
        CwIterations = 100,
    };

    /// <summary>A few seconds on a CPU: for tests of the pipeline, not for conclusions.</summary>
    public static ReproduceProfile Micro { get; } = new()
    {
        Name = "micro",
        Resolution = 16,
        TrainImages = 48,
        UnlabeledImages = 16,
        ValImages = 16,
        TestImages = 32,
        Width = 2,
        Epochs = 1,
        BatchSize = 16,
        AttackImages = 24,
        FgsmEpsilons = [0.005f, 0.01f],
        PgdEpsilons = [0.005f, 0.01f],
        PgdSteps = 2,
        CwConstants = [0.1],
        CwIterations = 2,
        AdaptiveEpsilons = [0.005f],
        AdaptiveLambdas = [0, 1],
        LambdaSweepImages = 8,
    };

    public static ReproduceProfile ByName(string name) => name.ToLowerInvariant() switch
    {
        "quick" => Quick,
        "pneumonia" => Pneumonia,
        "paper" => Paper,
        "micro" => Micro,
        _ => throw new ArgumentException($"Unknown profile '{name}'; use quick, pneumonia, paper or micro."),
    };

    /// <summary>
    /// Finds a profile's data file given relative to the repository's parent layout (../shared/data/...):
    /// first from <paramref name="workingDirectory"/>, then from each folder above <paramref name="baseDirectory"/>
    /// (the build output inside the repository).
    /// </summary>
    public static string LocateData(string relativePath, string workingDirectory, string baseDirectory)
    {
        ArgumentNullException.ThrowIfNull(relativePath);
        string candidate = Path.GetFullPath(relativePath, workingDirectory);
        if (File.Exists(candidate))
        {
            return candidate;
        }
        for (var dir = new DirectoryInfo(baseDirectory); dir is not null; dir = dir.Parent)
        {
            string above = Path.GetFullPath(relativePath, dir.FullName);
            if (File.Exists(above))
            {
                return above;
            }
        }
        throw new FileNotFoundException($"The profile's data '{relativePath}' is neither under {workingDirectory} nor above {baseDirectory}; pass its path with --data.");
    }

    public void Validate()
    {
        if (Modes.Count == 0 || Modes.Any(m => m is not ("nt" or "gce" or "at" or "ssat")))
        {
            throw new ArgumentException($"Modes must be a non-empty subset of nt, gce, at, ssat; got {string.Join(", ", Modes)}.");
        }
        if (AttackImages < 2 || Width < 1 || Epochs < 1 || GceEpochs < 1 || BatchSize < 2)
        {
            throw new ArgumentException("The profile needs at least 2 attacked images, width >= 1, epochs >= 1 and batch >= 2.");
        }
        if (!JudgeEveryAttack && (!PgdEpsilons.Contains(TableEpsilon) || RiskEpsilons.Any(e => !PgdEpsilons.Contains(e))))
        {
            throw new ArgumentException("The Table 1 and Table 2 epsilons must be among the PGD epsilons.");
        }
    }
}
