using IlgpuOct.Defense.Verification;
using FluentAssertions;
using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Operators;
using IlgpuOct.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace IlgpuOct.Tests.Operators;

public sealed class MaxPool2dTests
{
    private readonly ITestOutputHelper _output;

    public MaxPool2dTests(ITestOutputHelper output) => _output = output;

    [Theory]
    [Trait("Category", "Golden")]
    [InlineData(AcceleratorKind.Cpu)]
    [InlineData(AcceleratorKind.CpuKernels)]
    [InlineData(AcceleratorKind.CudaHost)]
    public void Forward_and_backward_match_golden(AcceleratorKind kind)
    {
        using var acc = TestDevice.OpenAccelerator(kind);
        var result = GoldenOperators.MaxPool(acc, Golden.Load("ops.safetensors"));
        _output.WriteLine($"{kind} {result}");
        Tolerance.Require([.. result.Comparisons]);
    }

    [Theory]
    [InlineData(2, 2, 7, 6, 3, 2, 1)]
    [InlineData(1, 3, 5, 5, 2, 2, 0)]
    [InlineData(1, 1, 6, 7, 3, 1, 1)]
    public void Backward_matches_central_differences_of_double_forward(int n, int c, int h, int w, int kernel, int stride, int padding)
    {
        var s = new MaxPool2dShape(n, c, h, w, kernel, stride, padding);
        var random = new Random(n * 100 + h);
        double[] x = GradientCheck.Random(random, s.InputLength, 3.0);
        double[] dy = GradientCheck.Random(random, s.OutputLength);
        var y = new float[s.OutputLength];
        var indices = new int[s.OutputLength];
        var dx = new float[s.InputLength];
        MaxPool2d.ForwardCpu(s, GradientCheck.ToFloat(x), y, indices);
        Tolerance.AssertClose(y, GradientCheck.ToFloat(ForwardDouble(s, x)), 0, 0, "y vs double reference");
        MaxPool2d.BackwardCpu(s, GradientCheck.ToFloat(dy), indices, dx);
        Tolerance.AssertClose(GradientCheck.ToDouble(dx), GradientCheck.Numeric(v => GradientCheck.Dot(dy, ForwardDouble(s, v)), x), 1e-6, 1e-5, "dx vs central differences");
    }

    [Fact]
    public void Padding_never_wins_and_the_first_maximum_takes_ties()
    {
        // All values negative: a padded zero would win if padding took part.
        var s = new MaxPool2dShape(1, 1, 3, 3);
        float[] x = [-5, -1, -1, -7, -8, -9, -2, -3, -4];
        var y = new float[s.OutputLength];
        var indices = new int[s.OutputLength];
        MaxPool2d.ForwardCpu(s, x, y, indices);
        y.Should().Equal(-1f, -1f, -2f, -3f);
        // Window (0,0) covers rows 0-1, cols 0-1: max -1 at index 1. Window (0,1) covers cols 1-2: -1 at 1 and 2, first wins.
        indices.Should().Equal(1, 1, 6, 7);
        var dx = new float[s.InputLength];
        MaxPool2d.BackwardCpu(s, [1f, 10f, 100f, 1000f], indices, dx);
        dx.Should().Equal(0f, 11f, 0f, 0f, 0f, 0f, 100f, 1000f, 0f);
    }

    [Fact]
    public void Parallel_planes_match_double_reference()
    {
        var s = new MaxPool2dShape(4, 16, 23, 24);
        var random = new Random(3);
        double[] x = GradientCheck.Random(random, s.InputLength);
        var y = new float[s.OutputLength];
        MaxPool2d.ForwardCpu(s, GradientCheck.ToFloat(x), y, new int[s.OutputLength]);
        Tolerance.AssertClose(y, GradientCheck.ToFloat(ForwardDouble(s, x)), 0, 0, "y");
    }

