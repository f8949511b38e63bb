using IlgpuOct.Defense.Verification;
using FluentAssertions;
using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Operators;
using IlgpuOct.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace IlgpuOct.Tests.Operators;

public sealed class Conv2dTests
{
    private readonly ITestOutputHelper _output;

    public Conv2dTests(ITestOutputHelper output) => _output = output;

    public static TheoryData<int, AcceleratorKind> GoldenCases()
    {
        var data = new TheoryData<int, AcceleratorKind>();
        int count = int.Parse(Golden.Load("ops.safetensors").Metadata["conv.count"], System.Globalization.CultureInfo.InvariantCulture);
        for (int i = 0; i < count; i++)
        {
            data.Add(i, AcceleratorKind.Cpu);
            data.Add(i, AcceleratorKind.CpuKernels);
            data.Add(i, AcceleratorKind.CudaHost);
        }
        return data;
    }

    [Theory]
    [Trait("Category", "Golden")]
    [MemberData(nameof(GoldenCases))]
    public void Forward_and_gradients_match_golden(int index, AcceleratorKind kind)
    {
        using var acc = TestDevice.OpenAccelerator(kind);
        var result = GoldenOperators.Conv(acc, Golden.Load("ops.safetensors"), index);
        _output.WriteLine($"{kind} {result}");
        Tolerance.Require([.. result.Comparisons]);
    }

    public static TheoryData<Conv2dShape> SmallShapes() => new()
    {
        new Conv2dShape(2, 2, 5, 6, 3, 3, 1, 1),
        new Conv2dShape(2, 2, 5, 6, 3, 3, 2, 1),
        new Conv2dShape(2, 3, 4, 4, 2, 1, 1, 0),
        new Conv2dShape(2, 3, 5, 5, 2, 1, 2, 0),
        new Conv2dShape(1, 2, 9, 8, 2, 7, 2, 3),
        new Conv2dShape(1, 1, 4, 4, 2, 3, 3, 0),
    };

    [Theory]
    [MemberData(nameof(SmallShapes))]
    public void Backward_matches_central_differences_of_double_forward(Conv2dShape s)
    {
        var random = new Random(1234 + s.Kernel * 10 + s.Stride);
        double[] x = GradientCheck.Random(random, s.InputLength);
        double[] w = GradientCheck.Random(random, s.WeightLength, 0.5);
        double[] dy = GradientCheck.Random(random, s.OutputLength);

        var y = new float[s.OutputLength];
        Conv2d.ForwardCpu(s, GradientCheck.ToFloat(x), GradientCheck.ToFloat(w), y);
        Tolerance.AssertClose(y, GradientCheck.ToFloat(ForwardDouble(s, x, w)), atol: 1e-5, rtol: 1e-5, "y vs double reference");

        var dx = new float[s.InputLength];
        var dw = new float[s.WeightLength];
        Conv2d.BackwardDataCpu(s, GradientCheck.ToFloat(w), GradientCheck.ToFloat(dy), dx);
        Conv2d.BackwardWeightCpu(s, GradientCheck.ToFloat(x), GradientCheck.ToFloat(dy), dw);

        double[] numericDx = GradientCheck.Numeric(v => GradientCheck.Dot(dy, ForwardDouble(s, v, w)), x);
        double[] numericDw = GradientCheck.Numeric(v => GradientCheck.Dot(dy, ForwardDouble(s, x, v)), w);
        Tolerance.AssertClose(GradientCheck.ToDouble(dx), numericDx, atol: 1e-5, rtol: 1e-4, "dx vs central differences");
        Tolerance.AssertClose(GradientCheck.ToDouble(dw), numericDw, atol: 1e-5, rtol: 1e-4, "dw vs central differences");
    }

