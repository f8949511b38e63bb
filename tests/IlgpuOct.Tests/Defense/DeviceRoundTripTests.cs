using FluentAssertions;
using IlgpuOct.Defense.Attacks;
using IlgpuOct.Defense.Detection;
using IlgpuOct.Defense.Training;
using IlgpuOct.Kernels;
using IlgpuOct.Kernels.CudaHost;
using IlgpuOct.Nn.Data;
using IlgpuOct.Nn.Training;
using IlgpuOct.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace IlgpuOct.Tests.Defense;

/// <summary>
/// A training step and an attack step make no host round trip: the accelerators count allocations
/// and copies (<see cref="Accelerator.Transfers"/>), and on cpu-kernels (the device-memory calls a GPU
/// makes) a step after the first neither allocates nor copies to the host; the reads per run do not
/// grow with the number of steps.
/// </summary>
public sealed class DeviceRoundTripTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "ilgpuoct-roundtrip-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private sealed class SyncProgress<T>(Action<T> onReport) : IProgress<T>
    {
        public void Report(T value) => onReport(value);
    }

    [Fact]
    public void Counters_count_allocations_and_copies_each_way()
    {
        using var acc = new HostAccelerator(AcceleratorKind.CpuKernels);
        var before = acc.Transfers.Snapshot();
        using var buffer = acc.Upload<float>([1f, 2f, 3f]);
        acc.Download(buffer.View);
        acc.Download(buffer.View);
        var d = acc.Transfers.Snapshot() - before;
        d.Should().Be(new TransferSnapshot(1, 12, 1, 12, 2, 24));
    }

    /// <summary>
    /// Trains one epoch of <paramref name="batches"/> batches of 4 on cpu-kernels in <paramref name="mode"/>
    /// (nt, at or ssat); returns the counters at each step's report and over the run.
    /// </summary>
    private (List<TransferSnapshot> AtSteps, TransferSnapshot Run) Train(int batches, string mode)
    {
        string data = Path.Combine(_root, $"data-{mode}-{batches}.dat");
        Directory.CreateDirectory(_root);
        DatasetFile.Write(data, SyntheticOct.Generate(16, 16, [("train", 4 * batches), ("test", 4), ("unlabeled", 8)], seed: 5));
        using var acc = new HostAccelerator(AcceleratorKind.CpuKernels);
        var atSteps = new List<TransferSnapshot>();
        var progress = new SyncProgress<TrainingProgress>(p =>
        {
            if (p.Phase == "train")
            {
                atSteps.Add(acc.Transfers.Snapshot());
            }
        });
        var options = new TrainingOptions
        {
            DataPath = data,
            OutputDirectory = Path.Combine(_root, $"run-{mode}-{batches}"),
            Mode = mode,
            ModeFactory = DefenseTrainingModes.Factory(mode, data, null, new AdversarialTrainingOptions(), 3),
            Epochs = 1,
            BatchSize = 4,
            Seed = 3,
            Width = 2,
            MetricsInterval = 1000,
        };
        var before = acc.Transfers.Snapshot();
        var result = Trainer.Run(acc, options, progress);
        result.Epochs.Should().ContainSingle().Which.TrainLoss.Should().BeGreaterThan(0);
        return (atSteps, acc.Transfers.Snapshot() - before);
    }

    // NT uploads images and labels; AT makes its FGSM half on the device; SSAT also uploads its unlabeled images.
    [Theory]
    [InlineData("nt", 2)]
    [InlineData("at", 2)]
    [InlineData("ssat", 3)]
    public void A_training_step_allocates_nothing_after_the_first_uploads_only_its_data_and_reads_nothing_until_the_epoch_ends(string mode, int uploadsPerStep)
    {
        var (steps, run6) = Train(6, mode);
        steps.Should().HaveCount(6);
        for (int s = 1; s < steps.Count; s++)
        {
            var step = steps[s] - steps[s - 1];
            output.WriteLine($"{mode} step {s + 1}: {step}");
            step.Allocations.Should().Be(0, $"{mode} step {s + 1} reuses the first step's buffers (for AT/SSAT: half-batch attack and full-batch training forward)");
            step.HostToDevice.Should().Be(uploadsPerStep, "a step uploads its data, nothing else: pseudo-labels, FGSM and loss stay on the device");
            step.DeviceToHost.Should().Be(s == steps.Count - 1 ? 1 : 0, "the loss and accuracy are read for the epoch's first report and at its last step, not in between");
        }
        var (_, run2) = Train(2, mode);
        output.WriteLine($"{mode} 6 steps: {run6}; 2 steps: {run2}");
        run6.DeviceToHost.Should().Be(run2.DeviceToHost, "the reads per epoch do not depend on its number of steps");
        run6.Allocations.Should().Be(run2.Allocations);
    }

    [Fact]
    public void A_pgd_step_makes_no_copy_or_allocation_and_the_batch_reads_the_same_for_any_number_of_steps()
    {
        TransferSnapshot Attack(int steps, List<TransferSnapshot>? atSteps)
        {
            using var acc = new HostAccelerator(AcceleratorKind.CpuKernels);
            using var setup = new TinyAttackSetup(acc, perClass: 2, seed: 21);
            using var objective = new CrossEntropyObjective(setup.Classifier);
            var progress = atSteps is null ? null : new SyncProgress<AttackProgress>(_ => atSteps.Add(acc.Transfers.Snapshot()));
            var before = acc.Transfers.Snapshot();
            var result = Pgd.Run(objective, setup.Images, setup.Shape, AttackGoal.Untargeted(setup.Labels), new PgdOptions { Epsilon = 0.03f, Steps = steps }, progress);
            result.Linf.Should().OnlyContain(d => d > 0 && d <= 0.03f + 1e-6f);
            return acc.Transfers.Snapshot() - before;
        }
        StepsStayOnTheDevice(Attack, "PGD");
    }

    [Fact]
    public void An_hfc_pgd_step_makes_no_copy_or_allocation_and_the_batch_reads_the_same_for_any_number_of_steps()
    {
        using var fitAccelerator = new HostAccelerator(AcceleratorKind.CpuKernels);
        using var fitSetup = new TinyAttackSetup(fitAccelerator, perClass: 2, seed: 21);
        var mixtures = fitSetup.FitMixtures(components: 2, seed: 0);
        TransferSnapshot Attack(int steps, List<TransferSnapshot>? atSteps)
        {
            using var acc = new HostAccelerator(AcceleratorKind.CpuKernels);
            using var setup = new TinyAttackSetup(acc, perClass: 2, seed: 21);
            var progress = atSteps is null ? null : new SyncProgress<AttackProgress>(_ => atSteps.Add(acc.Transfers.Snapshot()));
            var before = acc.Transfers.Snapshot();
            var result = AdaptiveAttacks.Hfc(setup.Classifier, mixtures, setup.Images, setup.Shape, AttackGoal.Untargeted(setup.Labels),
                new PgdOptions { Epsilon = 0.03f, Steps = steps }, lambda: 0.05, AdaptiveLoss.CwMargin, progress: progress);
            result.Linf.Should().OnlyContain(d => d > 0 && d <= 0.03f + 1e-6f);
            return acc.Transfers.Snapshot() - before;
        }
        StepsStayOnTheDevice(Attack, "HFC-PGD");
    }

    [Theory]
    [InlineData(MahalanobisDetector.DetectorName, "Mahalanobis-PGD")]
    [InlineData(KdeDetector.DetectorName, "KDE-PGD")]
    public void A_density_pgd_step_makes_no_copy_or_allocation_and_the_batch_reads_the_same_for_any_number_of_steps(string detectorName, string name)
    {
        using var fitAccelerator = new HostAccelerator(AcceleratorKind.CpuKernels);
        using var fitSetup = new TinyAttackSetup(fitAccelerator, perClass: 2, seed: 21);
        int d = fitSetup.Classifier.StageWidths[^1];
        FeatureDetector detector = detectorName == MahalanobisDetector.DetectorName ? new MahalanobisDetector() : new KdeDetector();
        detector.Fit(fitSetup.StagePools(fitSetup.Images, fitSetup.Shape)[^1], fitSetup.Count, d, fitSetup.Labels, fitSetup.Classes, fitAccelerator);
        TransferSnapshot Attack(int steps, List<TransferSnapshot>? atSteps)
        {
            using var acc = new HostAccelerator(AcceleratorKind.CpuKernels);
            using var setup = new TinyAttackSetup(acc, perClass: 2, seed: 21);
            var progress = atSteps is null ? null : new SyncProgress<AttackProgress>(_ => atSteps.Add(acc.Transfers.Snapshot()));
            var before = acc.Transfers.Snapshot();
            var result = AdaptiveAttacks.DensityPgd(setup.Classifier, detector.ClassDensities, setup.Images, setup.Shape, AttackGoal.Untargeted(setup.Labels),
                new PgdOptions { Epsilon = 0.03f, Steps = steps }, lambda: 0.05, progress);
            result.Linf.Should().OnlyContain(v => v > 0 && v <= 0.03f + 1e-6f);
            return acc.Transfers.Snapshot() - before;
        }
        StepsStayOnTheDevice(Attack, name);
    }

    /// <summary>Steps 2..10 of a 10-step attack copy and allocate nothing, and 10 and 2 steps copy and allocate the same in all.</summary>
    private void StepsStayOnTheDevice(Func<int, List<TransferSnapshot>?, TransferSnapshot> attack, string name)
    {
        var reports = new List<TransferSnapshot>();
        var ten = attack(10, reports);
        var two = attack(2, null);
        reports.Should().HaveCount(10);
        for (int s = 1; s < reports.Count; s++)
        {
            (reports[s] - reports[s - 1]).Should().Be(default(TransferSnapshot), $"{name} step {s + 1} stays on the device");
        }
        output.WriteLine($"{name}-10: {ten}; {name}-2: {two}");
        ten.DeviceToHost.Should().Be(two.DeviceToHost);
        ten.HostToDevice.Should().Be(two.HostToDevice);
        ten.Allocations.Should().Be(two.Allocations);
    }

    [Fact]
    public void A_cw_iteration_makes_no_copy_or_allocation_and_the_batch_reads_per_round()
    {
        TransferSnapshot Attack(int iterations, List<TransferSnapshot>? atIterations)
        {
            using var acc = new HostAccelerator(AcceleratorKind.CpuKernels);
            using var setup = new TinyAttackSetup(acc, perClass: 2, seed: 21);
            var progress = atIterations is null ? null : new SyncProgress<AttackProgress>(_ => atIterations.Add(acc.Transfers.Snapshot()));
            var options = new CarliniWagnerOptions { BinarySearchSteps = 2, MaxIterations = iterations, AbortEarly = false, InitialC = 1, LearningRate = 0.05 };
            var before = acc.Transfers.Snapshot();
            CarliniWagnerL2.Run(setup.Classifier, setup.Images, setup.Shape, AttackGoal.Untargeted(setup.Labels), options, out var rounds, progress);
            rounds.Should().HaveCount(2);
            return acc.Transfers.Snapshot() - before;
        }
        var reports = new List<TransferSnapshot>();
        var many = Attack(8, reports);
        var few = Attack(2, null);
        reports.Should().HaveCount(16);
        for (int s = 1; s < reports.Count; s++)
        {
            if (s % 8 != 0)
            {
                (reports[s] - reports[s - 1]).Should().Be(default(TransferSnapshot), $"C&W iteration {s % 8 + 1} stays on the device");
            }
        }
        output.WriteLine($"C&W 2x8: {many}; C&W 2x2: {few}");
        many.DeviceToHost.Should().Be(few.DeviceToHost);
        many.HostToDevice.Should().Be(few.HostToDevice);
        many.Allocations.Should().Be(few.Allocations);
    }

    [Fact]
    public void Cw_with_abort_early_reads_only_at_its_checks()
    {
        using var acc = new HostAccelerator(AcceleratorKind.CpuKernels);
        using var setup = new TinyAttackSetup(acc, perClass: 2, seed: 21);
        var options = new CarliniWagnerOptions { BinarySearchSteps = 1, MaxIterations = 20, AbortEarly = true, InitialC = 1, LearningRate = 0.05 };
        var reads = new List<long>();
        var progress = new SyncProgress<AttackProgress>(_ => reads.Add(acc.Transfers.Snapshot().DeviceToHost));
        CarliniWagnerL2.Run(setup.Classifier, setup.Images, setup.Shape, AttackGoal.Untargeted(setup.Labels), options, progress);
        for (int i = 1; i < reads.Count; i++)
        {
            (reads[i] - reads[i - 1]).Should().Be(i % 2 == 0 ? 1 : 0, "iteration i reads the loss total only when i is a multiple of MaxIterations / 10 = 2");
        }
    }

    /// <summary>The C&amp;W attack on cpu-kernels (its bookkeeping kernels) follows the cpu engine (the host loop it replaced).</summary>
    [Fact]
    public void Cw_on_cpu_kernels_follows_the_cpu_engine()
    {
        AttackResult Run(string device, out IReadOnlyList<CarliniWagnerRound> rounds)
        {
            using var acc = DeviceSelection.Open(device, out _);
            using var setup = new TinyAttackSetup(acc, perClass: 2, seed: 21);
            var options = new CarliniWagnerOptions { BinarySearchSteps = 2, MaxIterations = 6, InitialC = 1, LearningRate = 0.05 };
            return CarliniWagnerL2.Run(setup.Classifier, setup.Images, setup.Shape, AttackGoal.Untargeted(setup.Labels), options, out rounds);
        }
        var cpu = Run("cpu", out var cpuRounds);
        var kernels = Run("cpu-kernels", out var kernelRounds);
        cpuRounds.Select(r => r.Succeeded).Should().BeEquivalentTo(kernelRounds.Select(r => r.Succeeded), o => o.WithStrictOrdering());
        Tolerance.AssertClose(kernels.Adversarial, cpu.Adversarial, 1e-4, 1e-4, "C&W images, cpu-kernels vs cpu");
        Tolerance.AssertClose(kernels.L2, cpu.L2, 1e-4, 1e-4, "C&W L2, cpu-kernels vs cpu");
    }

    public static TheoryData<string, string> BookkeepingCases()
    {
        var data = new TheoryData<string, string>();
        foreach (var c in SelfTestCatalog.Discover(typeof(CarliniWagnerBookkeeping).Assembly).Where(c => c.Kernel.StartsWith("CarliniWagnerBookkeeping.", StringComparison.Ordinal)))
        {
            data.Add(c.Kernel, c.Shape);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(BookkeepingCases))]
    public void Cw_bookkeeping_self_test_passes_on_cpu_kernels_and_cuda_host(string kernel, string shape)
    {
        var testCase = SelfTestCatalog.Discover(typeof(CarliniWagnerBookkeeping).Assembly).Single(c => c.Kernel == kernel && c.Shape == shape);
        using var cpuKernels = new HostAccelerator(AcceleratorKind.CpuKernels);
        var onHost = testCase.Run(cpuKernels, 11);
        onHost.Passed.Should().BeTrue($"{kernel} {shape} on cpu-kernels: max error {onHost.MaxAbsError} exceeds {onHost.Tolerance}");
        using var cudaHost = CudaHostAccelerator.Open();
        var compiled = testCase.Run(cudaHost, 11);
        compiled.Passed.Should().BeTrue($"{kernel} {shape} on cuda-host: max error {compiled.MaxAbsError} exceeds {compiled.Tolerance}");
    }

    public static TheoryData<string> SemiSupervisedCases()
    {
        var data = new TheoryData<string>();
        foreach (var c in SelfTestCatalog.Discover(typeof(SemiSupervisedBookkeeping).Assembly).Where(c => c.Kernel.StartsWith("SemiSupervisedBookkeeping.", StringComparison.Ordinal)))
        {
            data.Add(c.Shape);
        }
        return data;
    }

    /// <summary>SSAT's pseudo-labels and joint loss on cpu-kernels and compiled by NVRTC on cuda-host, against the host code the step ran before.</summary>
    [Theory]
    [MemberData(nameof(SemiSupervisedCases))]
    public void Ssat_bookkeeping_self_test_passes_on_cpu_kernels_and_cuda_host(string shape)
    {
        var testCase = SelfTestCatalog.Discover(typeof(SemiSupervisedBookkeeping).Assembly).Single(c => c.Kernel == "SemiSupervisedBookkeeping.Loss" && c.Shape == shape);
        using var cpuKernels = new HostAccelerator(AcceleratorKind.CpuKernels);
        var onHost = testCase.Run(cpuKernels, 11);
        onHost.Passed.Should().BeTrue($"SemiSupervisedBookkeeping {shape} on cpu-kernels: max error {onHost.MaxAbsError} exceeds {onHost.Tolerance}");
        using var cudaHost = CudaHostAccelerator.Open();
        var compiled = testCase.Run(cudaHost, 11);
        compiled.Passed.Should().BeTrue($"SemiSupervisedBookkeeping {shape} on cuda-host: max error {compiled.MaxAbsError} exceeds {compiled.Tolerance}");
    }
}
