using FluentAssertions;
using IlgpuOct.Kernels;
using IlgpuOct.Nn;
using IlgpuOct.Nn.Checkpoints;
using IlgpuOct.Tests.Support;
using Xunit;

namespace IlgpuOct.Tests.Nn;

public sealed class ResNetTests
{
    private static float[] RandomValues(int count, int seed, float scale = 1f)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => (float)(random.NextDouble() * scale)).ToArray();
    }

    [Fact]
    public void Width_64_rgb_1000_classes_has_torchvision_names_order_and_parameter_count()
    {
        using var acc = DeviceSelection.Open("cpu", out _);
        using var model = new ResNet18(acc, new ResNetConfig(64, 3, 1000), seed: 0);
        model.Parameters.Should().HaveCount(62);
        model.Parameters.Sum(p => (long)p.Value.Length).Should().Be(11_689_512); // torchvision resnet18()
        model.Parameters.Take(4).Select(p => p.Name).Should().Equal("conv1.weight", "bn1.weight", "bn1.bias", "layer1.0.conv1.weight");
        model.Parameters.TakeLast(2).Select(p => p.Name).Should().Equal("fc.weight", "fc.bias");
        var state = Checkpoint.ExpectedShapes(model);
        state.Should().HaveCount(122); // len(resnet18().state_dict())
        state["layer2.0.downsample.0.weight"].Should().Equal(128, 64, 1, 1);
        state["layer4.1.conv2.weight"].Should().Equal(512, 512, 3, 3);
        state.Keys.Should().NotContain(k => k.StartsWith("layer1.0.downsample", StringComparison.Ordinal));
        state.Keys.Should().Contain("layer3.0.downsample.1.num_batches_tracked");
    }

    [Fact]
    public void Initialisation_is_seeded_kaiming_fan_out_bn_one_zero_and_pytorch_default_linear()
    {
        using var acc = DeviceSelection.Open("cpu", out _);
        using var a = new ResNet18(acc, new ResNetConfig(16, 1, 4), seed: 7);
        using var b = new ResNet18(acc, new ResNetConfig(16, 1, 4), seed: 7);
        using var c = new ResNet18(acc, new ResNetConfig(16, 1, 4), seed: 8);
        foreach (var (pa, pb) in a.Parameters.Zip(b.Parameters))
        {
            pb.Value.Download().Should().Equal(pa.Value.Download(), pa.Name);
        }
        c.Parameters[0].Value.Download().Should().NotEqual(a.Parameters[0].Value.Download());

        float[] w = a.Parameters.Single(p => p.Name == "layer4.0.conv1.weight").Value.Download(); // (128, 64, 3, 3)
        double std = Math.Sqrt(w.Select(v => (double)v * v).Average());
        std.Should().BeApproximately(Math.Sqrt(2.0 / (128 * 9)), 0.03 * Math.Sqrt(2.0 / (128 * 9)));
        Math.Abs(w.Average()).Should().BeLessThan(0.002f);

        double bound = 1 / Math.Sqrt(128);
        float[] fc = a.Classifier.Weight.Value.Download();
        fc.Should().OnlyContain(v => Math.Abs(v) <= bound);
        fc.Max(v => Math.Abs(v)).Should().BeGreaterThan((float)(0.9 * bound));
        a.Classifier.Bias.Value.Download().Should().OnlyContain(v => Math.Abs(v) <= bound);
        foreach (var bn in a.BatchNorms)
        {
            bn.Weight.Value.Download().Should().OnlyContain(v => v == 1f);
            bn.Bias.Value.Download().Should().OnlyContain(v => v == 0f);
            bn.RunningVar.Value.Download().Should().OnlyContain(v => v == 1f);
        }
    }

    [Fact]
    public void Eval_forward_returns_features_and_stage_pools_and_reuses_its_buffers()
    {
        using var acc = DeviceSelection.Open("cpu", out _);
        using var model = new ResNet18(acc, new ResNetConfig(4, 1, 3), seed: 1);
        using var x = Tensor.FromHost(acc, RandomValues(3 * 32 * 32, 2), 3, 1, 32, 32);
        var outputs = model.ForwardEval(x, stagePools: true);
        outputs.Logits.Shape.Should().Equal(3, 3);
        outputs.Features.Shape.Should().Equal(3, 32);
        outputs.StagePools!.Select(t => t.Shape[1]).Should().Equal(4, 8, 16, 32);
        outputs.StagePools![3].Download().Should().Equal(outputs.Features.Download());
        outputs.StagePools!.Should().OnlyContain(t => t.Dim(0) == 3);
        float[] logits = outputs.Logits.Download();

        var again = model.ForwardEval(x);
        again.StagePools.Should().BeNull();
        again.Logits.Should().BeSameAs(outputs.Logits, "activation buffers are allocated once per batch shape");
        again.Logits.Download().Should().Equal(logits);
        model.Forward(x, training: false).Download().Should().Equal(logits);
    }

    [Fact]
    public void Input_gradient_matches_finite_differences_and_input_only_mode_leaves_parameter_gradients_alone()
    {
        using var acc = DeviceSelection.Open("cpu", out _);
        using var model = new ResNet18(acc, new ResNetConfig(2, 1, 3), seed: 4);
        // Non-trivial running statistics, as after training.
        using var warm = Tensor.FromHost(acc, RandomValues(4 * 16 * 16, 9), 4, 1, 16, 16);
        model.Forward(warm, training: true);

        float[] image = RandomValues(2 * 16 * 16, 3);
        float[] weights = RandomValues(2 * 3, 5, 2f).Select(v => v - 1f).ToArray(); // loss = sum(weights * logits)
        using var x = Tensor.FromHost(acc, image, 2, 1, 16, 16);
        using var dLogits = Tensor.FromHost(acc, weights, 2, 3);
        foreach (var p in model.Parameters)
        {
            p.Grad.Upload(Enumerable.Repeat(7f, p.Grad.Length).ToArray());
        }
        model.ForwardEval(x);
        var dx = model.Backward(dLogits, BackwardMode.InputOnly)!.Download();
        foreach (var p in model.Parameters)
        {
            p.Grad.Download().Should().OnlyContain(v => v == 7f, $"{p.Name}'s gradient must not be touched in input-only mode");
        }

        double Loss(float[] input)
        {
            x.Upload(input);
            float[] z = model.ForwardEval(x).Logits.Download();
            return z.Select((v, i) => (double)v * weights[i]).Sum();
        }
        const float eps = 1e-2f;
        var fd = new List<float>();
        var analytic = new List<float>();
        foreach (int i in new[] { 0, 37, 120, 255, 256 + 17, 256 + 200, 511 })
        {
            float[] plus = (float[])image.Clone();
            plus[i] += eps;
            float[] minus = (float[])image.Clone();
            minus[i] -= eps;
            fd.Add((float)((Loss(plus) - Loss(minus)) / (2 * eps)));
            analytic.Add(dx[i]);
        }
        Tolerance.AssertClose(analytic.ToArray(), fd.ToArray(), 2e-3, 5e-2, "d loss / d input vs central differences");
        var trainBackward = () => model.Backward(dLogits, BackwardMode.Parameters);
        trainBackward.Should().Throw<InvalidOperationException>().WithMessage("*evaluation-mode forward*");
    }

    [Fact]
    public void Train_mode_input_only_backward_gives_the_same_input_gradient_without_weight_gradients()
    {
        using var acc = DeviceSelection.Open("cpu", out _);
        using var model = new ResNet18(acc, new ResNetConfig(2, 1, 3), seed: 4);
        using var x = Tensor.FromHost(acc, RandomValues(4 * 16 * 16, 3), 4, 1, 16, 16);
        using var dLogits = Tensor.FromHost(acc, RandomValues(12, 5), 4, 3);
        model.Forward(x, training: true);
        model.Backward(dLogits, BackwardMode.Parameters).Should().BeNull();
        model.Forward(x, training: true);
        float[] full = model.Backward(dLogits, BackwardMode.ParametersAndInput)!.Download();
        float[] stemGrad = model.Stem.Weight.Grad.Download();
        stemGrad.Should().Contain(v => v != 0);
        model.Stem.Weight.Grad.Zero();

        model.Forward(x, training: true);
        float[] inputOnly = model.Backward(dLogits, BackwardMode.InputOnly)!.Download();
        inputOnly.Should().Equal(full);
        model.Stem.Weight.Grad.Download().Should().OnlyContain(v => v == 0);
    }
}
