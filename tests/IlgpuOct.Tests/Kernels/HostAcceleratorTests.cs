using FluentAssertions;
using IlgpuOct.Kernels;
using Xunit;

namespace IlgpuOct.Tests.Kernels;

/// <summary>
/// The block stepper's semantics, driven by hand-written iterators of the shape the generator emits
/// (a barrier is <c>yield return KernelYield.Barrier</c>; a shuffle deposits, yields WarpSync, reads).
/// </summary>
public sealed class HostAcceleratorTests
{
    private static readonly KernelDefinition Probe = new("Tests.Probe", "probe", "", "", "", true, true, 0, "test");

    [Fact]
    public void Barrier_orders_writes_before_reads_across_the_block()
    {
        using var acc = new HostAccelerator(AcceleratorKind.CpuKernels);
        var output = new int[4 * 128];
        var view = new View<int>(output);
        // Each thread writes its index to shared memory, passes a barrier, then reads its mirror
        // neighbour: only correct if every write happened before any read.
        acc.LaunchOnHost(Probe, new LaunchConfig(4, 128), ctx => MirrorThroughShared(ctx, view));
        for (int b = 0; b < 4; b++)
        {
            for (int t = 0; t < 128; t++)
            {
                output[b * 128 + t].Should().Be(b * 1000 + (127 - t), $"block {b} thread {t}");
            }
        }
    }

    private static IEnumerator<int> MirrorThroughShared(KernelContext ctx, View<int> output)
    {
        var shared = ctx.Shared<int>(128);
        int t = ctx.ThreadIdx.X;
        shared[t] = ctx.BlockIdx.X * 1000 + t;
        yield return KernelYield.Barrier;
        output[ctx.GlobalX] = shared[127 - t];
    }

    [Fact]
    public void Shared_memory_is_private_to_each_block_and_poisoned_before_writes()
    {
        using var acc = new HostAccelerator(AcceleratorKind.CpuKernels);
        var sums = new float[8];
        var firstRead = new float[8];
        var sumView = new View<float>(sums);
        var firstView = new View<float>(firstRead);
        acc.LaunchOnHost(Probe, new LaunchConfig(8, 64), ctx => BlockSum(ctx, sumView, firstView));
        for (int b = 0; b < 8; b++)
        {
            sums[b].Should().Be(64 * (b + 1), $"block {b} must sum only its own shared array");
            float.IsNaN(firstRead[b]).Should().BeTrue("shared memory read before any write is poisoned with NaN");
        }
    }

    private static IEnumerator<int> BlockSum(KernelContext ctx, View<float> sums, View<float> firstRead)
    {
        var shared = ctx.Shared<float>(64);
        int t = ctx.ThreadIdx.X;
        if (t == 0)
        {
            firstRead[ctx.BlockIdx.X] = shared[0];
        }
        yield return KernelYield.Barrier;
        shared[t] = ctx.BlockIdx.X + 1;
        yield return KernelYield.Barrier;
        for (int stride = 32; stride > 0; stride >>= 1)
        {
            if (t < stride)
            {
                shared[t] += shared[t + stride];
            }
            yield return KernelYield.Barrier;
        }
        if (t == 0)
        {
            sums[ctx.BlockIdx.X] = shared[0];
        }
    }

    [Fact]
    public void Atomics_under_contention_lose_no_update()
    {
        using var acc = new HostAccelerator(AcceleratorKind.CpuKernels);
        var counter = new int[1];
        var total = new float[1];
        var max = new float[] { float.NegativeInfinity };
        var c = new View<int>(counter);
        var s = new View<float>(total);
        var m = new View<float>(max);
        acc.LaunchOnHost(Probe, new LaunchConfig(256, 256), ctx =>
        {
            Atomic.Add(ref c[0], 1);
            Atomic.Add(ref s[0], 0.5f);
            Atomic.Max(ref m[0], ctx.GlobalX);
        });
        counter[0].Should().Be(256 * 256);
        total[0].Should().Be(256 * 256 * 0.5f);
        max[0].Should().Be(256 * 256 - 1);
    }

