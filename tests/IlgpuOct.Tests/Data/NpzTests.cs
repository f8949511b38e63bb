using IlgpuOct.Kernels;
using System.IO.Compression;
using System.Text;
using FluentAssertions;
using IlgpuOct.Nn.Data;
using IlgpuOct.Tests.Support;
using Xunit;

namespace IlgpuOct.Tests.Data;

public sealed class NpzTests
{
    /// <summary>The shared real-data file: ILGPUOCT_DATA, else ../shared/data beside the repository.</summary>
    private static string PneumoniaPath
    {
        get
        {
            string folder = Environment.GetEnvironmentVariable("ILGPUOCT_DATA") is { Length: > 0 } fromEnv
                ? fromEnv
                : Path.GetFullPath(Path.Combine(Golden.RepositoryRoot, "..", "shared", "data"));
            string path = Path.Combine(folder, "pneumoniamnist.npz");
            if (!File.Exists(path))
            {
                throw new FileNotFoundException($"Real-data file '{path}' is missing: set ILGPUOCT_DATA to the folder holding pneumoniamnist.npz.", path);
            }
            return path;
        }
    }

    /// <summary>Every array header of the file, read straight from the zip (the expectations of the tests).</summary>
    private static Dictionary<string, NpyHeader> Headers(string path)
    {
        using var zip = ZipFile.OpenRead(path);
        return zip.Entries.ToDictionary(e => e.FullName, e =>
        {
            using var s = e.Open();
            return IlgpuOct.Nn.Data.Npy.ReadHeader(s, e.FullName);
        });
    }

    [Fact]
    public void Real_pneumoniamnist_reads_with_the_shapes_and_balance_the_file_declares()
    {
        string path = PneumoniaPath;
        var headers = Headers(path);
        var splits = NpzImport.Read(path);
        splits.Select(s => s.Name).Should().Equal("train", "val", "test");
        foreach (var split in splits)
        {
            var shape = headers[$"{split.Name}_images.npy"].Shape;
            split.Count.Should().Be((int)shape[0]);
            split.Height.Should().Be((int)shape[1]);
            split.Width.Should().Be((int)shape[2]);
            split.Channels.Should().Be(shape.Length == 4 ? 3 : 1);
            split.Images.LongLength.Should().Be(headers[$"{split.Name}_images.npy"].ElementCount);
            split.Labels.Length.Should().Be((int)headers[$"{split.Name}_labels.npy"].Shape[0]);
            // This copy is a class-balanced subset: every class equally often in every split.
            var counts = split.Labels.GroupBy(l => l).Select(g => g.Count()).ToArray();
            counts.Should().HaveCount(2);
            counts.Distinct().Should().HaveCount(1, $"split {split.Name} is balanced");
            split.Images.Distinct().Count().Should().BeGreaterThan(200, "real X-rays use most gray levels");
        }
    }

    [Fact]
    public void Real_pneumoniamnist_imports_unchanged_at_its_own_size_with_a_stratified_unlabeled_split()
    {
        string path = PneumoniaPath;
        var raw = NpzImport.Read(path);
        int size = raw[0].Height;
        var result = NpzImport.Import(path, new NpzImportOptions(new Preprocess(size), UnlabeledFraction: 0.2, Seed: 1));
        var content = result.Content;
        content.ClassNames.Should().Equal("normal", "pneumonia");
        content.Splits.Select(s => s.Name).Should().Equal("train", "unlabeled", "val", "test");
        var train = content.Splits[0];
        var unlabeled = content.Splits[1];
        (train.Count + unlabeled.Count).Should().Be(raw[0].Count);
        unlabeled.Count.Should().BeCloseTo((int)Math.Round(raw[0].Count * 0.2), 2);
        unlabeled.Labels.Count(l => l == 0).Should().Be(unlabeled.Labels.Count(l => l == 1));
        content.Splits[2].Images.Should().Equal(raw[1].Images, "same size means no resampling");
        content.Splits[3].Labels.Should().Equal(raw[2].Labels);

        using var folder = new TempFolder();
        string file = folder.File("pneumonia.ioct");
        DatasetFile.Write(file, content);
        using var opened = DatasetFile.Open(file, verifyChecksum: true);
        opened.Split("test").Image(5).ToArray().Should().Equal(raw[2].Images.AsSpan(5 * size * size, size * size).ToArray());
    }

    [Fact]
    public void Tiny_npz_with_rgb_images_and_int64_labels_is_read_planar_and_resized()
    {
        using var folder = new TempFolder();
        string path = folder.File("tiny.npz");
        // 3 RGB images 2x2 (N, H, W, 3): pixel value = 100 * channel + 10 * n + position.
        var rgb = new byte[3 * 2 * 2 * 3];
        for (int n = 0; n < 3; n++)
        {
            for (int p = 0; p < 4; p++)
            {
                for (int c = 0; c < 3; c++)
                {
                    rgb[(n * 4 + p) * 3 + c] = (byte)(50 * c + 10 * n + p);
                }
            }
        }
        WriteNpz(path, new()
        {
            ["train_images.npy"] = Npy("|u1", "(3, 2, 2, 3)", rgb),
            ["train_labels.npy"] = Npy("<i8", "(3, 1)", Int64s(2, 0, 1)),
            ["test_images.npy"] = Npy("|u1", "(1, 2, 2, 3)", rgb[..12]),
            ["test_labels.npy"] = Npy("<i8", "(1,)", Int64s(1)),
        });
        var splits = NpzImport.Read(path);
        splits.Select(s => s.Name).Should().Equal("train", "test");
        var train = splits[0];
        (train.Count, train.Channels, train.Height, train.Width).Should().Be((3, 3, 2, 2));
        train.Labels.Should().Equal(2, 0, 1);
        // Image 1, channel 2 plane: 100 + 10 + p.
        train.Images.AsSpan(1 * 12 + 2 * 4, 4).ToArray().Should().Equal(110, 111, 112, 113);

        var keep = NpzImport.Import(path, new NpzImportOptions(new Preprocess(8, channels: 3), ClassNames: ["a", "b", "c"]));
        keep.Content.Channels.Should().Be(3);
        keep.Content.Height.Should().Be(8);
        keep.Content.ClassNames.Should().Equal("a", "b", "c");
        var gray = NpzImport.Import(path, new NpzImportOptions(new Preprocess(8)));
        gray.Content.Channels.Should().Be(1);
        gray.Content.ClassNames.Should().Equal("class_0", "class_1", "class_2");
    }