    [Fact]
    public void Parallel_batch_matches_double_reference_and_repeats_bit_for_bit()
    {
        // Large enough to take the parallel paths (images in parallel, partitioned weight gradient).
        var s = new Conv2dShape(6, 8, 12, 11, 16, 3, 1, 1);
        var random = new Random(77);
        double[] x = GradientCheck.Random(random, s.InputLength);
        double[] w = GradientCheck.Random(random, s.WeightLength, 0.3);
        double[] dy = GradientCheck.Random(random, s.OutputLength);
        float[] xf = GradientCheck.ToFloat(x), wf = GradientCheck.ToFloat(w), dyf = GradientCheck.ToFloat(dy);

        var y = new float[s.OutputLength];
        var dx = new float[s.InputLength];
        var dw = new float[s.WeightLength];
        Conv2d.ForwardCpu(s, xf, wf, y);
        Conv2d.BackwardDataCpu(s, wf, dyf, dx);
        Conv2d.BackwardWeightCpu(s, xf, dyf, dw);
        BackwardDouble(s, x, w, dy, out double[] refDx, out double[] refDw);
        Tolerance.AssertClose(y, GradientCheck.ToFloat(ForwardDouble(s, x, w)), atol: 1e-5, rtol: 1e-4, "y");
        Tolerance.AssertClose(GradientCheck.ToDouble(dx), refDx, atol: 1e-5, rtol: 1e-4, "dx");
        Tolerance.AssertClose(GradientCheck.ToDouble(dw), refDw, atol: 1e-4, rtol: 1e-4, "dw");

        var dwAgain = new float[s.WeightLength];
        Array.Fill(dwAgain, float.NaN); // overwritten, not accumulated
        Conv2d.BackwardWeightCpu(s, xf, dyf, dwAgain);
        dwAgain.Should().Equal(dw, "the weight gradient sums in a fixed partition order");
    }

    public static TheoryData<Conv2dShape> ChunkedShapes() => new()
    {
        new Conv2dShape(20, 8, 2, 2, 16, 3, 1, 1),  // 4 pixels per image: all images in one GEMM
        new Conv2dShape(37, 6, 3, 3, 10, 1, 1, 0),  // pointwise, 9 pixels: chunks of 29 and 8 images
        new Conv2dShape(9, 5, 4, 5, 7, 1, 2, 0),    // strided pointwise, 6 pixels
        new Conv2dShape(70, 8, 3, 3, 16, 3, 2, 1),  // 4 pixels: chunks of 64 and 6 images, parallel over chunks
    };

    [Theory]
    [MemberData(nameof(ChunkedShapes))]
    public void Small_feature_maps_batched_into_one_gemm_match_double_reference(Conv2dShape s)
    {
        var random = new Random(s.N * 5 + s.H);
        double[] x = GradientCheck.Random(random, s.InputLength);
        double[] w = GradientCheck.Random(random, s.WeightLength, 0.5);
        double[] dy = GradientCheck.Random(random, s.OutputLength);
        float[] xf = GradientCheck.ToFloat(x), wf = GradientCheck.ToFloat(w), dyf = GradientCheck.ToFloat(dy);
        var y = new float[s.OutputLength];
        var dx = new float[s.InputLength];
        var dw = new float[s.WeightLength];
        Array.Fill(y, float.NaN);
        Array.Fill(dx, float.NaN);
        Array.Fill(dw, float.NaN);
        Conv2d.ForwardCpu(s, xf, wf, y);
        Conv2d.BackwardDataCpu(s, wf, dyf, dx);
        Conv2d.BackwardWeightCpu(s, xf, dyf, dw);
        BackwardDouble(s, x, w, dy, out double[] refDx, out double[] refDw);
        Tolerance.AssertClose(GradientCheck.ToDouble(y), ForwardDouble(s, x, w), atol: 1e-5, rtol: 1e-4, "y");
        Tolerance.AssertClose(GradientCheck.ToDouble(dx), refDx, atol: 1e-5, rtol: 1e-4, "dx");
        Tolerance.AssertClose(GradientCheck.ToDouble(dw), refDw, atol: 1e-4, rtol: 1e-4, "dw");
    }

    public static TheoryData<Conv2dShape> ImplicitGemmShapes() => new()
    {
        new Conv2dShape(1, 3, 7, 9, 5, 3, 1, 1),     // N = 1, odd sizes: backward data as a convolution
        new Conv2dShape(3, 4, 9, 7, 6, 3, 2, 1),     // stride 2: backward data through columns and col2im
        new Conv2dShape(2, 5, 6, 5, 7, 1, 1, 0),     // pointwise: each plane one long row
        new Conv2dShape(3, 4, 7, 9, 6, 1, 2, 0),     // strided pointwise (a ResNet downsample)
        new Conv2dShape(2, 2, 13, 11, 5, 7, 2, 3),   // 7x7 stride 2 (the stem)
        new Conv2dShape(1, 2, 9, 9, 3, 7, 1, 3),     // 7x7 stride 1: flipped 7x7 weights, padding 3
        new Conv2dShape(2, 3, 8, 8, 4, 3, 1, 0),     // unpadded: the transposed convolution pads by 2
        new Conv2dShape(2, 2, 4, 5, 3, 1, 1, 1),     // padding >= kernel: backward data through columns
        new Conv2dShape(5, 40, 7, 5, 70, 3, 1, 1),   // two K slices, 35 pixels: tiles straddle images, threaded
        new Conv2dShape(12, 6, 6, 6, 9, 3, 1, 1),    // weight gradient depth 432 over two slices
        new Conv2dShape(33, 16, 2, 2, 24, 3, 2, 1),  // 1 pixel per image (layer4-like at tiny inputs)
    };

