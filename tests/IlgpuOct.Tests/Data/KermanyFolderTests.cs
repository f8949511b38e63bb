using IlgpuOct.Kernels;
using FluentAssertions;
using IlgpuOct.Nn.Data;
using Xunit;

namespace IlgpuOct.Tests.Data;

/// <summary>
/// A test that needs libturbojpeg: skipped, with the reason shown, when the library is missing,
/// unless ILGPUOCT_REQUIRE_TURBOJPEG=1 (CI), where it runs and fails.
/// </summary>
public sealed class TurboJpegFactAttribute : FactAttribute
{
    public TurboJpegFactAttribute()
    {
        if (!TurboJpeg.IsAvailable && Environment.GetEnvironmentVariable("ILGPUOCT_REQUIRE_TURBOJPEG") != "1")
        {
            Skip = $"libturbojpeg.so.0 is not installed ({TurboJpeg.InstallHint}); set ILGPUOCT_REQUIRE_TURBOJPEG=1 to make this a failure.";
        }
    }
}

public sealed class KermanyFolderTests
{
    // Each class is a flat gray level, so labels can be checked from pixels after the JPEG round trip.
    private static readonly byte[] ClassGray = [40, 95, 150, 205];

    private static void WriteJpeg(string path, byte gray, int width, int height, int seed)
    {
        var pixels = new byte[width * height];
        var rng = new Random(seed);
        for (int i = 0; i < pixels.Length; i++)
        {
            pixels[i] = (byte)(gray + rng.Next(-2, 3));
        }
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, TurboJpeg.EncodeGray(pixels, width, height, quality: 95));
    }

    [TurboJpegFact]
    public void Jpeg_round_trip_is_close()
    {
        var pixels = new byte[40 * 24];
        for (int y = 0; y < 24; y++)
        {
            for (int x = 0; x < 40; x++)
            {
                pixels[y * 40 + x] = (byte)(x * 6);
            }
        }
        byte[] jpeg = TurboJpeg.EncodeGray(pixels, 40, 24, quality: 98);
        jpeg[..2].Should().Equal(0xFF, 0xD8);
        var back = TurboJpeg.DecodeGray(jpeg, out int w, out int h);
        (w, h).Should().Be((40, 24));
        Support.Tolerance.AssertClose(back.Select(b => (float)b).ToArray(), pixels.Select(b => (float)b).ToArray(), atol: 6, rtol: 0, "JPEG q98 round trip");
        var broken = () => TurboJpeg.DecodeGray(jpeg[..(jpeg.Length / 2)], out _, out _);
        broken.Should().Throw<InvalidDataException>();
        var garbage = () => TurboJpeg.DecodeGray("definitely not a jpeg"u8, out _, out _);
        garbage.Should().Throw<InvalidDataException>().WithMessage("*not a readable JPEG*");
    }

    [TurboJpegFact]
    public void Train_test_folders_import_balanced_disjoint_splits_and_skip_a_corrupt_file()
    {
        using var folder = new TempFolder();
        string[] classes = ["CNV", "DME", "DRUSEN", "NORMAL"];
        for (int c = 0; c < 4; c++)
        {
            for (int i = 0; i < 5; i++)
            {
                WriteJpeg(Path.Combine(folder.Path, "train", classes[c], $"{classes[c]}-{i}-1.jpeg"), ClassGray[c], 48, 32, c * 100 + i);
            }
            for (int i = 0; i < 2; i++)
            {
                WriteJpeg(Path.Combine(folder.Path, "test", classes[c], $"{classes[c]}-t{i}-1.jpeg"), ClassGray[c], 40, 40, c * 100 + 50 + i);
            }
        }
        // One damaged file among DME train: the import skips it with a warning and takes another.
        string corrupt = Path.Combine(folder.Path, "train", "DME", "DME-bad-1.jpeg");
        File.WriteAllBytes(corrupt, File.ReadAllBytes(Path.Combine(folder.Path, "train", "DME", "DME-0-1.jpeg"))[..60]);

        var options = new KermanyImportOptions(new Preprocess(16), [("train", 12), ("unlabeled", 4), ("val", 4), ("test", 8)], Seed: 3);
        var result = KermanyFolder.Import(folder.Path, options);
        var content = result.Content;
        content.Splits.Select(s => (s.Name, s.Count)).Should().Equal(("train", 12), ("unlabeled", 4), ("val", 4), ("test", 8));
        (content.Height, content.Width, content.Channels).Should().Be((16, 16, 1));
        foreach (var split in content.Splits)
        {
            Enumerable.Range(0, 4).Select(c => split.Labels.Count(l => l == c)).Distinct().Should().HaveCount(1, $"{split.Name} is balanced");
            for (int i = 0; i < split.Count; i++)
            {
                double mean = split.Images.AsSpan(i * 256, 256).ToArray().Average(b => b);
                mean.Should().BeApproximately(ClassGray[split.Labels[i]], 4, $"{split.Name} image {i} carries its class's gray");
            }
        }
        // Every readable DME train file is used exactly once (5 needed, 5 readable), so the corrupt one must have been met.
        result.Warnings.Should().ContainSingle().Which.Path.Should().Be(corrupt);
        result.Warnings[0].Message.Should().StartWith("skipped:");

        // Same seed, same bytes.
        var again = KermanyFolder.Import(folder.Path, options).Content;
        again.Splits[0].Images.Should().Equal(content.Splits[0].Images);

        var strict = () => KermanyFolder.Import(folder.Path, options with { Strict = true });
        strict.Should().Throw<InvalidFileFormatException>().WithMessage("*DME-bad-1.jpeg*could not be decoded*");

        var tooMany = () => KermanyFolder.Import(folder.Path, options with { Splits = [("train", 40)] });
        tooMany.Should().Throw<InvalidFileFormatException>().WithMessage("*only * readable CNV images in train/*need 10*");
    }

    [TurboJpegFact]
    public void Flat_files_named_by_class_are_found()
    {
        using var folder = new TempFolder();
        string[] classes = ["CNV", "DME", "DRUSEN", "NORMAL"];
        for (int c = 0; c < 4; c++)
        {
            for (int i = 0; i < 2; i++)
            {
                WriteJpeg(Path.Combine(folder.Path, $"{classes[c]}-{1000 + i}-{i}.jpeg"), ClassGray[c], 24, 20, c * 10 + i);
            }
        }
        File.WriteAllText(Path.Combine(folder.Path, "README.txt"), "not an image");
        var pools = KermanyFolder.Discover(folder.Path);
        pools.Keys.Should().Equal("all");
        pools["all"].Select(l => l.Count).Should().Equal(2, 2, 2, 2);
        var content = KermanyFolder.Import(folder.Path, new KermanyImportOptions(new Preprocess(8, channels: 3), [("train", 4), ("test", 4)])).Content;
        content.Channels.Should().Be(3);
        content.Splits.Sum(s => s.Count).Should().Be(8);
    }

    [Fact]
    public void A_folder_without_oct_images_is_refused()
    {
        using var folder = new TempFolder();
        File.WriteAllText(Path.Combine(folder.Path, "cat.jpeg"), "x");
        var act = () => KermanyFolder.Discover(folder.Path);
        act.Should().Throw<InvalidFileFormatException>().WithMessage("*no Kermany OCT images*CNV, DME, DRUSEN, NORMAL*");
    }
}