    [Theory]
    [InlineData(ShuffleMode.Down, 1)]
    [InlineData(ShuffleMode.Down, 16)]
    [InlineData(ShuffleMode.Up, 3)]
    [InlineData(ShuffleMode.Xor, 5)]
    [InlineData(ShuffleMode.Index, 7)]
    public void Shuffles_follow_cuda_lane_rules(ShuffleMode mode, int argument)
    {
        using var acc = new HostAccelerator(AcceleratorKind.CpuKernels);
        var output = new int[64];
        var view = new View<int>(output);
        acc.LaunchOnHost(Probe, new LaunchConfig(1, 64), ctx => ShuffleOnce(ctx, view, mode, argument));
        for (int t = 0; t < 64; t++)
        {
            int lane = t % 32;
            int source = mode switch
            {
                ShuffleMode.Down => lane + argument < 32 ? lane + argument : lane,
                ShuffleMode.Up => lane - argument >= 0 ? lane - argument : lane,
                ShuffleMode.Xor => lane ^ argument,
                _ => argument,
            };
            output[t].Should().Be(100 * t + (source - lane), $"thread {t}");
        }
    }

    private static IEnumerator<int> ShuffleOnce(KernelContext ctx, View<int> output, ShuffleMode mode, int argument)
    {
        int t = ctx.ThreadIdx.X;
        ctx.ShuffleDeposit(t, mode, argument);
        yield return KernelYield.WarpSync;
        int got = ctx.ShuffleResult<int>();
        output[t] = 100 * t + (got - t);
    }

    [Fact]
    public void Warp_reduction_by_shuffle_down_sums_every_lane()
    {
        using var acc = new HostAccelerator(AcceleratorKind.CpuKernels);
        var output = new float[4];
        var view = new View<float>(output);
        acc.LaunchOnHost(Probe, new LaunchConfig(1, 128), ctx => WarpSum(ctx, view));
        output.Should().Equal(Enumerable.Range(0, 4).Select(w => (float)Enumerable.Range(w * 32, 32).Sum()));
    }

    private static IEnumerator<int> WarpSum(KernelContext ctx, View<float> output)
    {
        float v = ctx.ThreadIdx.X;
        for (int offset = 16; offset > 0; offset >>= 1)
        {
            ctx.ShuffleDeposit(v, ShuffleMode.Down, offset);
            yield return KernelYield.WarpSync;
            v += ctx.ShuffleResult<float>();
        }
        if (ctx.LaneIdx == 0)
        {
            output[ctx.WarpIdx] = v;
        }
    }

    [Fact]
    public void Lanes_split_between_barrier_and_shuffle_are_reported_as_divergence()
    {
        using var acc = new HostAccelerator(AcceleratorKind.CpuKernels);
        var act = () => acc.LaunchOnHost(Probe, new LaunchConfig(1, 32), ctx => Diverge(ctx));
        act.Should().Throw<KernelExecutionException>().WithMessage("*warp 0*shuffle*barrier*");
    }

    private static IEnumerator<int> Diverge(KernelContext ctx)
    {
        if (ctx.LaneIdx < 16)
        {
            ctx.ShuffleDeposit(1, ShuffleMode.Down, 1);
            yield return KernelYield.WarpSync;
        }
        else
        {
            yield return KernelYield.Barrier;
        }
    }

    [Fact]
    public void Out_of_range_access_names_kernel_block_and_thread()
    {
        using var acc = new HostAccelerator(AcceleratorKind.CpuKernels);
        var data = new View<float>(new float[100]);
        var act = () => acc.LaunchOnHost(Probe, LaunchConfig.For1D(128, 64), ctx => data[ctx.GlobalX] = 1f);
        act.Should().Throw<KernelExecutionException>()
            .WithMessage("*Tests.Probe*block (1,0,0), thread (36,0,0)*element 100*length 100*");
    }

    [Fact]
    public void Invalid_launch_shapes_are_rejected_with_the_value()
    {
        using var acc = new HostAccelerator(AcceleratorKind.CpuKernels);
        var act = () => acc.LaunchOnHost(Probe, new LaunchConfig(1, 2048), _ => { });
        act.Should().Throw<ArgumentOutOfRangeException>().WithMessage("*block 2048*at most 1024*");
    }
}
