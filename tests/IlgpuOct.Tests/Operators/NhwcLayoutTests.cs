using FluentAssertions;
using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Operators;
using Xunit;

namespace IlgpuOct.Tests.Operators;

/// <summary>The bordered NHWC layout of the cpu engine's inference path: conversions, max pool and global average pool against the NCHW operators.</summary>
public sealed class NhwcLayoutTests
{
    [Theory]
    [InlineData(1, 1, 5, 7, 3)]
    [InlineData(2, 3, 4, 4, 0)]
    [InlineData(3, 12, 9, 11, 1)]
    [InlineData(2, 17, 3, 10, 2)]
    [InlineData(1, 64, 8, 8, 1)]
    [InlineData(3, 1, 4, 6, 0)] // one channel: plain row copies
    [InlineData(2, 5, 1, 1, 1)] // one pixel
    public void Conversions_copy_every_value_and_leave_the_border_alone(int n, int c, int h, int w, int border)
    {
        var s = new NhwcShape(n, h, w, c, border);
        float[] nchw = Random(n * c * h * w, n + c + h);
        float[] nhwc = new float[s.Length];
        Array.Fill(nhwc, float.NaN); // the border must stay as it was
        NhwcLayout.FromNchwCpu(s, nchw, nhwc);
        for (int i = 0; i < n; i++)
        {
            for (int y = -border; y < h + border; y++)
            {
                for (int x = -border; x < w + border; x++)
                {
                    for (int ch = 0; ch < c; ch++)
                    {
                        float actual = nhwc[s.Offset(i, y, x) + ch];
                        bool interior = y >= 0 && y < h && x >= 0 && x < w;
                        if (interior)
                        {
                            actual.Should().Be(nchw[((i * c + ch) * h + y) * w + x], $"(n {i}, h {y}, w {x}, c {ch})");
                        }
                        else
                        {
                            float.IsNaN(actual).Should().BeTrue($"border (n {i}, h {y}, w {x}, c {ch}) was written");
                        }
                    }
                }
            }
        }
        float[] back = new float[nchw.Length];
        NhwcLayout.ToNchwCpu(s, nhwc, back);
        back.Should().Equal(nchw);
    }

    [Theory]
    [InlineData(2, 3, 7, 6, 3, 2, 1, 1)]
    [InlineData(1, 16, 8, 8, 3, 2, 1, 2)]
    [InlineData(2, 9, 5, 5, 2, 2, 0, 0)]
    [InlineData(1, 20, 6, 7, 3, 1, 1, 1)]
    public void Max_pool_equals_the_nchw_operator_bit_for_bit(int n, int c, int h, int w, int kernel, int stride, int padding, int border)
    {
        var s = new MaxPool2dShape(n, c, h, w, kernel, stride, padding);
        float[] x = Random(s.InputLength, c * 7 + h);
        x[3] = float.NaN; // NaN wins, as in the NCHW operator
        x[5] = x[6]; // a tie
        var expected = new float[s.OutputLength];
        MaxPool2d.ForwardCpu(s, x, expected, new int[s.OutputLength]);

        var xs = new NhwcShape(n, h, w, c, border);
        var ys = new NhwcShape(n, s.OutH, s.OutW, c, border + 1);
        float[] xNhwc = new float[xs.Length];
        Array.Fill(xNhwc, 1e30f); // the border must never be read: a huge value would win every window
        NhwcLayout.FromNchwCpu(xs, x, xNhwc);
        float[] yNhwc = new float[ys.Length];
        Array.Fill(yNhwc, -7f);
        MaxPool2d.ForwardNhwcCpu(s, xNhwc, border, yNhwc, ys.Border);
        var actual = new float[s.OutputLength];
        NhwcLayout.ToNchwCpu(ys, yNhwc, actual);
        actual.Should().Equal(expected, "the NHWC max pool takes the same values (float.Equals: a NaN equals a NaN)");
        yNhwc[0].Should().Be(-7f, "the output's border is not written");
    }

    [Theory]
    [InlineData(2, 3, 5, 4, 1)]
    [InlineData(3, 24, 2, 2, 1)]
    [InlineData(1, 9, 7, 7, 0)]
    public void Global_average_pool_equals_the_nchw_operator_bit_for_bit(int n, int c, int h, int w, int border)
    {
        var s = new GlobalAvgPoolShape(n, c, h, w);
        float[] x = Random(s.InputLength, n * c + w);
        var expected = new float[s.OutputLength];
        GlobalAvgPool.ForwardCpu(s, x, expected);
        var xs = new NhwcShape(n, h, w, c, border);
        float[] xNhwc = new float[xs.Length];
        Array.Fill(xNhwc, 1e30f);
        NhwcLayout.FromNchwCpu(xs, x, xNhwc);
        var actual = new float[s.OutputLength];
        GlobalAvgPool.ForwardNhwcCpu(s, xNhwc, border, actual);
        actual.Should().Equal(expected);
    }

    [Fact]
    public void Wrong_lengths_and_other_engines_get_clear_errors()
    {
        var s = new NhwcShape(2, 3, 3, 4, 1);
        var wrong = () => NhwcLayout.FromNchwCpu(s, new float[2 * 4 * 9], new float[s.Length - 1]);
        wrong.Should().Throw<ArgumentException>().WithMessage("NhwcLayout: y has*");
        using var acc = DeviceSelection.Open("cpu-kernels", out _);
        using var x = acc.Allocate<float>(2 * 4 * 9);
        using var y = acc.Allocate<float>(s.Length);
        var kernels = () => NhwcLayout.FromNchw(acc, s, x.View, y.View);
        kernels.Should().Throw<NotSupportedException>().WithMessage("NhwcLayout.FromNchw is an operator of the cpu engine only*");
    }

    private static float[] Random(int count, int seed)
    {
        var random = new Random(seed);
        var values = new float[count];
        for (int i = 0; i < count; i++)
        {
            values[i] = (float)(random.NextDouble() * 4 - 2);
        }
        return values;
    }
}
