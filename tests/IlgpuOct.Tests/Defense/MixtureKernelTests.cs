using FluentAssertions;
using IlgpuOct.Defense.Density;
using IlgpuOct.Kernels;
using IlgpuOct.Tests.Support;
using Xunit;

namespace IlgpuOct.Tests.Defense;

/// <summary>The kernel path (cpu-kernels) against the float64 host implementation.</summary>
public sealed class MixtureKernelTests
{
    public static TheoryData<string, string> Cases()
    {
        var data = new TheoryData<string, string>();
        foreach (var c in SelfTestCatalog.Discover(typeof(GaussianMixture).Assembly).Where(c => c.Kernel.StartsWith("MixtureKernels.", StringComparison.Ordinal)))
        {
            data.Add(c.Kernel, c.Shape);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Self_test_passes_on_cpu_kernels(string kernel, string shape)
    {
        var testCase = SelfTestCatalog.Discover(typeof(GaussianMixture).Assembly).Single(c => c.Kernel == kernel && c.Shape == shape);
        using var accelerator = new HostAccelerator(AcceleratorKind.CpuKernels);
        var result = testCase.Run(accelerator, 11);
        result.Passed.Should().BeTrue($"{kernel} {shape}: max error {result.MaxAbsError} exceeds {result.Tolerance}");
    }

    [Fact]
    public void Self_tests_cover_every_kernel()
    {
        var kernels = SelfTestCatalog.Discover(typeof(GaussianMixture).Assembly).Select(c => c.Kernel).Distinct().Where(k => k.StartsWith("MixtureKernels.", StringComparison.Ordinal));
        // RowLogDensity runs CenterRows and the GEMM before it; FinishCovariance runs ComponentSums,
        // WeightedMeans, WeightCenteredRows and the GEMM before it.
        kernels.Should().BeEquivalentTo("MixtureKernels.RowLogDensity", "MixtureKernels.Responsibilities", "MixtureKernels.FinishCovariance");
    }

    [Fact]
    public void Fit_on_cpu_kernels_follows_the_host_fit()
    {
        var x = MixtureTests.Blobs(40, [[0, 0, 0, 0], [3, 1, 0, 2], [0, 4, -1, 1]], 1.0, 21);
        int n = 120;
        int d = 4;
        var options = new GaussianMixtureOptions
        {
            Components = 3,
            Tolerance = 0, // a fixed number of iterations on both sides
            MaxIterations = 6,
            Start = new GaussianMixtureStart([0.3, 0.3, 0.4], [0.5, 0, 0, 0, 2, 1, 0, 1, 0, 3, 0, 1]),
        };
        var host = new GaussianMixture(options).Fit(x, n, d);
        using var accelerator = new HostAccelerator(AcceleratorKind.CpuKernels);
        var kernels = new GaussianMixture(options).Fit(x, n, d, accelerator);
        kernels.NIter.Should().Be(host.NIter);
        kernels.LowerBound.Should().BeApproximately(host.LowerBound, 1e-5 * Math.Abs(host.LowerBound));
        Tolerance.AssertClose(kernels.Weights, host.Weights, 1e-5, 1e-4, "weights");
        Tolerance.AssertClose(kernels.Means, host.Means, 1e-4, 1e-4, "means");
        Tolerance.AssertClose(kernels.Covariances, host.Covariances, 1e-4, 1e-4, "covariances");
    }

    [Fact]
    public void Cpu_engine_is_the_host_implementation()
    {
        var x = MixtureTests.Blobs(30, [[0, 0], [4, 4]], 1.0, 22);
        var options = new GaussianMixtureOptions { Components = 2, Seed = 1 };
        var host = new GaussianMixture(options).Fit(x, 60, 2);
        using var cpu = new HostAccelerator(AcceleratorKind.Cpu);
        var viaCpu = new GaussianMixture(options).Fit(x, 60, 2, cpu);
        viaCpu.LowerBound.Should().Be(host.LowerBound);
        viaCpu.Covariances.ToArray().Should().Equal(host.Covariances.ToArray());
    }

    [Fact]
    public void Kernel_path_rejects_other_covariance_types_with_advice()
    {
        using var accelerator = new HostAccelerator(AcceleratorKind.CpuKernels);
        var act = () => new GaussianMixture(new GaussianMixtureOptions { Components = 2, CovarianceType = CovarianceType.Diagonal })
            .Fit(MixtureTests.Blobs(10, [[0, 0], [4, 4]], 1.0, 23), 20, 2, accelerator);
        act.Should().Throw<ArgumentException>().WithMessage("*cpu device*");
    }
}
