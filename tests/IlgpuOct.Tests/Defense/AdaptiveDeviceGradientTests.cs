using FluentAssertions;
using IlgpuOct.Defense.Attacks;
using IlgpuOct.Defense.Density;
using IlgpuOct.Defense.Detection;
using IlgpuOct.Kernels;
using IlgpuOct.Kernels.CudaHost;
using IlgpuOct.Nn;
using Xunit;
using Xunit.Abstractions;

namespace IlgpuOct.Tests.Defense;

/// <summary>
/// The adaptive objectives' device path (GaussianStageGradients, AttackKernels.AdaptiveRows) against
/// the host path that the cpu engine runs (IFeatureDensity.ScoreAndGradient in float64).
/// </summary>
public sealed class AdaptiveDeviceGradientTests(ITestOutputHelper output)
{
    /// <summary>Fails at the first index with |a - e| > atol + rtol |e|, naming it.</summary>
    private static void ShouldMatch(float[] actual, float[] expected, double atol, double rtol, string what)
    {
        actual.Should().HaveCount(expected.Length, what);
        for (int i = 0; i < expected.Length; i++)
        {
            double error = Math.Abs(actual[i] - expected[i]);
            if (!(error <= atol + rtol * Math.Abs(expected[i])))
            {
                throw new Xunit.Sdk.XunitException($"{what}: first bad index {i}: device {actual[i]}, host {expected[i]}, |a-e| = {error} > {atol} + {rtol} |e|.");
            }
        }
    }

    /// <summary>
    /// GaussianStageGradients (built by TryCreate, which uploads the densities) against StageDensities.Evaluate
    /// (float64 host) times lambda on every stage with densities; the call copies nothing; stages without are null.
    /// </summary>
    private static void StageGradientsMatchTheHost(Accelerator acc, StageDensities densities, float[][] pools, int[] widths, int[] densityClasses, float lambda, string what)
    {
        int n = densityClasses.Length;
        densities.Evaluate(pools, widths, densityClasses, gradients: true, out var hostGradients);
        using var gradients = GaussianStageGradients.TryCreate(acc, densities);
        gradients.Should().NotBeNull($"{what}: every density here has a device form");
        var poolTensors = pools.Select((p, s) => Tensor.FromHost(acc, p, n, widths[s])).ToArray();
        using var classBuffer = acc.Allocate<int>(n);
        acc.CopyFromHost<int>(densityClasses, classBuffer.View);
        try
        {
            var before = acc.Transfers.Snapshot();
            var deviceGradients = gradients!.Gradient(poolTensors, classBuffer.View, lambda);
            var transfers = acc.Transfers.Snapshot() - before;
            transfers.HostToDevice.Should().Be(0, $"{what}: the densities were uploaded by TryCreate");
            transfers.DeviceToHost.Should().Be(0);
            for (int s = 0; s < pools.Length; s++)
            {
                if (densities.PerStage[s] is null)
                {
                    deviceGradients[s].Should().BeNull($"{what}: stage layer{s + 1} has no densities");
                    continue;
                }
                float[] expected = hostGradients[s]!.Select(v => lambda * v).ToArray();
                ShouldMatch(deviceGradients[s]!.Download(), expected, 1e-4 * expected.Max(v => Math.Abs(v)), 1e-3, $"{what} stage {s} d score / d feature");
            }
        }
        finally
        {
            foreach (var t in poolTensors)
            {
                t.Dispose();
            }
        }
    }

