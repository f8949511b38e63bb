using FluentAssertions;
using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Operators;
using IlgpuOct.Nn;
using IlgpuOct.Nn.Checkpoints;
using IlgpuOct.Nn.Training;
using IlgpuOct.Tests.Onnx;
using IlgpuOct.Tests.Support;
using Xunit;

namespace IlgpuOct.Tests.Nn;

/// <summary>Evaluation mode runs conv + BN (+ add, ReLU) as one convolution with BN folded in; these compare it with the unfolded layers.</summary>
public sealed class FoldedEvalTests
{
    [Fact]
    public void Folded_eval_forward_equals_the_unfolded_layers_at_64x64()
    {
        using var acc = DeviceSelection.Open("cpu", out _);
        using var model = new ResNet18(acc, new ResNetConfig(16, 1, 4), seed: 5);
        OnnxTestSupport.RandomizeBatchNorms(model, 21);
        using var x = Tensor.FromHost(acc, OnnxTestSupport.Uniform(2 * 64 * 64, 8, -1f, 1f), 2, 1, 64, 64);
        float[] folded = model.ForwardEval(x).Logits.Download();
        float[] unfolded = UnfoldedLogits(model, x);
        Tolerance.AssertClose(folded, unfolded, 1e-4, 1e-3, "folded vs unfolded eval logits");
        // The same again: the fold is cached, and the cached one gives the same bits.
        model.ForwardEval(x).Logits.Download().Should().Equal(folded);
    }

    [Fact]
    public void Folded_input_gradient_of_a_downsampling_block_equals_the_unfolded_layers()
    {
        using var acc = DeviceSelection.Open("cpu", out _);
        using var model = new ResNet18(acc, new ResNetConfig(8, 1, 4), seed: 6);
        OnnxTestSupport.RandomizeBatchNorms(model, 31);
        var block = model.Blocks[2]; // layer2.0: stride 2 with a downsample
        block.DownsampleConv.Should().NotBeNull();
        using var x = Tensor.FromHost(acc, OnnxTestSupport.Uniform(2 * 8 * 12 * 12, 3, -1f, 1f), 2, 8, 12, 12);
        using var dy = Tensor.FromHost(acc, OnnxTestSupport.Uniform(2 * 16 * 6 * 6, 4, -1f, 1f), 2, 16, 6, 6);
        float[] y = block.Forward(x, training: false).Download();
        float[] dx = block.Backward(dy, weightGradients: false)!.Download();

        var (yRef, dxRef) = UnfoldedBlock(block, x, dy.Download());
        Tolerance.AssertClose(y, yRef, 1e-5, 1e-4, "block output");
        Tolerance.AssertClose(dx, dxRef, 1e-5, 1e-4, "block input gradient");
        var weights = () => block.Backward(dy, weightGradients: true);
        weights.Should().Throw<InvalidOperationException>().WithMessage("*evaluation-mode forward*");
    }

    [Fact]
    public void Fold_is_recomputed_after_an_sgd_step_and_after_a_checkpoint_load()
    {
        using var acc = DeviceSelection.Open("cpu", out _);
        var config = new ResNetConfig(4, 1, 3);
        using var model = new ResNet18(acc, config, seed: 2);
        OnnxTestSupport.RandomizeBatchNorms(model, 41);
        using var x = Tensor.FromHost(acc, OnnxTestSupport.Uniform(4 * 32 * 32, 5, -1f, 1f), 4, 1, 32, 32);
        using var dLogits = Tensor.FromHost(acc, OnnxTestSupport.Uniform(4 * 3, 6, -1f, 1f), 4, 3);
        float[] before = model.ForwardEval(x).Logits.Download(); // folds and caches

        // A training step changes every weight and the running statistics.
        model.Forward(x, training: true);
        model.Backward(dLogits, BackwardMode.Parameters);
        new SgdOptimizer().Step(model.Parameters, 0.5f);
        float[] afterStep = model.ForwardEval(x).Logits.Download();
        afterStep.Should().NotEqual(before);
        Tolerance.AssertClose(afterStep, UnfoldedLogits(model, x), 1e-4, 1e-3, "eval logits after an SGD step");

        // Loading another model's checkpoint replaces everything again.
        using var other = new ResNet18(acc, config, seed: 9);
        OnnxTestSupport.RandomizeBatchNorms(other, 77);
        float[] otherLogits = other.ForwardEval(x).Logits.Download();
        Checkpoint.LoadState(model, Checkpoint.ToFile(other, epoch: 1, step: 1, dataChecksum: "test"));
        float[] afterLoad = model.ForwardEval(x).Logits.Download();
        afterLoad.Should().Equal(otherLogits, "the same parameters fold to the same bits");
        Tolerance.AssertClose(afterLoad, UnfoldedLogits(model, x), 1e-4, 1e-3, "eval logits after a checkpoint load");
    }

