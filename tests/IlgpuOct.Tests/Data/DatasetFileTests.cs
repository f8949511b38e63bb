using IlgpuOct.Kernels;
using System.Buffers.Binary;
using FluentAssertions;
using IlgpuOct.Nn.Data;
using Xunit;

namespace IlgpuOct.Tests.Data;

public sealed class DatasetFileTests
{
    private static DatasetContent SmallContent(int classes = 3, int channels = 1)
    {
        const int h = 5, w = 4;
        var rng = new Random(11);
        SplitData Make(string name, int count)
        {
            var images = new byte[count * channels * h * w];
            rng.NextBytes(images);
            var labels = Enumerable.Range(0, count).Select(i => (i * 7 + name.Length) % classes).ToArray();
            return new SplitData(name, images, labels);
        }
        var names = Enumerable.Range(0, classes).Select(i => $"c{i}").ToArray();
        // Given out of order on purpose: the file keeps train, unlabeled, val, test order.
        return new DatasetContent(channels, h, w, names, "unit test", [Make("test", 7), Make("train", 13), Make("val", 3)]);
    }

    [Fact]
    public void Round_trip_keeps_shape_classes_splits_pixels_and_labels()
    {
        using var folder = new TempFolder();
        var content = SmallContent();
        string path = folder.File("small.ioct");
        DatasetFile.Write(path, content);
        using var file = DatasetFile.Open(path, verifyChecksum: true);
        file.Channels.Should().Be(1);
        file.Height.Should().Be(5);
        file.Width.Should().Be(4);
        file.ClassNames.Should().Equal("c0", "c1", "c2");
        file.Source.Should().Be("unit test");
        file.LabelBytes.Should().Be(1);
        file.Splits.Select(s => s.Name).Should().Equal("train", "val", "test");
        file.Checksum.Should().MatchRegex("^[0-9a-f]{64}$");
        foreach (var expected in content.Splits)
        {
            var split = file.Split(expected.Name);
            split.Count.Should().Be(expected.Count);
            split.Labels.Should().Equal(expected.Labels);
            for (int i = 0; i < split.Count; i++)
            {
                split.Image(i).ToArray().Should().Equal(expected.Images.AsSpan(i * 20, 20).ToArray());
            }
        }
    }

    [Fact]
    public void Copy_images_gives_unit_floats_and_can_repeat_gray_to_three_channels()
    {
        using var folder = new TempFolder();
        var content = SmallContent();
        string path = folder.File("floats.ioct");
        DatasetFile.Write(path, content);
        using var file = DatasetFile.Open(path);
        var train = file.Split("train");
        int[] indices = [12, 0, 5];
        var batch = new float[indices.Length * 20]; // (B, 1, 5, 4)
        train.CopyImages(indices, batch);
        var expected = indices.SelectMany(i => content.Splits[0].Images.AsSpan(i * 20, 20).ToArray()).Select(b => b / 255f).ToArray();
        Support.Tolerance.AssertClose(batch, expected, atol: 1e-7, rtol: 1e-6, "uint8 -> [0, 1] floats");

        var rgb = new float[indices.Length * 60]; // (B, 3, 5, 4)
        train.CopyImages(indices, rgb, outputChannels: 3);
        for (int b = 0; b < indices.Length; b++)
        {
            for (int c = 0; c < 3; c++)
            {
                rgb.AsSpan(b * 60 + c * 20, 20).ToArray().Should().Equal(batch.AsSpan(b * 20, 20).ToArray());
            }
        }
        var labels = new int[3];
        train.CopyLabels(indices, labels);
        labels.Should().Equal(indices.Select(i => content.Splits[0].Labels[i]));
        var act = () => train.CopyImages(indices, new float[10]);
        act.Should().Throw<ArgumentException>().WithMessage("*need 60*");
    }

    [Fact]
    public void Many_classes_use_int32_labels()
    {
        using var folder = new TempFolder();
        var content = new DatasetContent(1, 2, 2, Enumerable.Range(0, 300).Select(i => $"k{i}").ToArray(), "many",
            [new SplitData("train", new byte[12], [299, 0, 256])]);
        string path = folder.File("many.ioct");
        DatasetFile.Write(path, content);
        using var file = DatasetFile.Open(path, verifyChecksum: true);
        file.LabelBytes.Should().Be(4);
        file.Split("train").Labels.Should().Equal(299, 0, 256);
    }