    [Theory]
    [InlineData("hfc", "full", AdaptiveLoss.CrossEntropy, true)]
    [InlineData("hfc", "full", AdaptiveLoss.CwMargin, false)]
    [InlineData("hfc", "diag", AdaptiveLoss.CrossEntropy, false)]
    [InlineData("uad", "full", AdaptiveLoss.CrossEntropy, false)]
    [InlineData("uad", "diag", AdaptiveLoss.CrossEntropy, true)]
    [InlineData(MahalanobisDetector.DetectorName, "shared", AdaptiveLoss.CrossEntropy, false)]
    [InlineData(MahalanobisDetector.DetectorName, "shared", AdaptiveLoss.CwMargin, true)]
    [InlineData(KdeDetector.DetectorName, "-", AdaptiveLoss.CrossEntropy, false)]
    [InlineData(KdeDetector.DetectorName, "-", AdaptiveLoss.CwMargin, true)]
    public void Device_gradient_of_the_adaptive_objective_equals_the_host_path_on_cpu_kernels(string score, string covariance, AdaptiveLoss loss, bool targeted)
    {
        using var acc = new HostAccelerator(AcceleratorKind.CpuKernels);
        using var setup = new TinyAttackSetup(acc, perClass: 6, seed: 17);
        StageDensities densities;
        if (score is "hfc" or "uad")
        {
            var mixtures = setup.FitMixtures(components: 2, seed: 3, covariance == "full" ? CovarianceType.Full : CovarianceType.Diagonal);
            densities = StageDensities.FromMixtures(mixtures, m => score == "hfc" ? new GmmNearestComponent(m) : new GmmLogDensity(m));
        }
        else
        {
            // A detector on the penultimate features, as DensityPgd attacks it.
            int d = setup.Classifier.StageWidths[^1];
            FeatureDetector detector = score == MahalanobisDetector.DetectorName ? new MahalanobisDetector() : new KdeDetector();
            detector.Fit(setup.StagePools(setup.Images, setup.Shape)[^1], setup.Count, d, setup.Labels, setup.Classes, acc);
            var stages = new IReadOnlyList<IFeatureDensity>?[setup.Classifier.StageWidths.Count];
            stages[^1] = detector.ClassDensities;
            densities = new StageDensities(stages);
        }
        var goal = targeted ? AttackGoal.Targeted(setup.Labels, setup.Labels.Select(l => 1 - l).ToArray()) : AttackGoal.Untargeted(setup.Labels);
        using var objective = new FeatureAdaptiveObjective(setup.Classifier, densities, lambda: 0.5, loss);
        using var x = Tensor.FromHost(acc, setup.Images, setup.Shape);

        objective.Evaluate(x, goal, new double[setup.Count], withGradient: true, out var hostGradient);
        float[] expected = hostGradient!.Download();
        var before = acc.Transfers.Snapshot();
        float[] actual = objective.Gradient(x, goal).Download();
        var transfers = acc.Transfers.Snapshot() - before;

        double scale = expected.Max(v => Math.Abs(v));
        output.WriteLine($"{score} {covariance} {loss} targeted={targeted}: max |dJ/dx| {scale:G4}; transfers of the device gradient and its download: {transfers}");
        scale.Should().BeGreaterThan(0);
        ShouldMatch(actual, expected, 1e-4 * scale, 1e-3, $"dJ/dx {score} {covariance} {loss}");
        if (score is MahalanobisDetector.DetectorName or KdeDetector.DetectorName)
        {
            // The density term moves the gradient, so the comparison above checks it too.
            using var classOnly = new FeatureAdaptiveObjective(setup.Classifier, densities, lambda: 0, loss);
            classOnly.Evaluate(x, goal, new double[setup.Count], withGradient: true, out var classGradient);
            float[] withoutDensity = classGradient!.Download();
            double densityPart = expected.Zip(withoutDensity, (a, b) => Math.Abs(a - b)).Max();
            output.WriteLine($"max |dJ/dx - dCE/dx| {densityPart:G4}");
            densityPart.Should().BeGreaterThan(0.1 * scale, "the density term must matter for the comparison to test it");
        }
        // The goal's classes (one upload) and the downloaded gradient are the only copies.
        transfers.HostToDevice.Should().Be(1);
        transfers.DeviceToHost.Should().Be(1);
    }

    public static TheoryData<string> KernelDevices() => new() { "cpu-kernels", "cuda-host" };

    /// <summary>
    /// Mahalanobis (one shared covariance, a one-component Gaussian on the device) and KDE stage gradients,
    /// a stage mixing both kinds of class density, against the host densities in float64.
    /// </summary>
    [Theory]
    [MemberData(nameof(KernelDevices))]
    public void Mahalanobis_and_kernel_density_stage_gradients_equal_the_host_densities(string device)
    {
        using Accelerator acc = device == "cuda-host" ? CudaHostAccelerator.Open() : new HostAccelerator(AcceleratorKind.CpuKernels);
        const int n = 9, classes = 3, d0 = 6, d1 = 11, fitRows = 30;
        var random = new Random(8);
        float[] Rows(int count, int d, double shift) => Enumerable.Range(0, count * d).Select(i => (float)(random.NextDouble() * 2 - 1 + shift * (i % d % 3))).ToArray();
        int[] fitLabels = Enumerable.Range(0, classes * fitRows).Select(i => i / fitRows).ToArray();
        float[] FitRows(int d) => Enumerable.Range(0, classes).SelectMany(c => Rows(fitRows, d, 0.4 * c)).ToArray();
        var mahalanobis = new MahalanobisDetector(relativeRegularization: 1e-2);
        mahalanobis.Fit(FitRows(d0), classes * fitRows, d0, fitLabels, classes, acc);
        var mixedMahalanobis = new MahalanobisDetector();
        mixedMahalanobis.Fit(FitRows(d1), classes * fitRows, d1, fitLabels, classes, acc);
        var kde = new KdeDetector(bandwidth: 0.6);
        kde.Fit(FitRows(d1), classes * fitRows, d1, fitLabels, classes, acc);
        // layer1: Mahalanobis; layer2 unused; layer3: KDE for classes 0 and 2, Mahalanobis for class 1.
        var densities = new StageDensities([mahalanobis.ClassDensities, null, [kde.ClassDensities[0], mixedMahalanobis.ClassDensities[1], kde.ClassDensities[2]]]);
        var widths = new[] { d0, 4, d1 };
        float[][] pools = [Rows(n, d0, 0.3), Rows(n, 4, 0), Rows(n, d1, 0.3)];
        int[] densityClasses = [0, 2, 1, 1, 0, 2, 2, 1, 0];
        StageGradientsMatchTheHost(acc, densities, pools, widths, densityClasses, lambda: 0.7f, device);

        // ClassRows (the kernel density's row weights) against its CPU body.
        int[] rowClasses = [2, 0, 1, 2, 2, 0, 1];
        var expectedRows = new float[rowClasses.Length];
        GaussianStageGradients.ClassRowWeightsCpu(rowClasses, expectedRows, rowClasses.Length, 2, 0.25f);
        expectedRows.Count(v => v == 0.25f).Should().Be(3);
        using var rowClassBuffer = acc.Allocate<int>(rowClasses.Length);
        using var rowWeights = acc.Allocate<float>(rowClasses.Length);
        acc.CopyFromHost<int>(rowClasses, rowClassBuffer.View);
        GaussianStageGradients.ClassRowWeights(acc, rowClassBuffer.View, rowWeights.View, rowClasses.Length, 2, 0.25f);
        ShouldMatch(acc.Download(rowWeights.View), expectedRows, 0, 0, $"ClassRows on {device}");
    }