    [Theory]
    [MemberData(nameof(ImplicitGemmShapes))]
    public void Implicit_gemm_passes_match_double_reference_and_repeat_bit_for_bit(Conv2dShape s)
    {
        var random = new Random(s.N * 131 + s.InC * 17 + s.Kernel * 5 + s.Stride);
        double[] x = GradientCheck.Random(random, s.InputLength);
        double[] w = GradientCheck.Random(random, s.WeightLength, 0.5);
        double[] dy = GradientCheck.Random(random, s.OutputLength);
        float[] xf = GradientCheck.ToFloat(x), wf = GradientCheck.ToFloat(w), dyf = GradientCheck.ToFloat(dy);

        (float[] y, float[] dx, float[] dw) Run()
        {
            float[] y = new float[s.OutputLength], dx = new float[s.InputLength], dw = new float[s.WeightLength];
            Array.Fill(y, float.NaN); // every pass overwrites its output
            Array.Fill(dx, float.NaN);
            Array.Fill(dw, float.NaN);
            Conv2d.ForwardCpu(s, xf, wf, y);
            Conv2d.BackwardDataCpu(s, wf, dyf, dx);
            Conv2d.BackwardWeightCpu(s, xf, dyf, dw);
            return (y, dx, dw);
        }

        var first = Run();
        BackwardDouble(s, x, w, dy, out double[] refDx, out double[] refDw);
        Tolerance.AssertClose(GradientCheck.ToDouble(first.y), ForwardDouble(s, x, w), atol: 1e-5, rtol: 1e-4, $"y of {s}");
        Tolerance.AssertClose(GradientCheck.ToDouble(first.dx), refDx, atol: 1e-5, rtol: 1e-4, $"dx of {s}");
        Tolerance.AssertClose(GradientCheck.ToDouble(first.dw), refDw, atol: 1e-4, rtol: 1e-4, $"dw of {s}");

        var second = Run();
        second.y.Should().Equal(first.y, "the forward pass sums in an order fixed by the shape");
        second.dx.Should().Equal(first.dx, "backward data sums in an order fixed by the shape");
        second.dw.Should().Equal(first.dw, "backward weight sums in an order fixed by the shape");
    }

    [Fact]
    public void Mismatched_lengths_are_rejected_with_the_expected_size()
    {
        var s = new Conv2dShape(1, 2, 4, 4, 3, 3, 1, 1);
        var act = () => Conv2d.ForwardCpu(s, new float[s.InputLength - 1], new float[s.WeightLength], new float[s.OutputLength]);
        act.Should().Throw<ArgumentException>().WithMessage("*x has 31 elements*needs 32*");
        var tooSmall = () => Conv2d.ForwardCpu(new Conv2dShape(1, 1, 2, 2, 1, 7, 1, 0), new float[4], new float[49], new float[1]);
        tooSmall.Should().Throw<ArgumentOutOfRangeException>().WithMessage("*smaller than the kernel*");
    }

    [Fact]
    public void Weight_gradient_is_split_only_when_the_batch_is_long()
    {
        Conv2d.WeightGradientSplits(3, 18, 4 * 256).Should().Be(2);
        Conv2d.WeightGradientSplits(64, 576, 128 * 49).Should().BeGreaterThan(1);
        Conv2d.WeightGradientSplits(512, 4608, 128).Should().Be(1);
    }