    [Fact]
    public void Truncated_file_is_refused_naming_the_file_and_the_missing_bytes()
    {
        using var folder = new TempFolder();
        string path = folder.File("cut.ioct");
        DatasetFile.Write(path, SmallContent());
        byte[] bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..^30]);
        var act = () => DatasetFile.Open(path);
        act.Should().Throw<InvalidFileFormatException>().WithMessage("*cut.ioct*truncated*bytes are missing*");

        File.WriteAllBytes(path, bytes[..40]);
        act.Should().Throw<InvalidFileFormatException>().WithMessage("*cut.ioct*truncated*");

        File.WriteAllBytes(path, bytes[..10]);
        act.Should().Throw<InvalidFileFormatException>().WithMessage("*cut.ioct*only 10 bytes*");
    }

    [Fact]
    public void Wrong_magic_is_refused()
    {
        using var folder = new TempFolder();
        string path = folder.File("magic.ioct");
        DatasetFile.Write(path, SmallContent());
        byte[] bytes = File.ReadAllBytes(path);
        "NOTADATA"u8.CopyTo(bytes);
        File.WriteAllBytes(path, bytes);
        var act = () => DatasetFile.Open(path);
        act.Should().Throw<InvalidFileFormatException>().WithMessage("*magic.ioct*\"IOCTDATA\"*found \"NOTADATA\"*not an IlgpuOct data set*");
    }

    [Fact]
    public void Damaged_payload_fails_the_checksum_and_damaged_header_fails_its_crc()
    {
        using var folder = new TempFolder();
        string path = folder.File("flip.ioct");
        DatasetFile.Write(path, SmallContent());
        byte[] good = File.ReadAllBytes(path);
        int headerLength = (int)BinaryPrimitives.ReadUInt32LittleEndian(good.AsSpan(12));

        byte[] payloadFlip = (byte[])good.Clone();
        payloadFlip[headerLength + 3] ^= 0x40; // a pixel of train image 0
        File.WriteAllBytes(path, payloadFlip);
        using (var unverified = DatasetFile.Open(path))
        {
            unverified.Split("train").Count.Should().Be(13);
            var verify = () => unverified.VerifyChecksum();
            verify.Should().Throw<InvalidFileFormatException>().WithMessage("*flip.ioct*checksum does not match*");
        }
        var open = () => DatasetFile.Open(path, verifyChecksum: true);
        open.Should().Throw<InvalidFileFormatException>().WithMessage("*flip.ioct*checksum*");

        byte[] headerFlip = (byte[])good.Clone();
        headerFlip[90] ^= 0x01; // inside the class names
        File.WriteAllBytes(path, headerFlip);
        open = () => DatasetFile.Open(path);
        open.Should().Throw<InvalidFileFormatException>().WithMessage("*flip.ioct*header is damaged*CRC*");

        File.WriteAllBytes(path, [.. good, 1, 2, 3]);
        open.Should().Throw<InvalidFileFormatException>().WithMessage("*flip.ioct*3 unexpected bytes*");
    }

    [Fact]
    public void Missing_file_and_missing_split_say_what_to_do()
    {
        using var folder = new TempFolder();
        var missing = () => DatasetFile.Open(folder.File("nope.ioct"));
        missing.Should().Throw<FileNotFoundException>().WithMessage("*nope.ioct*data generate*");
        string path = folder.File("s.ioct");
        DatasetFile.Write(path, SmallContent());
        using var file = DatasetFile.Open(path);
        var split = () => file.Split("unlabeled");
        split.Should().Throw<ArgumentException>().WithMessage("*no split 'unlabeled'*train, val, test*");
    }

    [Fact]
    public void Writing_checks_sizes_and_labels()
    {
        var badSize = () => new DatasetContent(1, 2, 2, ["a"], "", [new SplitData("train", new byte[7], [0, 0])]);
        badSize.Should().Throw<ArgumentException>().WithMessage("*7 pixel bytes for 2 labels*expected 8*");
        var badLabel = () => new DatasetContent(1, 2, 2, ["a", "b"], "", [new SplitData("train", new byte[4], [2])]);
        badLabel.Should().Throw<ArgumentException>().WithMessage("*label 2 at index 0 is outside 0..1*");
    }
}