    [Theory]
    [InlineData(2, 3, 9, 10, 3, 2, 1)]
    [InlineData(1, 2, 8, 8, 2, 2, 0)]
    [InlineData(2, 2, 6, 7, 3, 1, 1)]
    [InlineData(2, 3, 20, 37, 3, 2, 1)] // wide enough for the cpu engine's 8-wide 3x3 stride-2 path
    public void Kernels_on_cpu_kernels_match_the_cpu_implementation(int n, int c, int h, int w, int kernel, int stride, int padding)
    {
        var s = new MaxPool2dShape(n, c, h, w, kernel, stride, padding);
        var random = new Random(h * 13 + w);
        float[] x = GradientCheck.ToFloat(GradientCheck.Random(random, s.InputLength));
        x[3] = x[4]; // a tie inside a window
        x[Math.Min(20, x.Length - 1)] = float.NaN; // NaN wins its windows
        float[] dy = GradientCheck.ToFloat(GradientCheck.Random(random, s.OutputLength));
        var y = new float[s.OutputLength];
        var indices = new int[s.OutputLength];
        var dx = new float[s.InputLength];
        MaxPool2d.ForwardCpu(s, x, y, indices);
        MaxPool2d.BackwardCpu(s, dy, indices, dx);

        using var acc = new HostAccelerator(AcceleratorKind.CpuKernels);
        var ky = new float[s.OutputLength];
        var kindices = new int[s.OutputLength];
        var kdx = new float[s.InputLength];
        MaxPool2d.Forward(acc, s, new View<float>(x), new View<float>(ky), new View<int>(kindices));
        MaxPool2d.Backward(acc, s, new View<float>(dy), new View<int>(kindices), new View<float>(kdx));
        kindices.Should().Equal(indices);
        // A selection, so exact; float.Equals treats the NaN maxima as equal (AssertClose would not).
        ky.Should().Equal(y, "the forward kernel selects the same values");
        y.Should().Contain(float.NaN, "the NaN input must win its windows");
        Tolerance.AssertClose(kdx, dx, 1e-7, 1e-6, "backward kernel (gather)");
    }

    [Theory]
    [InlineData(2, 3, 21, 40)]
    [InlineData(1, 2, 34, 35)]
    [InlineData(1, 1, 18, 18)]
    public void Eight_wide_3x3_stride_2_path_keeps_the_window_rules(int n, int c, int h, int w)
    {
        // Values on a coarse grid (many ties), with NaN, infinities and signed zeros: the SIMD blocks and the
        // scalar edge windows must pick the same argmax as the rules, one window at a time.
        var s = new MaxPool2dShape(n, c, h, w);
        var random = new Random(h * 31 + w);
        float[] special = [float.NaN, float.NegativeInfinity, float.PositiveInfinity, -0f, 0f];
        var x = new float[s.InputLength];
        for (int i = 0; i < x.Length; i++)
        {
            x[i] = random.Next(12) == 0 ? special[random.Next(special.Length)] : random.Next(-3, 4) * 0.5f;
        }
        var y = new float[s.OutputLength];
        var indices = new int[s.OutputLength];
        MaxPool2d.ForwardCpu(s, x, y, indices);

        for (int p = 0; p < n * c; p++)
        for (int oh = 0; oh < s.OutH; oh++)
        for (int ow = 0; ow < s.OutW; ow++)
        {
            // The rules: rows then columns, a larger value or the first NaN takes the window, nothing replaces a NaN.
            int best = -1;
            for (int ih = Math.Max(2 * oh - 1, 0); ih < Math.Min(2 * oh + 2, h); ih++)
            for (int iw = Math.Max(2 * ow - 1, 0); iw < Math.Min(2 * ow + 2, w); iw++)
            {
                float v = x[p * h * w + ih * w + iw];
                if (best < 0 || (!float.IsNaN(x[p * h * w + best]) && (float.IsNaN(v) || v > x[p * h * w + best])))
                {
                    best = ih * w + iw;
                }
            }
            int o = (p * s.OutH + oh) * s.OutW + ow;
            indices[o].Should().Be(best, $"argmax of plane {p}, window ({oh}, {ow})");
            BitConverter.SingleToInt32Bits(y[o]).Should().Be(BitConverter.SingleToInt32Bits(x[p * h * w + best]), $"y of plane {p}, window ({oh}, {ow})");
        }
    }

    internal static double[] ForwardDouble(in MaxPool2dShape s, double[] x)
    {
        var y = new double[s.OutputLength];
        for (int p = 0; p < s.N * s.C; p++)
        for (int oh = 0; oh < s.OutH; oh++)
        for (int ow = 0; ow < s.OutW; ow++)
        {
            double max = double.NegativeInfinity;
            for (int kh = 0; kh < s.Kernel; kh++)
            for (int kw = 0; kw < s.Kernel; kw++)
            {
                int ih = oh * s.Stride - s.Padding + kh, iw = ow * s.Stride - s.Padding + kw;
                if (ih >= 0 && ih < s.H && iw >= 0 && iw < s.W)
                {
                    max = Math.Max(max, x[(p * s.H + ih) * s.W + iw]);
                }
            }
            y[(p * s.OutH + oh) * s.OutW + ow] = max;
        }
        return y;
    }
}
