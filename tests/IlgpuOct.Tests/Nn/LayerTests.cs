using FluentAssertions;
using IlgpuOct.Kernels;
using IlgpuOct.Nn;
using IlgpuOct.Tests.Support;
using Xunit;

namespace IlgpuOct.Tests.Nn;

public sealed class LayerTests
{
    [Fact]
    public void Basic_blocks_have_a_downsample_exactly_where_the_shape_changes()
    {
        using var acc = DeviceSelection.Open("cpu", out _);
        using var same = new BasicBlock(acc, "layer1.0", 8, 8, 1);
        using var down = new BasicBlock(acc, "layer2.0", 8, 16, 2);
        same.DownsampleConv.Should().BeNull();
        same.Parameters.Select(p => p.Name).Should().Equal(
            "layer1.0.conv1.weight", "layer1.0.bn1.weight", "layer1.0.bn1.bias", "layer1.0.conv2.weight", "layer1.0.bn2.weight", "layer1.0.bn2.bias");
        down.Parameters.Select(p => p.Name).Should().EndWith(["layer2.0.downsample.0.weight", "layer2.0.downsample.1.weight", "layer2.0.downsample.1.bias"]);
        down.DownsampleConv!.Stride.Should().Be(2);
        down.DownsampleConv.KernelSize.Should().Be(1);
        using var x = Tensor.Zeros(acc, 2, 8, 9, 9);
        down.Forward(x, training: false).Shape.Should().Equal(2, 16, 5, 5);
        same.Forward(x, training: false).Shape.Should().Equal(2, 8, 9, 9);
    }

    [Fact]
    public void Identity_block_in_eval_mode_is_relu_of_the_main_path_plus_the_input()
    {
        using var acc = DeviceSelection.Open("cpu", out _);
        using var block = new BasicBlock(acc, "b", 2, 2, 1);
        var random = new Random(3);
        foreach (var conv in block.Children.OfType<Conv2dLayer>())
        {
            conv.InitializeKaimingFanOut(random);
        }
        float[] input = Enumerable.Range(0, 2 * 2 * 5 * 5).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        using var x = Tensor.FromHost(acc, input, 2, 2, 5, 5);
        float[] y = block.Forward(x, training: false).Download();

        // The same computation from the block's own sub-layers, with the add and relu done here.
        using var relu = new ReluLayer(acc);
        var h = relu.Forward(block.Bn1.Forward(block.Conv1.Forward(x, false), false), false);
        float[] main = block.Bn2.Forward(block.Conv2.Forward(h, false), false).Download();
        float[] expected = main.Select((m, i) => Math.Max(m + input[i], 0f)).ToArray();
        Tolerance.AssertClose(y, expected, 1e-6, 1e-6, "block output");
        y.Should().Contain(v => v == 0).And.Contain(v => v > 0);
    }

    [Fact]
    public void Layers_refuse_inputs_of_the_wrong_shape_with_what_they_expected()
    {
        using var acc = DeviceSelection.Open("cpu", out _);
        using var conv = new Conv2dLayer(acc, "conv1", 3, 4, 7, 2, 3);
        using var gray = Tensor.Zeros(acc, 1, 1, 8, 8);
        var act = () => conv.Forward(gray, false);
        act.Should().Throw<ArgumentException>().WithMessage("*conv1.weight expects 3 input channels*(1, 1, 8, 8)*");
        using var bn = new BatchNorm2dLayer(acc, "bn1", 4);
        using var single = Tensor.Zeros(acc, 1, 4, 1, 1);
        var bnAct = () => bn.Forward(single, training: true);
        bnAct.Should().Throw<ArgumentException>().WithMessage("*more than one value per channel*");
        using var fc = new LinearLayer(acc, "fc", 8, 2);
        using var wide = Tensor.Zeros(acc, 2, 9);
        var fcAct = () => fc.Forward(wide, false);
        fcAct.Should().Throw<ArgumentException>().WithMessage("*fc.weight expects 8 features*");
        var early = () => new Conv2dLayer(acc, "c", 1, 1, 3, 1, 1).Backward(gray, true);
        early.Should().Throw<InvalidOperationException>().WithMessage("*before Forward*");
    }

    [Fact]
    public void Batch_norm_counts_training_batches_and_updates_running_statistics_only_in_training()
    {
        using var acc = DeviceSelection.Open("cpu", out _);
        using var bn = new BatchNorm2dLayer(acc, "bn", 2);
        float[] input = [1, 2, 3, 4, 10, 10, 10, 10, 5, 6, 7, 8, 10, 10, 10, 10]; // (2, 2, 2, 2)
        using var x = Tensor.FromHost(acc, input, 2, 2, 2, 2);
        bn.Forward(x, training: false);
        bn.BatchesTracked.Should().Be(0);
        bn.RunningMean.Value.Download().Should().Equal(0f, 0f);
        bn.Forward(x, training: true);
        bn.BatchesTracked.Should().Be(1);
        // Channel 0 holds 1..8: mean 4.5, unbiased variance 6; channel 1 is constant 10.
        Tolerance.AssertClose(bn.RunningMean.Value.Download(), [0.45f, 1.0f], 1e-6, 1e-6, "running mean");
        Tolerance.AssertClose(bn.RunningVar.Value.Download(), [0.9f + 0.6f, 0.9f], 1e-5, 1e-5, "running var");
    }
}
