using FluentAssertions;
using IlgpuOct.Kernels.Operators;
using IlgpuOct.Tests.Support;
using Xunit;

namespace IlgpuOct.Tests.Operators;

public sealed class Conv2dNhwcTests
{
    /// <summary>A shape with the borders of x and y and the epilogue to apply.</summary>
    public sealed record Case(Conv2dShape Shape, int InputBorder, int OutputBorder, bool Residual, bool Relu)
    {
        public override string ToString() => $"{Shape} borders {InputBorder}/{OutputBorder}{(Residual ? " +residual" : "")}{(Relu ? " relu" : "")}";
    }

    public static TheoryData<Case> Cases() => new()
    {
        // The ResNet-18 convolutions at small widths: stem 7x7/2 (1 and 3 input channels), 3x3/1, 3x3/2, 1x1/2 downsample.
        new Case(new Conv2dShape(2, 1, 16, 16, 8, 7, 2, 3), 3, 1, false, true),
        new Case(new Conv2dShape(1, 3, 13, 11, 5, 7, 2, 3), 4, 0, false, true),
        new Case(new Conv2dShape(3, 12, 8, 8, 12, 3, 1, 1), 1, 1, true, true),
        new Case(new Conv2dShape(2, 12, 8, 8, 24, 3, 2, 1), 1, 1, false, true),
        new Case(new Conv2dShape(2, 12, 8, 8, 24, 1, 2, 0), 1, 1, false, false),
        // Odd channel counts (a partial 16-channel panel, fewer than 8 channels), OutW 1..9, borders wider than the padding.
        new Case(new Conv2dShape(5, 3, 1, 1, 5, 3, 1, 1), 2, 3, true, false),
        new Case(new Conv2dShape(4, 5, 2, 3, 20, 3, 1, 1), 1, 0, true, true),
        new Case(new Conv2dShape(3, 20, 4, 4, 12, 3, 2, 1), 2, 1, true, true),
        new Case(new Conv2dShape(1, 24, 9, 9, 20, 3, 1, 1), 1, 2, false, true),
        new Case(new Conv2dShape(2, 20, 9, 17, 33, 1, 2, 0), 1, 1, true, false),
        new Case(new Conv2dShape(3, 16, 5, 7, 16, 3, 1, 1), 3, 1, false, false),
        new Case(new Conv2dShape(2, 7, 6, 14, 17, 3, 2, 1), 1, 1, true, true),
        new Case(new Conv2dShape(1, 1, 6, 6, 3, 7, 2, 3), 3, 0, false, false),
        // The widest ResNet-18 reduction: 3x3 over 512 channels (K = 4608) on a 2x2 map.
        new Case(new Conv2dShape(2, 512, 2, 2, 40, 3, 1, 1), 1, 1, true, true),
        // Position-major small maps whose image count is not a multiple of the 6-pixel tile: tiles span two
        // positions and read the union of their windows; stride 2 with an odd input (5x5 -> 3x3).
        new Case(new Conv2dShape(7, 16, 3, 3, 24, 3, 1, 1), 1, 1, true, true),
        new Case(new Conv2dShape(13, 8, 5, 5, 16, 3, 2, 1), 2, 0, false, true),
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Matches_nchw_implicit_gemm(Case c)
    {
        var s = c.Shape;
        var (x, w, bias, residual, expected) = Reference(c, new Random(s.InC * 31 + s.OutC * 7 + s.Kernel + s.N));
        int k = s.ColumnRows;

        float[] y = RunNhwc(c, x, w, bias, residual, Gemm.CpuMaxThreads);
        // Both sums are FP32 chains of K products, each of size <= 1/sqrt(K), in different orders: their
        // difference grows like sqrt(K) ulps of the O(1) result, far inside 1e-6 sqrt(K) + 1e-5 |e|.
        Tolerance.AssertClose(ToNchw(y, s.N, s.OutH, s.OutW, s.OutC, c.OutputBorder), expected,
            atol: 1e-6 * Math.Sqrt(k), rtol: 1e-5, $"y of {c}");
        AssertBorderUntouched(y, s.N, s.OutH, s.OutW, s.OutC, c.OutputBorder);
    }

    public static TheoryData<Case> WinogradCases() => new()
    {
        new Case(new Conv2dShape(2, 256, 4, 4, 256, 3, 1, 1), 1, 1, true, true),
        // Odd sizes: the last tile's window reaches past a border of 1 (read as zeros), its outputs are clipped.
        new Case(new Conv2dShape(3, 256, 7, 5, 136, 3, 1, 1), 1, 0, false, true),
        new Case(new Conv2dShape(1, 256, 2, 2, 512, 3, 1, 1), 2, 1, true, false),
        new Case(new Conv2dShape(2, 512, 1, 3, 40, 3, 1, 1), 1, 2, false, false),
        // More images than one chunk of scratch holds (20 of 14x14 at 256 channels): two chunks.
        new Case(new Conv2dShape(23, 256, 14, 14, 256, 3, 1, 1), 1, 1, true, true),
    };

    [Theory]
    [MemberData(nameof(WinogradCases))]
    public void Winograd_matches_nchw_implicit_gemm(Case c)
    {
        var s = c.Shape;
        Conv2d.WinogradApplies(s).Should().BeTrue();
        var (x, w, bias, residual, expected) = Reference(c, new Random(s.InC * 13 + s.OutC + s.H));
        int k = s.ColumnRows;

        float[] y = RunWinograd(c, x, w, bias, residual);
        // The transforms add up to 4 window values before each product and 4 products after it: a few more
        // roundings per term than the direct sum, still O(sqrt(K)) ulps of the O(1) result.
        Tolerance.AssertClose(ToNchw(y, s.N, s.OutH, s.OutW, s.OutC, c.OutputBorder), expected,
            atol: 1e-5 * Math.Sqrt(k), rtol: 1e-4, $"Winograd y of {c}");
        AssertBorderUntouched(y, s.N, s.OutH, s.OutW, s.OutC, c.OutputBorder);
    }

    [Fact]
    public void Winograd_bits_do_not_depend_on_the_thread_count_and_other_shapes_are_refused()
    {
        var c = new Case(new Conv2dShape(3, 256, 7, 5, 136, 3, 1, 1), 1, 0, false, true);
        var s = c.Shape;
        var random = new Random(9);
        float[] x = RandomValues(random, s.InputLength, 1f);
        float[] w = RandomValues(random, s.WeightLength, 0.05f);
        float[] bias = RandomValues(random, s.OutC, 0.5f);
        int threads = Gemm.CpuMaxThreads;
        try
        {
            Gemm.CpuMaxThreads = 1;
            float[] one = RunWinograd(c, x, w, bias, null);
            Gemm.CpuMaxThreads = 2;
            RunWinograd(c, x, w, bias, null).Should().Equal(one, "2 threads sum every output in the same order as 1");
            Gemm.CpuMaxThreads = 3;
            RunWinograd(c, x, w, bias, null).Should().Equal(one, "3 threads sum every output in the same order as 1");
        }
        finally
        {
            Gemm.CpuMaxThreads = threads;
        }
        Conv2d.WinogradApplies(new Conv2dShape(2, 128, 8, 8, 128, 3, 1, 1)).Should().BeFalse("128 input channels: the direct convolution is as fast or faster");
        Conv2d.WinogradApplies(new Conv2dShape(2, 256, 8, 8, 256, 3, 2, 1)).Should().BeFalse("stride 2");
        var stride2 = new Conv2dShape(2, 256, 8, 8, 256, 3, 2, 1);
        Action pack = () => Conv2d.PackWeightsWinograd(stride2, new float[stride2.WeightLength], new float[16]);
        pack.Should().Throw<ArgumentException>().WithMessage("Conv2d.PackWeightsWinograd*not a Winograd shape*PackWeightsNhwc*");
    }

    [Fact]
    public void Bits_do_not_depend_on_the_thread_count()
    {
        var c = new Case(new Conv2dShape(3, 20, 11, 13, 40, 3, 1, 1), 2, 1, true, true);
        var s = c.Shape;
        var random = new Random(5);
        float[] x = RandomValues(random, s.InputLength, 1f);
        float[] w = RandomValues(random, s.WeightLength, 0.1f);
        float[] bias = RandomValues(random, s.OutC, 0.5f);
        float[] residual = RandomValues(random, s.OutputLength, 1f);
        float[] one = RunNhwc(c, x, w, bias, residual, 1);
        RunNhwc(c, x, w, bias, residual, 2).Should().Equal(one, "2 threads sum every output in the same order as 1");
        RunNhwc(c, x, w, bias, residual, 3).Should().Equal(one, "3 threads sum every output in the same order as 1");
    }

    [Theory]
    [InlineData(7, 3, 3, 1)]   // position-major (9 pixels per image)
    [InlineData(5, 5, 5, 2)]   // position-major, stride 2
    [InlineData(2, 11, 13, 1)] // (n, oh, ow) order, tiles crossing rows
    public void Each_output_is_one_fma_chain_over_the_whole_window_border_taps_included(int n, int h, int w, int stride)
    {
        // Skipping the taps that read the zero border must not change a bit: a skipped FMA would have added +-0
        // to a sum that is never -0, so the kernel equals the full-window chain (kh, kw, ic) done one FMA at a time.
        var s = new Conv2dShape(n, 9, h, w, 20, 3, stride, 1);
        var c = new Case(s, 1, 1, true, true);
        var random = new Random(n * 100 + h);
        float[] x = RandomValues(random, s.InputLength, 1f);
        float[] wts = RandomValues(random, s.WeightLength, 0.2f);
        float[] bias = RandomValues(random, s.OutC, 0.5f);
        float[] residual = RandomValues(random, s.OutputLength, 1f);
        float[] actual = ToNchw(RunNhwc(c, x, wts, bias, residual, 2), s.N, s.OutH, s.OutW, s.OutC, 1);
        for (int b = 0; b < s.N; b++)
        {
            for (int oc = 0; oc < s.OutC; oc++)
            {
                for (int oh = 0; oh < s.OutH; oh++)
                {
                    for (int ow = 0; ow < s.OutW; ow++)
                    {
                        float sum = 0f;
                        for (int kh = 0; kh < 3; kh++)
                        {
                            for (int kw = 0; kw < 3; kw++)
                            {
                                int ih = oh * stride - 1 + kh, iw = ow * stride - 1 + kw;
                                for (int ic = 0; ic < s.InC; ic++)
                                {
                                    bool inside = ih >= 0 && ih < h && iw >= 0 && iw < w;
                                    float xv = inside ? x[((b * s.InC + ic) * h + ih) * w + iw] : 0f;
                                    sum = MathF.FusedMultiplyAdd(xv, wts[((oc * s.InC + ic) * 3 + kh) * 3 + kw], sum);
                                }
                            }
                        }
                        int index = ((b * s.OutC + oc) * s.OutH + oh) * s.OutW + ow;
                        float expected = MathF.Max(sum + bias[oc] + residual[index], 0f);
                        BitConverter.SingleToInt32Bits(actual[index]).Should().Be(BitConverter.SingleToInt32Bits(expected),
                            $"output {index} (image {b}, channel {oc}, row {oh}, column {ow}) of {c}: {actual[index]} vs {expected}");
                    }
                }
            }
        }
    }

    [Fact]
    public void Winograd_runs_where_it_does_fewer_multiply_adds_than_the_direct_convolution()
    {
        // Window taps inside the map, summed over the output pixels: 2x2 map 4 x 4, 4x4 map 10 x 10, 7x7 map 19 x 19.
        Conv2d.NhwcDirectTaps(new Conv2dShape(1, 512, 2, 2, 512, 3, 1, 1)).Should().Be(16);
        Conv2d.NhwcDirectTaps(new Conv2dShape(1, 256, 4, 4, 256, 3, 1, 1)).Should().Be(100);
        Conv2d.NhwcDirectTaps(new Conv2dShape(1, 512, 7, 7, 512, 3, 1, 1)).Should().Be(361);
        Conv2d.NhwcDirectTaps(new Conv2dShape(1, 64, 64, 64, 64, 7, 2, 3)).Should().Be(218L * 218, "stem: 32 rows of 7 taps, less 3 + 1 at the top and 2 at the bottom");
        Conv2d.NhwcDirectTaps(new Conv2dShape(1, 64, 8, 8, 64, 1, 2, 0)).Should().Be(16, "1x1 has no border taps");
        // 64x64 input: layer3 (4x4) and layer4 (2x2) direct; 224x224: layer3 (14x14) Winograd.
        Conv2d.NhwcUsesWinograd(new Conv2dShape(32, 512, 2, 2, 512, 3, 1, 1)).Should().BeFalse("16 products per tile against 16 taps");
        Conv2d.NhwcUsesWinograd(new Conv2dShape(32, 256, 4, 4, 256, 3, 1, 1)).Should().BeFalse("64 products, weighted 1.6, against 100 taps");
        Conv2d.NhwcUsesWinograd(new Conv2dShape(32, 256, 14, 14, 256, 3, 1, 1)).Should().BeTrue("784 products, weighted 1.6, against 1600 taps");
        Conv2d.NhwcUsesWinograd(new Conv2dShape(32, 128, 28, 28, 128, 3, 1, 1)).Should().BeFalse("Winograd does not apply below 256 channels");
        Conv2d.NhwcWeightsLength(new Conv2dShape(32, 256, 14, 14, 256, 3, 1, 1)).Should().Be(Conv2d.WinogradPackedWeightLength(new Conv2dShape(32, 256, 14, 14, 256, 3, 1, 1)));
        Conv2d.NhwcWeightsLength(new Conv2dShape(32, 256, 4, 4, 256, 3, 1, 1)).Should().Be(Conv2d.NhwcPackedWeightLength(new Conv2dShape(32, 256, 4, 4, 256, 3, 1, 1)));
    }

    [Fact]
    public void Relu_keeps_nan_as_the_nchw_epilogue_does()
    {
        var c = new Case(new Conv2dShape(1, 4, 3, 3, 18, 3, 1, 1), 1, 0, false, true);
        var s = c.Shape;
        float[] x = RandomValues(new Random(2), s.InputLength, 1f);
        x[5] = float.NaN;
        float[] w = RandomValues(new Random(3), s.WeightLength, 0.3f);
        float[] bias = new float[s.OutC];
        var expected = new float[s.OutputLength];
        Conv2d.ForwardBiasActivationCpu(s, x, w, bias, null, true, expected);
        float[] actual = ToNchw(RunNhwc(c, x, w, bias, null, 1), s.N, s.OutH, s.OutW, s.OutC, 0);
        expected.Should().Contain(float.NaN);
        for (int i = 0; i < expected.Length; i++)
        {
            float.IsNaN(actual[i]).Should().Be(float.IsNaN(expected[i]), $"element {i} of {c}");
        }
    }

    [Fact]
    public void Bad_lengths_and_borders_throw_naming_the_operator()
    {
        var s = new Conv2dShape(2, 3, 5, 5, 4, 3, 1, 1);
        int packedLength = Conv2d.NhwcPackedWeightLength(s);
        packedLength.Should().Be(16 * 3 * 9);
        var packed = new float[packedLength];
        var x = new float[2 * 7 * 7 * 3];
        var y = new float[2 * 5 * 5 * 4];
        var bias = new float[4];

        Action shortWeights = () => Conv2d.PackWeightsNhwc(s, new float[s.WeightLength - 1], packed);
        shortWeights.Should().Throw<ArgumentException>().WithMessage("Conv2d*w has 107 elements*108*");
        Action shortX = () => Conv2d.ForwardNhwcCpu(s, x.AsSpan(1), 1, packed, bias, default, false, y, 0);
        shortX.Should().Throw<ArgumentException>().WithMessage("Conv2d*x has 293 elements*294*");
        Action narrowBorder = () => Conv2d.ForwardNhwcCpu(s, new float[2 * 5 * 5 * 3], 0, packed, bias, default, false, y, 0);
        narrowBorder.Should().Throw<ArgumentException>().WithMessage("Conv2d.ForwardNhwcCpu*inputBorder 0*padding 1*");
        Action wrongY = () => Conv2d.ForwardNhwcCpu(s, x, 1, packed, bias, default, false, y, 1);
        wrongY.Should().Throw<ArgumentException>().WithMessage("Conv2d*y has 200 elements*392*");
        Action wrongResidual = () => Conv2d.ForwardNhwcCpu(s, x, 1, packed, bias, new float[3], false, y, 0);
        wrongResidual.Should().Throw<ArgumentException>().WithMessage("Conv2d*residual has 3 elements*200*");
        Action wrongBias = () => Conv2d.ForwardNhwcCpu(s, x, 1, packed, new float[3], default, false, y, 0);
        wrongBias.Should().Throw<ArgumentException>().WithMessage("Conv2d*bias has 3 elements*4*");
        Action wrongPacked = () => Conv2d.ForwardNhwcCpu(s, x, 1, new float[s.WeightLength], bias, default, false, y, 0);
        wrongPacked.Should().Throw<ArgumentException>().WithMessage("Conv2d*packedWeights has 108 elements*432*PackWeightsNhwc*");
    }

    /// <summary>Packs w, lays x (and residual) out in NHWC with the case's borders (zero for x, NaN for the ignored residual border), runs with NaN in y's border.</summary>
    private static float[] RunNhwc(Case c, float[] x, float[] w, float[] bias, float[]? residual, int threads)
    {
        var s = c.Shape;
        var packed = new float[Conv2d.NhwcPackedWeightLength(s)];
        Conv2d.PackWeightsNhwc(s, w, packed);
        float[] xNhwc = ToNhwc(x, s.N, s.InC, s.H, s.W, c.InputBorder, 0f);
        float[]? residualNhwc = residual is null ? null : ToNhwc(residual, s.N, s.OutC, s.OutH, s.OutW, c.OutputBorder, float.NaN);
        var y = new float[s.N * (s.OutH + 2 * c.OutputBorder) * (s.OutW + 2 * c.OutputBorder) * s.OutC];
        Array.Fill(y, float.NaN);
        Conv2d.ForwardNhwcCpu(s, xNhwc, c.InputBorder, packed, bias, residualNhwc, c.Relu, y, c.OutputBorder, threads);
        return y;
    }

    /// <summary>Random inputs of a case (weights ~ 1/sqrt(K), so every output is O(1) whatever the reduction length) and the NCHW implicit GEMM's output for them.</summary>
    private static (float[] X, float[] W, float[] Bias, float[]? Residual, float[] Expected) Reference(Case c, Random random)
    {
        var s = c.Shape;
        float[] x = RandomValues(random, s.InputLength, 1f);
        float[] w = RandomValues(random, s.WeightLength, 1f / MathF.Sqrt(s.ColumnRows));
        float[] bias = RandomValues(random, s.OutC, 0.5f);
        float[]? residual = c.Residual ? RandomValues(random, s.OutputLength, 1f) : null;
        var expected = new float[s.OutputLength];
        Conv2d.ForwardBiasActivationCpu(s, x, w, bias, residual, c.Relu, expected);
        return (x, w, bias, residual, expected);
    }

    /// <summary>As <see cref="RunNhwc"/> through the Winograd path (threads: Gemm.CpuMaxThreads).</summary>
    private static float[] RunWinograd(Case c, float[] x, float[] w, float[] bias, float[]? residual)
    {
        var s = c.Shape;
        var packed = new float[Conv2d.WinogradPackedWeightLength(s)];
        Conv2d.PackWeightsWinograd(s, w, packed);
        float[] xNhwc = ToNhwc(x, s.N, s.InC, s.H, s.W, c.InputBorder, 0f);
        float[]? residualNhwc = residual is null ? null : ToNhwc(residual, s.N, s.OutC, s.OutH, s.OutW, c.OutputBorder, float.NaN);
        var y = new float[s.N * (s.OutH + 2 * c.OutputBorder) * (s.OutW + 2 * c.OutputBorder) * s.OutC];
        Array.Fill(y, float.NaN);
        Conv2d.ForwardWinogradNhwcCpu(s, xNhwc, c.InputBorder, packed, bias, residualNhwc, c.Relu, y, c.OutputBorder);
        return y;
    }

    private static float[] RandomValues(Random random, int length, float scale)
    {
        var values = new float[length];
        for (int i = 0; i < length; i++)
        {
            values[i] = (float)(random.NextDouble() * 2 - 1) * scale;
        }
        return values;
    }

    // NCHW into a bordered NHWC array whose border holds borderValue (NhwcLayout's conversions have their own tests).
    private static float[] ToNhwc(float[] nchw, int n, int c, int h, int w, int border, float borderValue)
    {
        var shape = new NhwcShape(n, h, w, c, border);
        var nhwc = new float[shape.Length];
        Array.Fill(nhwc, borderValue);
        NhwcLayout.FromNchwCpu(shape, nchw, nhwc);
        return nhwc;
    }

    private static float[] ToNchw(float[] nhwc, int n, int h, int w, int c, int border)
    {
        var nchw = new float[n * c * h * w];
        NhwcLayout.ToNchwCpu(new NhwcShape(n, h, w, c, border), nhwc, nchw);
        return nchw;
    }

    private static void AssertBorderUntouched(float[] y, int n, int h, int w, int c, int border)
    {
        int hp = h + 2 * border, wp = w + 2 * border;
        for (int b = 0; b < n; b++)
        {
            for (int i = 0; i < hp; i++)
            {
                for (int j = 0; j < wp; j++)
                {
                    bool interior = i >= border && i < h + border && j >= border && j < w + border;
                    for (int ch = 0; ch < c && !interior; ch++)
                    {
                        int index = ((b * hp + i) * wp + j) * c + ch;
                        float.IsNaN(y[index]).Should().BeTrue($"y[{index}] (image {b}, row {i}, column {j}) is in the border, which the convolution must not write");
                    }
                }
            }
        }
    }
}
