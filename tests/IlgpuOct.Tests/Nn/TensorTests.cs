using FluentAssertions;
using IlgpuOct.Kernels;
using IlgpuOct.Nn;
using Xunit;

namespace IlgpuOct.Tests.Nn;

public sealed class TensorTests
{
    [Fact]
    public void Upload_download_zero_and_copy_round_trip()
    {
        using var acc = DeviceSelection.Open("cpu", out _);
        float[] values = Enumerable.Range(0, 24).Select(i => i * 0.5f - 3).ToArray();
        using var t = Tensor.FromHost(acc, values, 2, 3, 2, 2);
        t.Shape.Should().Equal(2, 3, 2, 2);
        t.Length.Should().Be(24);
        t.Dim(-1).Should().Be(2);
        t.Download().Should().Equal(values);
        using var copy = Tensor.Zeros(acc, 2, 3, 2, 2);
        copy.Download().Should().OnlyContain(v => v == 0);
        copy.CopyFrom(t);
        copy.Download().Should().Equal(values);
        t.Zero();
        t.Download().Should().OnlyContain(v => v == 0);
        copy.Download().Should().Equal(values);
    }

    [Fact]
    public void Bad_shapes_and_lengths_are_refused_with_the_shape_in_the_message()
    {
        using var acc = DeviceSelection.Open("cpu", out _);
        var zeroDim = () => Tensor.Zeros(acc, 2, 0, 3);
        zeroDim.Should().Throw<ArgumentException>().WithMessage("*[2, 0, 3]*");
        var wrongLength = () => Tensor.FromHost(acc, new float[5], 2, 3);
        wrongLength.Should().Throw<ArgumentException>().WithMessage("*6 elements*5*");
        using var t = Tensor.Zeros(acc, 2, 3);
        var upload = () => t.Upload(new float[7]);
        upload.Should().Throw<ArgumentException>();
    }

    [Fact]
    public void Reuse_keeps_the_buffer_for_the_same_shape_and_replaces_it_for_another()
    {
        using var acc = DeviceSelection.Open("cpu", out _);
        Tensor? slot = null;
        var first = Tensor.Reuse(ref slot, acc, 4, 8);
        Tensor.Reuse(ref slot, acc, 4, 8).Should().BeSameAs(first);
        var second = Tensor.Reuse(ref slot, acc, 2, 8);
        second.Should().NotBeSameAs(first);
        first.IsDisposed.Should().BeTrue();
        second.Dispose();
    }

    [Fact]
    public void Parameter_holds_value_grad_and_momentum_of_one_shape()
    {
        using var acc = DeviceSelection.Open("cpu", out _);
        using var p = new Parameter("layer1.0.conv1.weight", acc, 8, 4, 3, 3);
        p.Value.Shape.Should().Equal(8, 4, 3, 3);
        p.Grad.Shape.Should().Equal(8, 4, 3, 3);
        p.Momentum.Shape.Should().Equal(8, 4, 3, 3);
        p.Momentum.Download().Should().OnlyContain(v => v == 0);
        p.ToString().Should().Be("layer1.0.conv1.weight (8, 4, 3, 3)");
    }
}
