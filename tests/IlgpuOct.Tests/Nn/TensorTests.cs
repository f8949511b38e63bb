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
    public void ReuseLargest_keeps_the_largest_buffer_and_hands_out_views_of_it()
    {
        using var acc = new HostAccelerator(AcceleratorKind.CpuKernels);
        Tensor? slot = null;
        var before = acc.Transfers.Snapshot();
        var full = Tensor.ReuseLargest(ref slot, acc, 4, 8);
        full.Upload([.. Enumerable.Range(0, 32).Select(i => (float)i)]);
        var half = Tensor.ReuseLargest(ref slot, acc, 2, 8);
        half.Shape.Should().Equal(2, 8);
        half.Length.Should().Be(16);
        half.Download().Should().Equal(Enumerable.Range(0, 16).Select(i => (float)i), "a smaller batch is the first rows of the kept buffer");
        Tensor.ReuseLargest(ref slot, acc, 4, 8).Download().Should().HaveCount(32);
        (acc.Transfers.Snapshot() - before).Allocations.Should().Be(1, "alternating batch sizes allocate only for the largest");
        var larger = Tensor.ReuseLargest(ref slot, acc, 6, 8);
        larger.Shape.Should().Equal(6, 8);
        (acc.Transfers.Snapshot() - before).Allocations.Should().Be(2, "a batch larger than every one before gets a new buffer");
        larger.Dispose();
        larger.IsDisposed.Should().BeTrue();
    }

    [Fact]
    public void Rows_is_a_view_that_shares_memory_and_frees_nothing()
    {
        using var acc = DeviceSelection.Open("cpu", out _);
        using var t = Tensor.FromHost(acc, [.. Enumerable.Range(0, 12).Select(i => (float)i)], 3, 2, 2);
        var middle = t.Rows(1, 1);
        middle.Shape.Should().Equal(1, 2, 2);
        middle.Download().Should().Equal(4f, 5f, 6f, 7f);
        middle.Upload([40f, 50f, 60f, 70f]);
        t.Download().Should().Equal(0f, 1f, 2f, 3f, 40f, 50f, 60f, 70f, 8f, 9f, 10f, 11f);
        middle.Dispose();
        t.IsDisposed.Should().BeFalse("disposing a view leaves its tensor alone");
        var outside = () => t.Rows(2, 2);
        outside.Should().Throw<ArgumentOutOfRangeException>().WithMessage("*[2, 4)*3 rows*");
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
