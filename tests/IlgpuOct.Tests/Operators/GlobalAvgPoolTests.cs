using IlgpuOct.Defense.Verification;
using FluentAssertions;
using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Operators;
using IlgpuOct.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace IlgpuOct.Tests.Operators;

public sealed class GlobalAvgPoolTests
{
    private readonly ITestOutputHelper _output;

    public GlobalAvgPoolTests(ITestOutputHelper output) => _output = output;

    [Theory]
    [Trait("Category", "Golden")]
    [InlineData(AcceleratorKind.Cpu)]
    [InlineData(AcceleratorKind.CpuKernels)]
    [InlineData(AcceleratorKind.CudaHost)]
    public void Forward_and_backward_match_golden(AcceleratorKind kind)
    {
        using var acc = TestDevice.OpenAccelerator(kind);
        var result = GoldenOperators.AvgPool(acc, Golden.Load("ops.safetensors"));
        _output.WriteLine($"{kind} {result}");
        Tolerance.Require([.. result.Comparisons]);
    }

    [Fact]
    public void Backward_matches_central_differences_of_double_forward()
    {
        var s = new GlobalAvgPoolShape(2, 3, 3, 5);
        var random = new Random(11);
        double[] x = GradientCheck.Random(random, s.InputLength);
        double[] dy = GradientCheck.Random(random, s.OutputLength);
        var y = new float[s.OutputLength];
        var dx = new float[s.InputLength];
        GlobalAvgPool.ForwardCpu(s, GradientCheck.ToFloat(x), y);
        Tolerance.AssertClose(y, GradientCheck.ToFloat(ForwardDouble(s, x)), 1e-7, 1e-6, "y vs double reference");
        GlobalAvgPool.BackwardCpu(s, GradientCheck.ToFloat(dy), dx);
        Tolerance.AssertClose(GradientCheck.ToDouble(dx), GradientCheck.Numeric(v => GradientCheck.Dot(dy, ForwardDouble(s, v)), x), 1e-7, 1e-5, "dx vs central differences");
    }

    [Fact]
    public void Kernels_on_cpu_kernels_match_the_cpu_implementation()
    {
        var s = new GlobalAvgPoolShape(3, 7, 5, 6);
        var random = new Random(12);
        float[] x = GradientCheck.ToFloat(GradientCheck.Random(random, s.InputLength));
        float[] dy = GradientCheck.ToFloat(GradientCheck.Random(random, s.OutputLength));
        var y = new float[s.OutputLength];
        var dx = new float[s.InputLength];
        GlobalAvgPool.ForwardCpu(s, x, y);
        GlobalAvgPool.BackwardCpu(s, dy, dx);
        using var acc = new HostAccelerator(AcceleratorKind.CpuKernels);
        var ky = new float[s.OutputLength];
        var kdx = new float[s.InputLength];
        GlobalAvgPool.Forward(acc, s, new View<float>(x), new View<float>(ky));
        GlobalAvgPool.Backward(acc, s, new View<float>(dy), new View<float>(kdx));
        Tolerance.AssertClose(ky, y, 1e-7, 1e-6, "forward kernel");
        Tolerance.AssertClose(kdx, dx, 0, 1e-7, "backward kernel");
    }

    [Fact]
    public void Backward_accumulate_kernel_equals_the_cpu_implementation()
    {
        var random = new Random(6);
        var s = new GlobalAvgPoolShape(1, 37, 7, 7);
        var dPool = Enumerable.Range(0, s.OutputLength).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray();
        var d = Enumerable.Range(0, s.InputLength).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray();
        var expected = (float[])d.Clone();
        GlobalAvgPool.BackwardAccumulateCpu(s, dPool, expected);
        expected[s.HW + 3].Should().BeApproximately(d[s.HW + 3] + dPool[1] / s.HW, 1e-7f);

        using var acc = new HostAccelerator(AcceleratorKind.CpuKernels);
        using var pb = acc.Upload<float>(dPool);
        using var db = acc.Upload<float>(d);
        GlobalAvgPool.BackwardAccumulate(acc, s, pb.View, db.View);
        Tolerance.AssertClose(acc.Download(db.View), expected, 0, 0, "pooled gradient accumulated");
    }

    internal static double[] ForwardDouble(in GlobalAvgPoolShape s, double[] x)
    {
        var y = new double[s.OutputLength];
        for (int p = 0; p < s.OutputLength; p++)
        {
            for (int i = 0; i < s.HW; i++)
            {
                y[p] += x[p * s.HW + i];
            }
            y[p] /= s.HW;
        }
        return y;
    }
}
