using FluentAssertions;
using IlgpuOct.Defense.Attacks;
using IlgpuOct.Defense.Density;
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

    [Theory]
    [InlineData("hfc", "full", AdaptiveLoss.CrossEntropy, true)]
    [InlineData("hfc", "full", AdaptiveLoss.CwMargin, false)]
    [InlineData("hfc", "diag", AdaptiveLoss.CrossEntropy, false)]
    [InlineData("uad", "full", AdaptiveLoss.CrossEntropy, false)]
    [InlineData("uad", "diag", AdaptiveLoss.CrossEntropy, true)]
    public void Device_gradient_of_the_adaptive_objective_equals_the_host_path_on_cpu_kernels(string score, string covariance, AdaptiveLoss loss, bool targeted)
    {
        using var acc = new HostAccelerator(AcceleratorKind.CpuKernels);
        using var setup = new TinyAttackSetup(acc, perClass: 6, seed: 17);
        var mixtures = setup.FitMixtures(components: 2, seed: 3, covariance == "full" ? CovarianceType.Full : CovarianceType.Diagonal);
        var densities = StageDensities.FromMixtures(mixtures, m => score == "hfc" ? new GmmNearestComponent(m) : new GmmLogDensity(m));
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
        // The goal's classes (one upload) and the downloaded gradient are the only copies.
        transfers.HostToDevice.Should().Be(1);
        transfers.DeviceToHost.Should().Be(1);
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
        const float lambda = 0.7f;

        densities.Evaluate(pools, widths, densityClasses, gradients: true, out var hostGradients);
        using var gradients = GaussianStageGradients.TryCreate(acc, densities)!;
        gradients.Should().NotBeNull();
        var poolTensors = pools.Select((p, s) => Tensor.FromHost(acc, p, n, widths[s])).ToArray();
        using var classBuffer = acc.Allocate<int>(n);
        acc.CopyFromHost<int>(densityClasses, classBuffer.View);
        try
        {
            var deviceGradients = gradients.Gradient(poolTensors, classBuffer.View, lambda);
            deviceGradients[1].Should().BeNull("stage layer2 has no densities");
            foreach (int s in new[] { 0, 2 })
            {
                float[] expected = hostGradients[s]!.Select(v => lambda * v).ToArray();
                ShouldMatch(deviceGradients[s]!.Download(), expected, 1e-4 * expected.Max(v => Math.Abs(v)), 1e-3, $"{device} {covariance} stage {s} d score / d feature");
            }
        }
        finally
        {
            foreach (var t in poolTensors)
            {
                t.Dispose();
            }
        }

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
