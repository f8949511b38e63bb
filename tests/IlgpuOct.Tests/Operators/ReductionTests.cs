using FluentAssertions;
using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Operators;
using Xunit;

namespace IlgpuOct.Tests.Operators;

/// <summary>Block (shared memory + barriers + atomics) and warp-shuffle sums on cpu-kernels against a double-precision sum.</summary>
public sealed class ReductionTests
{
    // Sizes below a block, not multiples of the block, and beyond MaxBlocks*BlockSize (grid-stride).
    public static TheoryData<int, bool> Cases()
    {
        var data = new TheoryData<int, bool>();
        foreach (int n in new[] { 1, 31, 257, 1000, 70_001 })
        {
            data.Add(n, false);
            data.Add(n, true);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Kernel_sum_matches_double_precision_sum(int n, bool byWarps)
    {
        using var acc = new HostAccelerator(AcceleratorKind.CpuKernels);
        var r = new Random(n);
        var x = new float[n];
        double exact = 0;
        for (int i = 0; i < n; i++)
        {
            x[i] = (float)(r.NextDouble() * 2 - 1);
            exact += x[i];
        }
        using var dx = acc.Upload<float>(x);
        using var result = acc.Allocate<float>(1);
        acc.CopyFromHost<float>(new[] { 12345f }, result.View); // stale value must be overwritten
        if (byWarps)
        {
            Reduction.SumByWarps(acc, dx, result);
        }
        else
        {
            Reduction.Sum(acc, dx, result);
        }
        float got = acc.Download(result.View)[0];
        Math.Abs(got - exact).Should().BeLessThanOrEqualTo(1e-5 + 1e-5 * Math.Sqrt(n), $"n={n}, warps={byWarps}: got {got}, exact {exact}");
    }

    [Fact]
    public void Cpu_sum_matches_double_sum_for_parallel_sizes()
    {
        int n = 1 << 20;
        var r = new Random(3);
        var x = new float[n];
        double exact = 0;
        for (int i = 0; i < n; i++)
        {
            x[i] = (float)r.NextDouble();
            exact += x[i];
        }
        Reduction.SumCpu(x).Should().BeApproximately(exact, 1e-6 * exact);
        using var acc = new HostAccelerator(AcceleratorKind.Cpu);
        using var dx = acc.Upload<float>(x);
        using var result = acc.Allocate<float>(1);
        Reduction.Sum(acc, dx, result);
        ((double)acc.Download(result.View)[0]).Should().BeApproximately(exact, 1e-6 * exact);
    }

    [Fact]
    public void Result_view_must_hold_one_element()
    {
        using var acc = new HostAccelerator(AcceleratorKind.CpuKernels);
        using var x = acc.Allocate<float>(10);
        using var result = acc.Allocate<float>(2);
        var act = () => Reduction.Sum(acc, x, result);
        act.Should().Throw<ArgumentException>().WithMessage("*2 elements*exactly 1*");
    }

    [Fact]
    public void Self_tests_pass_on_cpu_kernels()
    {
        using var acc = new HostAccelerator(AcceleratorKind.CpuKernels);
        var cases = SelfTestCatalog.Discover(typeof(Reduction).Assembly).Where(c => c.Kernel.StartsWith("Reduction.", StringComparison.Ordinal)).ToList();
        cases.Should().HaveCount(6);
        foreach (var c in cases)
        {
            var result = c.Run(acc, 5);
            result.Passed.Should().BeTrue($"{c.Kernel} {c.Shape}: error {result.MaxAbsError} > {result.Tolerance}");
        }
    }
}