    /// <summary>Direct double-precision convolution: the test's reference.</summary>
    internal static double[] ForwardDouble(in Conv2dShape s, double[] x, double[] w)
    {
        var y = new double[s.OutputLength];
        int k = s.Kernel;
        for (int n = 0; n < s.N; n++)
        for (int oc = 0; oc < s.OutC; oc++)
        for (int oh = 0; oh < s.OutH; oh++)
        for (int ow = 0; ow < s.OutW; ow++)
        {
            double sum = 0;
            for (int c = 0; c < s.InC; c++)
            for (int kh = 0; kh < k; kh++)
            for (int kw = 0; kw < k; kw++)
            {
                int ih = oh * s.Stride - s.Padding + kh, iw = ow * s.Stride - s.Padding + kw;
                if (ih >= 0 && ih < s.H && iw >= 0 && iw < s.W)
                {
                    sum += x[((n * s.InC + c) * s.H + ih) * s.W + iw] * w[((oc * s.InC + c) * k + kh) * k + kw];
                }
            }
            y[((n * s.OutC + oc) * s.OutH + oh) * s.OutW + ow] = sum;
        }
        return y;
    }

    internal static void BackwardDouble(in Conv2dShape s, double[] x, double[] w, double[] dy, out double[] dx, out double[] dw)
    {
        dx = new double[s.InputLength];
        dw = new double[s.WeightLength];
        int k = s.Kernel;
        for (int n = 0; n < s.N; n++)
        for (int oc = 0; oc < s.OutC; oc++)
        for (int oh = 0; oh < s.OutH; oh++)
        for (int ow = 0; ow < s.OutW; ow++)
        {
            double g = dy[((n * s.OutC + oc) * s.OutH + oh) * s.OutW + ow];
            for (int c = 0; c < s.InC; c++)
            for (int kh = 0; kh < k; kh++)
            for (int kw = 0; kw < k; kw++)
            {
                int ih = oh * s.Stride - s.Padding + kh, iw = ow * s.Stride - s.Padding + kw;
                if (ih >= 0 && ih < s.H && iw >= 0 && iw < s.W)
                {
                    int xi = ((n * s.InC + c) * s.H + ih) * s.W + iw, wi = ((oc * s.InC + c) * k + kh) * k + kw;
                    dx[xi] += w[wi] * g;
                    dw[wi] += x[xi] * g;
                }
            }
        }
    }

    [Fact]
    public void Bias_residual_relu_epilogue_equals_convolution_then_bias_add_and_relu_bit_for_bit()
    {
        var shapes = new[]
        {
            new Conv2dShape(2, 64, 9, 9, 24, 3, 1, 1),   // depth 576: three K slices, tiles straddling images
            new Conv2dShape(1, 8, 7, 7, 5, 3, 1, 1),     // depth 72: one slice, one image, fewer rows than a tile
            new Conv2dShape(3, 16, 10, 10, 32, 3, 2, 1), // stride 2
            new Conv2dShape(4, 300, 5, 5, 13, 1, 2, 0),  // 1x1 stride 2 (a downsample), two K slices
            new Conv2dShape(2, 16, 6, 6, 24, 1, 1, 0),   // pointwise
            new Conv2dShape(8, 64, 16, 16, 64, 3, 1, 1), // large enough for the threaded SGEMM
        };
        var random = new Random(11);
        float[] Values(int n) => Enumerable.Range(0, n).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        foreach (var s in shapes)
        {
            float[] x = Values(s.InputLength), w = Values(s.WeightLength), bias = Values(s.OutC), residual = Values(s.OutputLength);
            var conv = new float[s.OutputLength];
            Conv2d.ForwardCpu(s, x, w, conv);
            int plane = s.OutH * s.OutW;
            foreach (bool withResidual in new[] { false, true })
            {
                foreach (bool relu in new[] { false, true })
                {
                    var expected = new float[s.OutputLength];
                    for (int i = 0; i < expected.Length; i++)
                    {
                        float v = conv[i] + bias[i / plane % s.OutC];
                        v = withResidual ? v + residual[i] : v;
                        expected[i] = relu ? MathF.Max(v, 0f) : v;
                    }
                    float[] actual = Enumerable.Repeat(float.NaN, s.OutputLength).ToArray();
                    Conv2d.ForwardBiasActivationCpu(s, x, w, bias, withResidual ? residual : default, relu, actual);
                    Tolerance.AssertClose(actual, expected, 0, 0, $"{s} residual={withResidual} relu={relu}");
                    if (relu)
                    {
                        actual.Should().Contain(0f).And.Contain(v => v > 0, "the ReLU must both clip and pass values");
                    }
                }
            }
        }
    }
}
