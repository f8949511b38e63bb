using IlgpuOct.Defense.Verification;
using FluentAssertions;
using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Operators;
using IlgpuOct.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace IlgpuOct.Tests.Operators;

public sealed class LinearTests
{
    private readonly ITestOutputHelper _output;

    public LinearTests(ITestOutputHelper output) => _output = output;

    [Theory]
    [Trait("Category", "Golden")]
    [InlineData(AcceleratorKind.Cpu)]
    [InlineData(AcceleratorKind.CpuKernels)]
    [InlineData(AcceleratorKind.CudaHost)]
    public void Forward_and_backward_match_golden(AcceleratorKind kind)
    {
        using var acc = TestDevice.OpenAccelerator(kind);
        var result = GoldenOperators.LinearLayer(acc, Golden.Load("ops.safetensors"));
        _output.WriteLine($"{kind} {result}");
        Tolerance.Require([.. result.Comparisons]);
    }

    [Fact]
    public void Backward_matches_central_differences_of_double_forward()
    {
        var s = new LinearShape(3, 5, 4);
        var random = new Random(21);
        double[] x = GradientCheck.Random(random, s.InputLength);
        double[] w = GradientCheck.Random(random, s.WeightLength);
        double[] b = GradientCheck.Random(random, s.Out);
        double[] dy = GradientCheck.Random(random, s.OutputLength);
        var y = new float[s.OutputLength];
        Linear.ForwardCpu(s, GradientCheck.ToFloat(x), GradientCheck.ToFloat(w), GradientCheck.ToFloat(b), y);
        Tolerance.AssertClose(y, GradientCheck.ToFloat(ForwardDouble(s, x, w, b)), 1e-6, 1e-5, "y vs double reference");
        var dx = new float[s.InputLength];
        var dw = new float[s.WeightLength];
        var db = new float[s.Out];
        Linear.BackwardCpu(s, GradientCheck.ToFloat(x), GradientCheck.ToFloat(w), GradientCheck.ToFloat(dy), dx, dw, db);
        Tolerance.AssertClose(GradientCheck.ToDouble(dx), GradientCheck.Numeric(v => GradientCheck.Dot(dy, ForwardDouble(s, v, w, b)), x), 1e-6, 1e-4, "dx vs central differences");
        Tolerance.AssertClose(GradientCheck.ToDouble(dw), GradientCheck.Numeric(v => GradientCheck.Dot(dy, ForwardDouble(s, x, v, b)), w), 1e-6, 1e-4, "dw vs central differences");
        Tolerance.AssertClose(GradientCheck.ToDouble(db), GradientCheck.Numeric(v => GradientCheck.Dot(dy, ForwardDouble(s, x, w, v)), b), 1e-6, 1e-4, "db vs central differences");

        // An empty dx skips the input gradient and leaves the others unchanged.
        var dw2 = new float[s.WeightLength];
        var db2 = new float[s.Out];
        Linear.BackwardCpu(s, GradientCheck.ToFloat(x), GradientCheck.ToFloat(w), GradientCheck.ToFloat(dy), Span<float>.Empty, dw2, db2);
        dw2.Should().Equal(dw);
        db2.Should().Equal(db);
    }

    [Fact]
    public void Kernels_on_cpu_kernels_match_the_cpu_implementation()
    {
        var s = new LinearShape(6, 40, 5);
        var random = new Random(22);
        float[] x = GradientCheck.ToFloat(GradientCheck.Random(random, s.InputLength));
        float[] w = GradientCheck.ToFloat(GradientCheck.Random(random, s.WeightLength));
        float[] b = GradientCheck.ToFloat(GradientCheck.Random(random, s.Out));
        float[] dy = GradientCheck.ToFloat(GradientCheck.Random(random, s.OutputLength));
        float[] y = new float[s.OutputLength], dx = new float[s.InputLength], dw = new float[s.WeightLength], db = new float[s.Out];
        Linear.ForwardCpu(s, x, w, b, y);
        Linear.BackwardCpu(s, x, w, dy, dx, dw, db);
        using var acc = new HostAccelerator(AcceleratorKind.CpuKernels);
        float[] ky = new float[s.OutputLength], kdx = new float[s.InputLength], kdw = new float[s.WeightLength], kdb = new float[s.Out];
        Linear.Forward(acc, s, new View<float>(x), new View<float>(w), new View<float>(b), new View<float>(ky));
        Linear.Backward(acc, s, new View<float>(x), new View<float>(w), new View<float>(dy), new View<float>(kdx), new View<float>(kdw), new View<float>(kdb));
        Tolerance.AssertClose(ky, y, 1e-5, 1e-5, "forward kernel");
        Tolerance.AssertClose(kdx, dx, 1e-5, 1e-5, "backward-data kernel");
        Tolerance.AssertClose(kdw, dw, 1e-5, 1e-5, "backward-weight kernel");
        Tolerance.AssertClose(kdb, db, 1e-6, 1e-6, "bias-gradient kernel");
    }

    [Theory]
    [InlineData(AcceleratorKind.Cpu)]
    [InlineData(AcceleratorKind.CpuKernels)]
    public void Input_only_backward_gives_the_same_dx_without_weight_gradients(AcceleratorKind kind)
    {
        var s = new LinearShape(3, 17, 4);
        var random = new Random(5);
        float[] x = GradientCheck.ToFloat(GradientCheck.Random(random, s.InputLength));
        float[] w = GradientCheck.ToFloat(GradientCheck.Random(random, s.WeightLength));
        float[] dy = GradientCheck.ToFloat(GradientCheck.Random(random, s.OutputLength));
        float[] dx = new float[s.InputLength], dw = new float[s.WeightLength], db = new float[s.Out];
        Linear.BackwardCpu(s, x, w, dy, dx, dw, db);
        using var acc = new HostAccelerator(kind);
        float[] inputOnly = new float[s.InputLength];
        // Empty dw and db views: the weight-gradient GEMM and bias reduction are skipped, not sent to scratch.
        Linear.Backward(acc, s, new View<float>(x), new View<float>(w), new View<float>(dy), new View<float>(inputOnly), default, default);
        Tolerance.AssertClose(inputOnly, dx, 1e-6, 1e-6, "dx without weight gradients");
    }

    internal static double[] ForwardDouble(in LinearShape s, double[] x, double[] w, double[] b)
    {
        var y = new double[s.OutputLength];
        for (int n = 0; n < s.N; n++)
        for (int o = 0; o < s.Out; o++)
        {
            double sum = b[o];
            for (int i = 0; i < s.In; i++)
            {
                sum += x[n * s.In + i] * w[o * s.In + i];
            }
            y[n * s.Out + o] = sum;
        }
        return y;
    }
}