    [Fact]
    public void Fold_maths_scales_each_output_channel_and_shifts_its_bias()
    {
        float[] weight = [1f, 2f, -3f, 4f]; // (K=2, 2)
        var folded = new float[4];
        var bias = new float[2];
        BatchNorm2d.FoldIntoConvolutionCpu(2, weight, gamma: [2f, 0.5f], beta: [0.1f, -1f], runningMean: [1f, -2f], runningVar: [3f, 0f], folded, bias, epsilon: 1f);
        // s = gamma / sqrt(var + eps) = (1, 0.5); b = beta - mean * s = (-0.9, 0)
        folded.Should().Equal(1f, 2f, -1.5f, 2f);
        bias[0].Should().BeApproximately(-0.9f, 1e-7f);
        bias[1].Should().Be(0f);
    }

    /// <summary>Evaluation logits through the model's own layers one by one (conv, BN, ReLU, add as separate operators).</summary>
    private static float[] UnfoldedLogits(ResNet18 model, Tensor input)
    {
        var acc = model.Accelerator;
        using var pool = new MaxPool2dLayer(acc);
        using var avg = new GlobalAvgPoolLayer(acc);
        var owned = new List<Tensor>();
        try
        {
            var h = pool.Forward(model.BatchNorms.First().Forward(model.Stem.Forward(input, false), false), false);
            foreach (var block in model.Blocks)
            {
                var (values, shape) = UnfoldedBlockOutput(block, h);
                h = Tensor.FromHost(acc, values, shape);
                owned.Add(h);
            }
            return model.Classifier.Forward(avg.Forward(h, false), false).Download();
        }
        finally
        {
            owned.ForEach(t => t.Dispose());
        }
    }

    private static (float[] Values, int[] Shape) UnfoldedBlockOutput(BasicBlock block, Tensor x)
    {
        var main = block.Bn2.Forward(block.Conv2.Forward(block.Bn1.Forward(block.Conv1.Forward(x, false), false), false), false);
        float[] mainValues = main.Download();
        float[] shortcut = block.DownsampleConv is null ? x.Download() : block.DownsampleBn!.Forward(block.DownsampleConv.Forward(x, false), false).Download();
        return (mainValues.Select((m, i) => MathF.Max(m + shortcut[i], 0f)).ToArray(), main.Shape);
    }

    /// <summary>The block's output and input gradient from its sub-layers' own evaluation-mode forward and backward.</summary>
    private static (float[] Y, float[] Dx) UnfoldedBlock(BasicBlock block, Tensor x, float[] dy)
    {
        var acc = block.Accelerator;
        var (y, shape) = UnfoldedBlockOutput(block, x); // also leaves the sub-layers' caches holding this batch
        using var dSum = Tensor.FromHost(acc, dy.Select((g, i) => y[i] > 0 ? g : 0f).ToArray(), shape);
        float[] dMain = block.Conv1.Backward(block.Bn1.Backward(block.Conv2.Backward(block.Bn2.Backward(dSum, false)!, false)!, false)!, false)!.Download();
        float[] dShortcut = block.DownsampleConv!.Backward(block.DownsampleBn!.Backward(dSum, false)!, false)!.Download();
        return (y, dMain.Select((v, i) => v + dShortcut[i]).ToArray());
    }
}
