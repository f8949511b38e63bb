using FluentAssertions;
using IlgpuOct.Kernels;
using IlgpuOct.Nn;
using IlgpuOct.Nn.Training;
using IlgpuOct.Tests.Onnx;
using Xunit;

namespace IlgpuOct.Tests.Nn;

/// <summary>ResNet18.Infer (the cpu engine's NHWC inference path) against ForwardEval (NCHW outside, the backward-capable path).</summary>
public sealed class NhwcInferenceTests
{
    [Theory]
    [InlineData(8, 1, 4, 3, 32, 32)]
    [InlineData(4, 3, 2, 2, 40, 36)]
    [InlineData(16, 1, 4, 5, 64, 64)]
    [InlineData(6, 1, 3, 1, 17, 23)]
    // The stem and its pool in chunks of images: 82x82x32 floats of stem output per image, 4 images per 4 MB
    // chunk, so 5 images run as 4 + 1.
    [InlineData(32, 1, 3, 5, 160, 160)]
    public void Infer_equals_forward_eval(int width, int channels, int classes, int n, int h, int w)
    {
        using var acc = DeviceSelection.Open("cpu", out _);
        using var model = new ResNet18(acc, new ResNetConfig(width, channels, classes), seed: width + h);
        OnnxTestSupport.RandomizeBatchNorms(model, 3 + w);
        using var x = Tensor.FromHost(acc, OnnxTestSupport.Uniform(n * channels * h * w, 11 + n, -1f, 1f), n, channels, h, w);
        AssertInferMatchesForwardEval(model, x, $"width {width}, {n}x{channels}x{h}x{w}");
    }

    [Fact]
    public void Buffers_follow_batch_and_resolution_changes()
    {
        using var acc = DeviceSelection.Open("cpu", out _);
        using var model = new ResNet18(acc, new ResNetConfig(8, 1, 4), seed: 4);
        OnnxTestSupport.RandomizeBatchNorms(model, 5);
        // Large batch, then a smaller one (a view of the same buffers), larger again, then other resolutions
        // (re-zeroed buffers: a stale interior value in a new border would change the result).
        foreach (var (n, side, seed) in new[] { (4, 32, 1), (2, 32, 2), (5, 32, 3), (3, 24, 4), (2, 40, 5), (3, 24, 6) })
        {
            using var x = Tensor.FromHost(acc, OnnxTestSupport.Uniform(n * side * side, seed, -1f, 1f), n, 1, side, side);
            AssertInferMatchesForwardEval(model, x, $"{n} images of {side}x{side}");
        }
    }

    [Fact]
    public void Packed_weights_follow_an_sgd_step()
    {
        using var acc = DeviceSelection.Open("cpu", out _);
        using var model = new ResNet18(acc, new ResNetConfig(4, 1, 3), seed: 2);
        OnnxTestSupport.RandomizeBatchNorms(model, 41);
        using var x = Tensor.FromHost(acc, OnnxTestSupport.Uniform(4 * 32 * 32, 5, -1f, 1f), 4, 1, 32, 32);
        using var dLogits = Tensor.FromHost(acc, OnnxTestSupport.Uniform(4 * 3, 6, -1f, 1f), 4, 3);
        float[] before = model.Infer(x).Logits.Download();
        model.Forward(x, training: true);
        model.Backward(dLogits, BackwardMode.Parameters);
        new SgdOptimizer().Step(model.Parameters, 0.5f);
        float[] after = model.Infer(x).Logits.Download();
        after.Should().NotEqual(before);
        AssertInferMatchesForwardEval(model, x, "after an SGD step");
    }

    [Fact]
    public void Backward_after_infer_is_refused_and_forward_eval_restores_it()
    {
        using var acc = DeviceSelection.Open("cpu", out _);
        using var model = new ResNet18(acc, new ResNetConfig(4, 1, 3), seed: 7);
        using var x = Tensor.FromHost(acc, OnnxTestSupport.Uniform(2 * 32 * 32, 8, -1f, 1f), 2, 1, 32, 32);
        using var dLogits = Tensor.FromHost(acc, OnnxTestSupport.Uniform(2 * 3, 9, -1f, 1f), 2, 3);
        model.ForwardEval(x);
        model.Infer(x);
        var backward = () => model.Backward(dLogits, BackwardMode.InputOnly);
        backward.Should().Throw<InvalidOperationException>().WithMessage("Backward after Infer*");
        model.ForwardEval(x);
        model.Backward(dLogits, BackwardMode.InputOnly)!.Length.Should().Be(2 * 32 * 32);
    }

    [Fact]
    public void On_the_kernels_engine_infer_is_forward_eval()
    {
        using var acc = DeviceSelection.Open("cpu-kernels", out _);
        using var model = new ResNet18(acc, new ResNetConfig(4, 1, 3), seed: 3);
        OnnxTestSupport.RandomizeBatchNorms(model, 13);
        using var x = Tensor.FromHost(acc, OnnxTestSupport.Uniform(2 * 16 * 16, 14, -1f, 1f), 2, 1, 16, 16);
        float[] reference = model.ForwardEval(x).Logits.Download();
        model.Infer(x).Logits.Download().Should().Equal(reference);
    }

    private static void AssertInferMatchesForwardEval(ResNet18 model, Tensor x, string what)
    {
        var reference = model.ForwardEval(x, stagePools: true);
        float[] logits = reference.Logits.Download(), features = reference.Features.Download();
        float[][] pools = [.. reference.StagePools!.Select(p => p.Download())];
        var inferred = model.Infer(x, stagePools: true);
        // Both run the same direct convolutions with the same packed weights (ForwardEval converts NCHW around
        // them), and the pools take the same values in the same order: the same bits, not just close values.
        inferred.Logits.Download().Should().Equal(logits, $"Infer logits, {what}");
        inferred.Features.Download().Should().Equal(features, $"Infer features, {what}");
        inferred.StagePools.Should().HaveCount(pools.Length);
        for (int s = 0; s < pools.Length; s++)
        {
            inferred.StagePools![s].Download().Should().Equal(pools[s], $"Infer layer{s + 1} pool, {what}");
        }
        // Without stage pools: the same logits.
        model.Infer(x).Logits.Download().Should().Equal(inferred.Logits.Download());
    }
}