    [Fact]
    public void Damaged_npz_files_are_refused_with_the_file_and_the_problem()
    {
        using var folder = new TempFolder();
        var images = new byte[6 * 5 * 4];
        string truncated = folder.File("truncated.npz");
        WriteNpz(truncated, new()
        {
            ["train_images.npy"] = Npy("|u1", "(6, 5, 4)", images[..^20]),
            ["train_labels.npy"] = Npy("|u1", "(6, 1)", new byte[6]),
        });
        var act = () => NpzImport.Read(truncated);
        act.Should().Throw<InvalidFileFormatException>().WithMessage("*truncated.npz*train_images.npy*ended early*image 5 of 6*");

        string badMagic = folder.File("magic.npz");
        WriteNpz(badMagic, new()
        {
            ["train_images.npy"] = Encoding.ASCII.GetBytes("not numpy at all, sorry"),
            ["train_labels.npy"] = Npy("|u1", "(6, 1)", new byte[6]),
        });
        act = () => NpzImport.Read(badMagic);
        act.Should().Throw<InvalidFileFormatException>().WithMessage("*magic.npz*train_images.npy*not a .npy array*");

        string mismatch = folder.File("mismatch.npz");
        WriteNpz(mismatch, new()
        {
            ["train_images.npy"] = Npy("|u1", "(6, 5, 4)", images),
            ["train_labels.npy"] = Npy("|u1", "(5, 1)", new byte[5]),
        });
        act = () => NpzImport.Read(mismatch);
        act.Should().Throw<InvalidFileFormatException>().WithMessage("*mismatch.npz*6 train images but 5 train labels*");

        string floats = folder.File("floats.npz");
        WriteNpz(floats, new()
        {
            ["train_images.npy"] = Npy("<f4", "(1, 1, 1)", new byte[4]),
            ["train_labels.npy"] = Npy("|u1", "(1,)", new byte[1]),
        });
        act = () => NpzImport.Read(floats);
        act.Should().Throw<InvalidFileFormatException>().WithMessage("*floats.npz*'<f4'*");

        string notZip = folder.File("notzip.npz");
        File.WriteAllBytes(notZip, Encoding.ASCII.GetBytes("PK? this is not a zip archive at all"));
        act = () => NpzImport.Read(notZip);
        act.Should().Throw<InvalidFileFormatException>().WithMessage("*notzip.npz*not a readable .npz*");

        string alone = folder.File("alone.npz");
        WriteNpz(alone, new() { ["val_images.npy"] = Npy("|u1", "(1, 2, 2)", new byte[4]) });
        act = () => NpzImport.Read(alone);
        act.Should().Throw<InvalidFileFormatException>().WithMessage("*alone.npz*val_images.npy without its partner*");
    }

    [Fact]
    public void Npy_header_parser_reads_the_numpy_dict()
    {
        var h = IlgpuOct.Nn.Data.Npy.ParseHeader("{'descr': '|u1', 'fortran_order': False, 'shape': (468, 28, 28), }", "x");
        h.Descr.Should().Be("|u1");
        h.FortranOrder.Should().BeFalse();
        h.Shape.Should().Equal(468, 28, 28);
        IlgpuOct.Nn.Data.Npy.ParseHeader("{'descr': '<i8', 'fortran_order': True, 'shape': (5,), }", "x").Shape.Should().Equal(5);
        var bad = () => IlgpuOct.Nn.Data.Npy.ParseHeader("{'descr': '|u1'}", "entry.npy");
        bad.Should().Throw<InvalidFileFormatException>().WithMessage("*entry.npy*without*shape*");
    }

    internal static byte[] Npy(string descr, string shape, byte[] data)
    {
        string dict = $"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}";
        int total = 10 + dict.Length + 1;
        int padded = (total + 63) / 64 * 64;
        string header = dict + new string(' ', padded - total) + "\n";
        using var ms = new MemoryStream();
        ms.Write([0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0]);
        ms.Write(BitConverter.GetBytes((ushort)header.Length));
        ms.Write(Encoding.Latin1.GetBytes(header));
        ms.Write(data);
        return ms.ToArray();
    }

    private static byte[] Int64s(params long[] values) => values.SelectMany(BitConverter.GetBytes).ToArray();

    internal static void WriteNpz(string path, Dictionary<string, byte[]> entries)
    {
        using var zip = ZipFile.Open(path, ZipArchiveMode.Create);
        foreach (var (name, bytes) in entries)
        {
            using var s = zip.CreateEntry(name).Open();
            s.Write(bytes);
        }
    }
}
