using FluentAssertions;
using IlgpuOct.Kernels;
using IlgpuOct.Nn;
using IlgpuOct.Nn.Checkpoints;
using IlgpuOct.Nn.IO;
using Xunit;

namespace IlgpuOct.Tests.Nn;

public sealed class CheckpointTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "ilgpuoct-ckpt-" + Guid.NewGuid().ToString("N"));

    public CheckpointTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static void Perturb(ResNet18 model, int seed)
    {
        var random = new Random(seed);
        foreach (var p in model.Parameters)
        {
            p.Momentum.Upload(Enumerable.Range(0, p.Momentum.Length).Select(_ => (float)random.NextDouble()).ToArray());
        }
        foreach (var bn in model.BatchNorms)
        {
            bn.RunningMean.Value.Upload(Enumerable.Range(0, bn.Channels).Select(_ => (float)random.NextDouble()).ToArray());
            bn.BatchesTracked = random.Next(100);
        }
    }

    [Fact]
    public void Save_then_open_restores_parameters_buffers_momentum_and_metadata()
    {
        using var acc = DeviceSelection.Open("cpu", out _);
        using var original = new ResNet18(acc, new ResNetConfig(4, 1, 3), seed: 11);
        Perturb(original, 1);
        string path = Path.Combine(_dir, "a.safetensors");
        Checkpoint.Save(path, original, epoch: 3, step: 42, dataChecksum: "abc", new Dictionary<string, string> { ["note"] = "x" });

        var (loaded, info) = Checkpoint.Open(acc, path);
        using (loaded)
        {
            info.Config.Should().Be(original.Config);
            (info.Epoch, info.Step, info.Seed, info.DataChecksum).Should().Be((3, 42L, 11, "abc"));
            info.Metadata["note"].Should().Be("x");
            foreach (var (a, b) in original.Parameters.Zip(loaded.Parameters))
            {
                b.Name.Should().Be(a.Name);
                b.Value.Download().Should().Equal(a.Value.Download(), a.Name);
                b.Momentum.Download().Should().Equal(a.Momentum.Download(), a.Name);
            }
            foreach (var (a, b) in original.BatchNorms.Zip(loaded.BatchNorms))
            {
                b.RunningMean.Value.Download().Should().Equal(a.RunningMean.Value.Download());
                b.RunningVar.Value.Download().Should().Equal(a.RunningVar.Value.Download());
                b.BatchesTracked.Should().Be(a.BatchesTracked);
            }
        }
        var file = SafeTensorFile.Read(path);
        file.Contains("layer2.0.downsample.1.num_batches_tracked").Should().BeTrue();
        file["layer2.0.downsample.1.num_batches_tracked"].DType.Should().Be(SafeTensorDType.I64);
        file.Contains(Checkpoint.MomentumPrefix + "layer4.1.conv2.weight").Should().BeTrue();
        Directory.GetFiles(_dir).Should().ContainSingle("the write goes through a temporary file that is renamed");
    }

    [Fact]
    public void Loading_into_a_different_model_reports_every_mismatch_at_once()
    {
        using var acc = DeviceSelection.Open("cpu", out _);
        using var small = new ResNet18(acc, new ResNetConfig(4, 1, 3), seed: 1);
        using var other = new ResNet18(acc, new ResNetConfig(8, 1, 3), seed: 1);
        var file = Checkpoint.ToFile(small, 0, 0, "");
        file.Add("bogus.weight", new float[] { 1 }, 1);
        var before = other.Parameters[0].Value.Download();
        var act = () => Checkpoint.LoadState(other, file);
        var error = act.Should().Throw<InvalidFileFormatException>().Which;
        error.Message.Should().Contain("'conv1.weight' has shape [4, 1, 7, 7], expected (8, 1, 7, 7)")
            .And.Contain("'fc.weight' has shape [3, 32], expected (3, 64)")
            .And.Contain("'layer4.1.bn2.running_var'")
            .And.Contain("unexpected 'bogus.weight'");
        // 61 of 62 parameters (fc.bias fits: same class count), 40 running statistics and 61 momentum buffers
        // have other shapes; plus the unexpected key.
        error.Message.Should().Contain($"{61 + 40 + 61 + 1} problem(s)");
        other.Parameters[0].Value.Download().Should().Equal(before, "nothing is loaded when anything mismatches");

        var missing = new SafeTensorFile();
        var act2 = () => Checkpoint.LoadState(small, missing);
        act2.Should().Throw<InvalidFileFormatException>().WithMessage("*missing 'conv1.weight'*missing 'fc.bias'*");
    }

    [Fact]
    public void Pretrained_rgb_weights_are_summed_for_gray_input_and_a_misfit_classifier_is_reinitialised()
    {
        using var acc = DeviceSelection.Open("cpu", out _);
        using var rgb = new ResNet18(acc, new ResNetConfig(4, 3, 10), seed: 5); // stands in for ImageNet weights
        var pretrained = Checkpoint.ToFile(rgb, 0, 0, "", includeOptimizer: false);
        pretrained.Metadata.Clear(); // torchvision exports carry no metadata

        using var gray = new ResNet18(acc, new ResNetConfig(4, 1, 2), seed: 9);
        var ownFc = gray.Classifier.Weight.Value.Download();
        var notices = Checkpoint.LoadPretrained(gray, pretrained);

        notices.Should().HaveCount(2);
        notices.Should().Contain(n => n.StartsWith("conv1.weight", StringComparison.Ordinal));
        notices.Should().Contain(n => n.StartsWith("fc:", StringComparison.Ordinal) && n.Contains("[10, 32]"));
        float[] w3 = pretrained["conv1.weight"].ToFloat();
        float[] w1 = gray.Stem.Weight.Value.Download();
        for (int o = 0; o < 4; o++)
        {
            for (int i = 0; i < 49; i++)
            {
                w1[o * 49 + i].Should().BeApproximately(w3[(o * 3) * 49 + i] + w3[(o * 3 + 1) * 49 + i] + w3[(o * 3 + 2) * 49 + i], 1e-6f);
            }
        }
        gray.Classifier.Weight.Value.Download().Should().Equal(ownFc);
        gray.Parameters.Single(p => p.Name == "layer3.0.downsample.0.weight").Value.Download()
            .Should().Equal(pretrained["layer3.0.downsample.0.weight"].ToFloat());
    }
}
