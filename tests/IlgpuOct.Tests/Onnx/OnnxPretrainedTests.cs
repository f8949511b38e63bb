using FluentAssertions;
using IlgpuOct.Cli;
using IlgpuOct.Kernels;
using IlgpuOct.Nn;
using IlgpuOct.Nn.Checkpoints;
using IlgpuOct.Nn.IO;
using IlgpuOct.Nn.Onnx;
using Xunit;
using static IlgpuOct.Tests.Onnx.OnnxTestSupport;

namespace IlgpuOct.Tests.Onnx;

/// <summary>The ImageNet ResNet-18 of Microsoft.ML.DnnImageFeaturizer.ResNet18 imported, against ONNX Runtime.</summary>
public sealed class OnnxPretrainedTests
{
    private static string PackageModel()
    {
        string path = PretrainedResNet18Package.ModelPath;
        File.Exists(path).Should().BeTrue($"the test project downloads {PretrainedResNet18Package.Id} {PretrainedResNet18Package.Version} on restore; {PretrainedResNet18Package.HowToGet}");
        return path;
    }

    [Fact]
    public void Our_forward_of_the_imported_weights_matches_onnx_runtime_on_the_graph_without_the_extra_block()
    {
        string path = PackageModel();
        var onnx = OnnxFile.Read(path);
        var weights = ResNetOnnxImport.Map(onnx, path);
        weights.Width.Should().Be(64);
        weights.InChannels.Should().Be(3);
        weights.Blocks.Select(b => (b.Name, b.Kept)).Should().Equal(
            ("layer1.0", true), ("layer1.1", true), ("layer2.0", true), ("layer2.1", true), ("layer3.0", true), ("layer3.1", true),
            ("layer4.0", true), ("layer4.1", true), ("layer4.2", false));
        weights.Notices.Should().ContainSingle().Which.Should().StartWith("layer4.2:");

        const int size = 224;
        float[] pixels = Uniform(3 * size * size, 42, -120f, 140f); // the model's input: BGR 0..255 minus the mean image
        float[] withExtraBlock;
        using (var original = new OnnxRuntimeSession(OnnxFile.ToBytes(onnx), intraOpThreads: 2))
        {
            withExtraBlock = original.Run(pixels, [1, 3, size, size]);
        }

        // ONNX Runtime evaluates the original graph with its pooling moved to layer4.1's output,
        // i.e. torchvision's ResNet-18 trunk; ours is the same weights in our layers (raw, before
        // any preprocessing fold or channel change).
        weights.Pool.Input[0] = weights.Blocks.Single(b => b.Name == "layer4.1").Output;
        using var acc = Cpu();
        using var model = new ResNet18(acc, new ResNetConfig(64, 3, 2), seed: 0);
        Checkpoint.LoadPretrained(model, weights.State);
        using var input = Tensor.FromHost(acc, pixels, 1, 3, size, size);
        float[] ours = model.ForwardEval(input).Features.Download();
        using var session = new OnnxRuntimeSession(OnnxFile.ToBytes(onnx), intraOpThreads: 2, output: weights.Pool.Output[0]);
        float[] theirs = session.Run(pixels, [1, 3, size, size]);

        theirs.Should().HaveCount(512);
        MaxAbs(theirs).Should().BeGreaterThan(0.1f, "a trunk of real weights gives non-trivial features");
        // Float32 through 16 convolutions summed in another order: 1e-3 of the largest feature plus 1e-3 relative.
        AssertClose(ours, theirs, 1e-3 * MaxAbs(theirs), 1e-3, "pooled layer4 features of the imported ResNet-18 against ONNX Runtime");
        // The same check tells the graphs apart when they differ by one block (it can fail).
        var withBlock = () => AssertClose(ours, withExtraBlock, 1e-3 * MaxAbs(withExtraBlock), 1e-3, "features against the graph with layer4.2");
        withBlock.Should().Throw<Xunit.Sdk.XunitException>();
    }

