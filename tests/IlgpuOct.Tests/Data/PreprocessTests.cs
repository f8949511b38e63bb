using FluentAssertions;
using IlgpuOct.Nn.Data;
using Xunit;

namespace IlgpuOct.Tests.Data;

public sealed class PreprocessTests
{
    [Theory]
    [InlineData(ResizeFilter.Area)]
    [InlineData(ResizeFilter.Bilinear)]
    public void Constant_image_stays_constant_at_any_size(ResizeFilter filter)
    {
        var source = Enumerable.Repeat((byte)137, 37 * 23).ToArray();
        foreach (var (w, h) in new[] { (10, 7), (37, 23), (80, 51), (3, 2) })
        {
            var target = new byte[w * h];
            ImageResize.Resize(source, 37, 23, target, w, h, filter);
            target.Should().AllBeEquivalentTo((byte)137, $"{filter} {w}x{h}");
        }
    }

    [Fact]
    public void Area_halving_averages_each_two_by_two_block()
    {
        var source = new byte[8 * 6];
        new Random(1).NextBytes(source);
        var target = new byte[4 * 3];
        ImageResize.Resize(source, 8, 6, target, 4, 3, ResizeFilter.Area);
        for (int y = 0; y < 3; y++)
        {
            for (int x = 0; x < 4; x++)
            {
                double mean = (source[2 * y * 8 + 2 * x] + source[2 * y * 8 + 2 * x + 1] + source[(2 * y + 1) * 8 + 2 * x] + source[(2 * y + 1) * 8 + 2 * x + 1]) / 4.0;
                ((double)target[y * 4 + x]).Should().BeApproximately(mean, 0.5 + 1e-4, $"pixel ({y}, {x})");
            }
        }
    }

    [Fact]
    public void Area_three_to_two_weights_by_covered_area()
    {
        // Output pixel 0 covers source [0, 1.5): 1 * a + 0.5 * b over 1.5.
        byte[] source = [30, 90, 150];
        var target = new byte[2];
        ImageResize.Resize(source, 3, 1, target, 2, 1, ResizeFilter.Area);
        target.Should().Equal((byte)50, (byte)130);
    }

    [Fact]
    public void Bilinear_enlarging_interpolates_between_pixel_centres()
    {
        byte[] source = [0, 100];
        var target = new byte[4];
        ImageResize.Resize(source, 2, 1, target, 4, 1, ResizeFilter.Bilinear);
        target.Should().Equal((byte)0, (byte)25, (byte)75, (byte)100);
    }

    [Fact]
    public void Bilinear_shrinking_is_antialiased()
    {
        // A one-pixel checkerboard shrunk 4x must come out near mid-gray, not aliased to black or white.
        var source = new byte[16 * 16];
        for (int i = 0; i < source.Length; i++)
        {
            source[i] = (byte)((i / 16 + i % 16) % 2 == 0 ? 0 : 255);
        }
        var target = new byte[4 * 4];
        ImageResize.Resize(source, 16, 16, target, 4, 4, ResizeFilter.Bilinear);
        target.Should().OnlyContain(v => v > 100 && v < 155);
    }

    [Fact]
    public void Center_crop_takes_the_middle()
    {
        var source = Enumerable.Range(0, 25).Select(i => (byte)i).ToArray(); // 5x5
        var target = new byte[9];
        ImageResize.CenterCrop(source, 5, 5, target, 3, 3);
        target.Should().Equal(6, 7, 8, 11, 12, 13, 16, 17, 18);
        var tooBig = () => ImageResize.CenterCrop(source, 5, 5, new byte[36], 6, 6);
        tooBig.Should().Throw<ArgumentException>().WithMessage("*6x6 out of 5x5*");
    }

    [Fact]
    public void Shorter_side_resize_then_center_crop_keeps_the_middle_of_a_wide_image()
    {
        // 8 wide x 4 high, columns in pairs of one value: shorter side 4 -> 2 makes it 4x2 (pair means),
        // the 2x2 center crop then keeps pairs 1 and 2.
        byte[] pairs = [10, 60, 110, 160];
        var source = new byte[8 * 4];
        for (int y = 0; y < 4; y++)
        {
            for (int x = 0; x < 8; x++)
            {
                source[y * 8 + x] = pairs[x / 2];
            }
        }
        var target = new byte[4];
        new Preprocess(resolution: 2).Apply(source, 1, 4, 8, target);
        target.Should().Equal(60, 110, 60, 110);
    }

    [Fact]
    public void Paper_profile_resizes_crops_then_resizes_and_converts_channels()
    {
        var pre = new Preprocess(resolution: 4, resize: 16, crop: 8, channels: 3);
        pre.ToString().Should().Contain("shorter side 16").And.Contain("crop 8");
        // Gray 32x16 constant except the crop window's content is irrelevant: a constant stays constant, repeated to 3 planes.
        var source = Enumerable.Repeat((byte)77, 32 * 16).ToArray();
        var target = new byte[3 * 16];
        pre.Apply(source, 1, 16, 32, target);
        target.Should().AllBeEquivalentTo((byte)77);

        // RGB -> gray uses 0.299 R + 0.587 G + 0.114 B.
        var rgb = new byte[3 * 4];
        rgb.AsSpan(0, 4).Fill(200);
        rgb.AsSpan(4, 4).Fill(100);
        rgb.AsSpan(8, 4).Fill(50);
        var gray = new byte[4];
        new Preprocess(resolution: 2, channels: 1).Apply(rgb, 3, 2, 2, gray);
        gray.Should().AllBeEquivalentTo((byte)Math.Round(0.299 * 200 + 0.587 * 100 + 0.114 * 50));

        var bad = () => new Preprocess(resolution: 64, resize: 100, crop: 200);
        bad.Should().Throw<ArgumentException>().WithMessage("*at least the crop*");
    }
}
