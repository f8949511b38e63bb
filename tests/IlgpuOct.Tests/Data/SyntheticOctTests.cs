using FluentAssertions;
using IlgpuOct.Nn.Data;
using Xunit;

namespace IlgpuOct.Tests.Data;

public sealed class SyntheticOctTests
{
    private static readonly (string, int)[] Sizes = [("train", 24), ("unlabeled", 8), ("val", 4), ("test", 8)];

    [Fact]
    public void Same_seed_gives_identical_bytes_and_another_seed_does_not()
    {
        var a = SyntheticOct.Generate(32, 32, Sizes, seed: 7);
        var b = SyntheticOct.Generate(32, 32, Sizes, seed: 7);
        var c = SyntheticOct.Generate(32, 32, Sizes, seed: 8);
        for (int s = 0; s < a.Splits.Count; s++)
        {
            a.Splits[s].Images.Should().Equal(b.Splits[s].Images);
            a.Splits[s].Labels.Should().Equal(b.Splits[s].Labels);
        }
        a.Splits[0].Images.Should().NotEqual(c.Splits[0].Images);
    }

    [Fact]
    public void Splits_are_class_balanced_and_in_file_order()
    {
        var content = SyntheticOct.Generate(16, 16, Sizes, seed: 1);
        content.ClassNames.Should().Equal("CNV", "DME", "DRUSEN", "NORMAL");
        content.Splits.Select(s => s.Name).Should().Equal("train", "unlabeled", "val", "test");
        foreach (var split in content.Splits)
        {
            var counts = Enumerable.Range(0, 4).Select(c => split.Labels.Count(l => l == c)).ToArray();
            counts.Max().Should().Be(counts.Min(), $"split {split.Name} must be balanced");
        }
    }

    [Fact]
    public void Parallel_generation_equals_rendering_each_image_alone()
    {
        var content = SyntheticOct.Generate(24, 40, [("train", 300)], seed: 3);
        var split = content.Splits[0];
        int plane = 24 * 40;
        var single = new byte[plane];
        foreach (int i in new[] { 0, 1, 255, 256, 299 })
        {
            SyntheticOct.Render(split.Labels[i], SyntheticOct.ImageSeed(3, "train", i), 24, 40, single);
            single.Should().Equal(split.Images.AsSpan(i * plane, plane).ToArray(), $"image {i}");
        }
    }

    [Theory]
    [InlineData(28, 28)]
    [InlineData(64, 64)]
    [InlineData(48, 100)]
    public void Renders_any_size_with_dark_vitreous_and_bright_retina(int height, int width)
    {
        // Averaged over many images: the top rows (vitreous) are darker than the brightest rows (retina, RPE).
        var content = SyntheticOct.Generate(height, width, [("train", 40)], seed: 4);
        var rowMeans = new double[height];
        var images = content.Splits[0].Images;
        for (int n = 0; n < 40; n++)
        {
            for (int y = 0; y < height; y++)
            {
                for (int x = 0; x < width; x++)
                {
                    rowMeans[y] += images[(n * height + y) * width + x];
                }
            }
        }
        rowMeans[..(height / 8)].Average().Should().BeLessThan(rowMeans.Max() * 0.4);
        images.Distinct().Count().Should().BeGreaterThan(100, "speckle gives a wide range of gray values");
    }

    [Fact]
    public void Pathology_changes_the_image_of_the_same_seed()
    {
        var normal = new byte[64 * 64];
        var other = new byte[64 * 64];
        SyntheticOct.Render(SyntheticOct.Normal, 99, 64, 64, normal);
        foreach (int label in new[] { SyntheticOct.Cnv, SyntheticOct.Dme, SyntheticOct.Drusen })
        {
            SyntheticOct.Render(label, 99, 64, 64, other);
            other.Should().NotEqual(normal);
        }
    }

    [Fact]
    public void Bad_arguments_are_refused()
    {
        var badLabel = () => SyntheticOct.Render(4, 0, 32, 32, new byte[1024]);
        badLabel.Should().Throw<ArgumentOutOfRangeException>().WithMessage("*0..3*");
        var small = () => SyntheticOct.Render(0, 0, 32, 32, new byte[100]);
        small.Should().Throw<ArgumentException>().WithMessage("*1024*");
    }
}