    [Fact]
    public void The_package_preprocessing_is_bgr_minus_the_imagenet_mean_and_loads_into_a_gray_width_64_model()
    {
        string path = PackageModel();
        var source = PretrainedResNet18Package.Resolve(null);
        source.ModelPath.Should().Be(path);
        source.PreprocessingPath.Should().NotBeNull();
        var prep = ResNetOnnxImport.ReadPreprocessing(OnnxFile.Read(source.PreprocessingPath!), source.PreprocessingPath!);
        prep.SourceChannel.Should().Equal(2, 1, 0);
        prep.Mean[0].Should().BeInRange(95f, 110f); // blue
        prep.Mean[2].Should().BeInRange(115f, 130f); // red
        prep.PixelScale.Should().Be(255f);

        using var acc = Cpu();
        using var gray = new ResNet18(acc, new ResNetConfig(64, 1, 4), seed: 5);
        float[] fc = gray.Classifier.Weight.Value.Download();
        var notices = ResNetOnnxImport.LoadPretrained(gray, source);
        notices.Should().Contain(n => n.StartsWith("layer4.2:", StringComparison.Ordinal))
            .And.Contain(n => n.StartsWith("conv1/bn1:", StringComparison.Ordinal))
            .And.Contain(n => n.StartsWith("conv1.weight:", StringComparison.Ordinal))
            .And.Contain(n => n.StartsWith("fc:", StringComparison.Ordinal));
        gray.Stem.Weight.Shape.Should().Equal(64, 1, 7, 7);
        gray.Classifier.Weight.Value.Download().Should().Equal(fc, "fc keeps the model's seeded initialisation");

        using var narrow = new ResNet18(acc, new ResNetConfig(8, 1, 4), seed: 5);
        var load = () => ResNetOnnxImport.LoadPretrained(narrow, source);
        load.Should().Throw<ArgumentException>().WithMessage("*width-64*width 8*");
    }

    [Fact]
    public void Folding_the_preprocessing_keeps_the_stem_output_wherever_the_window_lies_inside_the_image()
    {
        const int k = 5, size = 32;
        var prep = new PixelPreprocessing([2, 1, 0], [103.9f, 116.8f, 123.7f], 255f);
        var raw = new SafeTensorFile();
        raw.Add("conv1.weight", Uniform(k * 3 * 49, 1, -0.05f, 0.05f), k, 3, 7, 7);
        raw.Add("bn1.running_mean", Uniform(k, 2, -1f, 1f), k);
        var folded = new SafeTensorFile();
        folded.Add("conv1.weight", raw["conv1.weight"].ToFloat(), k, 3, 7, 7);
        folded.Add("bn1.running_mean", raw["bn1.running_mean"].ToFloat(), k);
        ResNetOnnxImport.FoldPreprocessing(folded, prep);

        float[] image = Uniform(3 * size * size, 3); // RGB in [0, 1]
        var pixels = new float[image.Length]; // what the model reads: 255 x image[source channel] - mean
        int plane = size * size;
        for (int c = 0; c < 3; c++)
        {
            for (int i = 0; i < plane; i++)
            {
                pixels[c * plane + i] = prep.PixelScale * image[prep.SourceChannel[c] * plane + i] - prep.Mean[c];
            }
        }
        float[] expected = Stem(raw, pixels, k, size);
        float[] actual = Stem(folded, image, k, size);

        int outSize = size / 2;
        var inside = new List<int>();
        for (int o = 0; o < k; o++)
        {
            for (int y = 2; y <= 14; y++) // 2y - 3 >= 0 and 2y + 3 <= 31: the 7x7 window needs no padding
            {
                for (int x = 2; x <= 14; x++)
                {
                    inside.Add((o * outSize + y) * outSize + x);
                }
            }
        }
        float[] e = [.. inside.Select(i => expected[i])];
        AssertClose([.. inside.Select(i => actual[i])], e, 1e-4 * MaxAbs(e), 1e-4, "bn1(conv1(x)) with the preprocessing folded");
        actual[0].Should().NotBe(expected[0], "at the border the original pads with the mean pixel, the folded stem with 0");
    }

    /// <summary>bn1(conv1(x)) in evaluation mode with the given conv1 weight and running mean (weight 1, bias 0, variance 1).</summary>
    private static float[] Stem(SafeTensorFile state, float[] pixels, int k, int size)
    {
        using var acc = Cpu();
        using var conv = new Conv2dLayer(acc, "conv1", 3, k, 7, 2, 3);
        using var bn = new BatchNorm2dLayer(acc, "bn1", k);
        conv.Weight.Value.Upload(state["conv1.weight"].ToFloat());
        bn.RunningMean.Value.Upload(state["bn1.running_mean"].ToFloat());
        using var input = Tensor.FromHost(acc, pixels, 1, 3, size, size);
        return bn.Forward(conv.Forward(input, false), false).Download();
    }
}
