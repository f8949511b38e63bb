using FluentAssertions;
using IlgpuOct.Cli;
using IlgpuOct.Kernels;
using IlgpuOct.Nn;
using IlgpuOct.Nn.Checkpoints;
using IlgpuOct.Nn.Onnx;
using Xunit;
using static IlgpuOct.Tests.Onnx.OnnxTestSupport;

namespace IlgpuOct.Tests.Onnx;

/// <summary>The ONNX export read back by ONNX Runtime and by the importer, and corrupt files.</summary>
public sealed class OnnxExportTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "ilgpuoct-onnx-" + Guid.NewGuid().ToString("N"));

    public OnnxExportTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, true);

    [Theory]
    [InlineData(1, 32)]
    [InlineData(3, 64)]
    public void Onnx_runtime_gives_our_evaluation_logits_for_the_exported_model(int channels, int resolution)
    {
        using var acc = Cpu();
        using var model = new ResNet18(acc, new ResNetConfig(8, channels, 4), seed: 3);
        RandomizeBatchNorms(model, 11);
        const int n = 3;
        float[] images = Uniform(n * channels * resolution * resolution, 5);
        using var input = Tensor.FromHost(acc, images, n, channels, resolution, resolution);
        float[] ours = model.ForwardEval(input).Logits.Download();

        string path = Path.Combine(_dir, "model.onnx");
        OnnxFile.Write(path, ResNetOnnxExport.Export(model));
        var read = OnnxFile.Read(path);
        OnnxFile.DefaultOpset(read).Should().Be(ResNetOnnxExport.Opset);
        using var session = new OnnxRuntimeSession(File.ReadAllBytes(path), intraOpThreads: 2);
        float[] theirs = session.Run(images, [n, channels, resolution, resolution]);

        theirs.Should().HaveCount(n * 4);
        // Float32 sums in another order through 18 layers: 1e-4 of the largest logit plus 1e-3 relative.
        AssertClose(ours, theirs, 1e-4 * MaxAbs(theirs), 1e-3, $"logits ({channels} channel(s), {resolution}x{resolution}) against ONNX Runtime");
        Directory.GetFiles(_dir, "*.tmp").Should().BeEmpty("the write is atomic");
    }

    [Fact]
    public void The_importer_reads_every_exported_tensor_back_under_its_torchvision_name()
    {
        using var acc = Cpu();
        using var model = new ResNet18(acc, new ResNetConfig(4, 1, 3), seed: 7);
        RandomizeBatchNorms(model, 2);
        var state = Checkpoint.ToFile(model, 0, 0, "", includeOptimizer: false);

        var mapped = ResNetOnnxImport.Map(OnnxFile.Parse(OnnxFile.ToBytes(ResNetOnnxExport.Export(model))), "export");

        mapped.Width.Should().Be(4);
        mapped.InChannels.Should().Be(1);
        mapped.Notices.Should().BeEmpty();
        mapped.Blocks.Select(b => b.Name).Should().Equal("layer1.0", "layer1.1", "layer2.0", "layer2.1", "layer3.0", "layer3.1", "layer4.0", "layer4.1");
        var expected = state.Keys.Where(k => !k.StartsWith("fc.", StringComparison.Ordinal) && !k.EndsWith(Checkpoint.NumBatchesTrackedSuffix, StringComparison.Ordinal)).ToList();
        mapped.State.Keys.Should().BeEquivalentTo(expected);
        foreach (string key in expected)
        {
            mapped.State[key].Shape.Should().Equal(state[key].Shape, key);
            mapped.State[key].ToFloat().Should().Equal(state[key].ToFloat(), key);
        }
    }

    [Fact]
    public void Truncated_and_corrupt_files_fail_with_a_one_line_invalid_file_error()
    {
        using var acc = Cpu();
        using var model = new ResNet18(acc, new ResNetConfig(2, 1, 2), seed: 1);
        byte[] bytes = OnnxFile.ToBytes(ResNetOnnxExport.Export(model));
        string truncated = Path.Combine(_dir, "truncated.onnx");
        File.WriteAllBytes(truncated, bytes[..(bytes.Length / 2)]);
        string garbage = Path.Combine(_dir, "garbage.onnx");
        File.WriteAllBytes(garbage, Uniform(1000, 9).Select(v => (byte)(v * 256)).ToArray());
        string text = Path.Combine(_dir, "text.onnx");
        File.WriteAllText(text, "not a model\n");

        foreach (string path in new[] { truncated, garbage, text })
        {
            var read = () => OnnxFile.Read(path);
            var error = read.Should().Throw<InvalidFileFormatException>().Which;
            error.Message.Should().Contain(path).And.Contain(OnnxFile.FormatName);
            error.Message.Should().NotContain("\n");
        }
        var empty = Path.Combine(_dir, "empty.onnx");
        File.WriteAllBytes(empty, []);
        ((Action)(() => OnnxFile.Read(empty))).Should().Throw<InvalidFileFormatException>();
    }

    [Fact]
    public void A_graph_that_is_not_a_resnet18_is_refused_by_name()
    {
        using var acc = Cpu();
        using var model = new ResNet18(acc, new ResNetConfig(2, 1, 2), seed: 1);
        var onnx = ResNetOnnxExport.Export(model);
        // Pool layer3 instead of layer4: the walk must say where the network stops being a ResNet-18.
        var pool = onnx.Graph.Node.Single(n => n.OpType == "GlobalAveragePool");
        var mapped = ResNetOnnxImport.Map(onnx, "m");
        pool.Input[0] = mapped.Blocks.Single(b => b.Name == "layer3.1").Output;
        var map = () => ResNetOnnxImport.Map(onnx, "cut.onnx");
        map.Should().Throw<InvalidFileFormatException>().WithMessage("*cut.onnx*layer4.1*no GlobalAveragePool or AveragePool reads it*");
    }
}