    public static TheoryData<string, string> Devices() => new() { { "cpu-kernels", "full" }, { "cpu-kernels", "tied" }, { "cpu-kernels", "spherical" }, { "cuda-host", "full" }, { "cuda-host", "diag" } };

    [Theory]
    [MemberData(nameof(Devices))]
    public void Stage_gradients_and_adaptive_rows_equal_the_host_densities(string device, string covariance)
    {
        using Accelerator acc = device == "cuda-host" ? CudaHostAccelerator.Open() : new HostAccelerator(AcceleratorKind.CpuKernels);
        var type = covariance switch { "full" => CovarianceType.Full, "tied" => CovarianceType.Tied, "diag" => CovarianceType.Diagonal, _ => CovarianceType.Spherical };
        const int n = 7, classes = 3, d0 = 5, d1 = 12;
        var random = new Random(4);
        float[] Rows(int count, int d, double shift) => Enumerable.Range(0, count * d).Select(i => (float)(random.NextDouble() * 2 - 1 + shift * (i % d % 3))).ToArray();
        GaussianMixture Fit(int d, int c) => new GaussianMixture(new GaussianMixtureOptions { Components = 3, CovarianceType = type, Seed = c, RegCovar = 1e-3 }).Fit(Rows(40, d, 0.3 * c), 40, d);
        var hfc = Enumerable.Range(0, classes).Select(c => (IFeatureDensity)new GmmNearestComponent(Fit(d0, c))).ToArray();
        var uad = Enumerable.Range(0, classes).Select(c => (IFeatureDensity)new GmmLogDensity(Fit(d1, c))).ToArray();
        var densities = new StageDensities([hfc, null, uad]);
        var widths = new[] { d0, 4, d1 };
        float[][] pools = [Rows(n, d0, 0.2), Rows(n, 4, 0), Rows(n, d1, 0.2)];
        int[] densityClasses = [0, 2, 1, 1, 0, 2, 2];
        StageGradientsMatchTheHost(acc, densities, pools, widths, densityClasses, lambda: 0.7f, $"{device} {covariance}");

        // AdaptiveRows: density classes and the C&W margin's dLogits against its CPU body, with ties and a kappa.
        const int rows = 9, k = 4;
        float[] logits = Enumerable.Range(0, rows * k).Select(i => (float)Math.Round(random.NextDouble() * 4 - 2, 1)).ToArray();
        logits[5] = logits[6]; // a tie
        int[] goalClasses = Enumerable.Range(0, rows).Select(i => i % k).ToArray();
        foreach (bool targeted in new[] { false, true })
        {
            var expectedClasses = new int[rows];
            var expectedD = new float[rows * k];
            AttackKernels.AdaptiveRowsCpu(rows, k, logits, goalClasses, expectedD, expectedClasses, targeted, cwMargin: true, kappa: 0.3f);
            using var z = acc.Allocate<float>(rows * k);
            using var cls = acc.Allocate<int>(rows);
            using var dz = acc.Allocate<float>(rows * k);
            using var dc = acc.Allocate<int>(rows);
            acc.CopyFromHost<float>(logits, z.View);
            acc.CopyFromHost<int>(goalClasses, cls.View);
            AttackKernels.AdaptiveRows(acc, rows, k, z.View, cls.View, dz.View, dc.View, targeted, cwMargin: true, kappa: 0.3f);
            acc.Download(dc.View).Should().Equal(expectedClasses, $"density classes on {device}, targeted={targeted}");
            ShouldMatch(acc.Download(dz.View), expectedD, 0, 0, $"C&W dLogits on {device}, targeted={targeted}");
        }
    }
}
