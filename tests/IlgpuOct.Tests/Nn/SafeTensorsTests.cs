using IlgpuOct.Kernels;
using FluentAssertions;
using IlgpuOct.Nn.IO;
using IlgpuOct.Tests.Support;
using Xunit;

namespace IlgpuOct.Tests.Nn;

public sealed class SafeTensorsTests
{
    [Fact]
    public void Round_trip_keeps_types_shapes_values_and_metadata()
    {
        var file = new SafeTensorFile(new Dictionary<string, string> { ["width"] = "8" });
        file.Add("w", new float[] { 1.5f, -2f, 3f, 4f, 5f, 6f }, 2, 3);
        file.Add("d", new double[] { Math.PI }, 1);
        file.Add("l", new long[] { -7, 9 }, 2);
        file.Add("b", new byte[] { 0, 255 }, 2);
        string path = Path.Combine(Path.GetTempPath(), $"st-{Guid.NewGuid():N}.safetensors");
        try
        {
            file.Write(path);
            var back = SafeTensorFile.Read(path);
            back.Metadata["width"].Should().Be("8");
            back["w"].Shape.Should().Equal(2, 3);
            back["w"].ToFloat().Should().Equal(1.5f, -2f, 3f, 4f, 5f, 6f);
            back["d"].ToDouble().Should().Equal(Math.PI);
            back["l"].ToInt64().Should().Equal(-7, 9);
            back["b"].ToBytes().Should().Equal(0, 255);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Truncated_file_is_refused_with_its_path()
    {
        var file = new SafeTensorFile();
        file.Add("x", new float[100], 100);
        using var ms = new MemoryStream();
        file.WriteTo(ms);
        string path = Path.Combine(Path.GetTempPath(), $"st-{Guid.NewGuid():N}.safetensors");
        try
        {
            File.WriteAllBytes(path, ms.ToArray()[..^40]);
            var act = () => SafeTensorFile.Read(path);
            act.Should().Throw<InvalidFileFormatException>().WithMessage($"*{Path.GetFileName(path)}*not a valid safetensors*");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    [Trait("Category", "Golden")]
    public void Golden_files_parse_and_declare_their_settings()
    {
        var ops = Golden.Load("ops.safetensors");
        ops.Contains("conv.0.x").Should().BeTrue();
        var resnet = Golden.Load("resnet18.safetensors");
        resnet.Metadata.Should().ContainKey("width");
        resnet["conv1.weight"].Shape.Should().HaveCount(4);
    }
}
