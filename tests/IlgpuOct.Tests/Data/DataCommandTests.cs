using FluentAssertions;
using IlgpuOct.Cli;
using IlgpuOct.Nn.Data;
using Xunit;

namespace IlgpuOct.Tests.Data;

public sealed class DataCommandTests
{
    [Fact]
    public void Generate_info_and_preview_work_end_to_end()
    {
        using var folder = new TempFolder();
        string data = folder.File("oct.ioct");
        string sheet = folder.File("sheet.png");
        Program.Main(["data", "generate", "--count", "26", "--resolution", "28", "--seed", "4", "--out", data]).Should().Be(0);
        using (var file = DatasetFile.Open(data, verifyChecksum: true))
        {
            // 26 spread 8:2:1:2 over train/unlabeled/val/test.
            file.Splits.Select(s => (s.Name, s.Count)).Should().Equal(("train", 16), ("unlabeled", 4), ("val", 2), ("test", 4));
            file.ClassNames.Should().Equal(SyntheticOct.ClassNames);
            (file.Height, file.Width).Should().Be((28, 28));
        }
        Program.Main(["data", "info", data, "--json"]).Should().Be(0);
        Program.Main(["data", "preview", "--data", data, "--out", sheet, "--per-class", "3", "--scale", "2"]).Should().Be(0);
        File.ReadAllBytes(sheet)[..4].Should().Equal(0x89, (byte)'P', (byte)'N', (byte)'G');

        string explicitSizes = folder.File("sizes.ioct");
        Program.Main(["data", "generate", "--train", "8", "--unlabeled", "0", "--val", "0", "--test", "4", "--resolution", "16", "--out", explicitSizes]).Should().Be(0);
        using (var file = DatasetFile.Open(explicitSizes))
        {
            file.Splits.Select(s => (s.Name, s.Count)).Should().Equal(("train", 8), ("test", 4));
        }
    }

    [Fact]
    public void Bad_files_and_options_exit_with_bad_input()
    {
        using var folder = new TempFolder();
        string damaged = folder.File("damaged.ioct");
        File.WriteAllBytes(damaged, new byte[200]);
        Program.Main(["data", "info", damaged]).Should().Be(CliRunner.InvalidFile);
        Program.Main(["data", "generate", "--resolution", "3", "--out", folder.File("x.ioct")]).Should().Be(CliRunner.BadInput);
        Program.Main(["data", "import", "--source", folder.File("missing"), "--out", folder.File("y.ioct")]).Should().Be(CliRunner.NotFound);
        File.Exists(folder.File("x.ioct")).Should().BeFalse();
    }
}
