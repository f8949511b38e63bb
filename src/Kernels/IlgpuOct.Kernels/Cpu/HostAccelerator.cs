using System.Diagnostics;
using System.Runtime.CompilerServices;

namespace IlgpuOct.Kernels;

/// <summary>
/// The two host accelerators. <c>cpu</c> is the fast engine (operators call their CPU
/// implementations); <c>cpu-kernels</c> runs the C# kernel bodies with CUDA's grid, block,
/// shared-memory and barrier semantics, so kernels are tested without a GPU. Both keep buffers in
/// managed arrays and both can launch kernels.
/// </summary>
public sealed class HostAccelerator : Accelerator
{
    private readonly int _maxParallelism;

    public HostAccelerator(AcceleratorKind kind, int maxParallelism = 0)
    {
        if (kind == AcceleratorKind.Cuda)
        {
            throw new ArgumentException("A host accelerator is cpu or cpu-kernels.", nameof(kind));
        }
        Kind = kind;
        _maxParallelism = maxParallelism > 0 ? maxParallelism : Environment.ProcessorCount;
    }

    public override AcceleratorKind Kind { get; }

    public override string Name => $"{Environment.ProcessorCount} CPU cores ({CpuFeatures.Describe()})";

    public override bool RunsKernelsOnHost => true;

    public override DeviceBuffer<T> Allocate<T>(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        return new HostBuffer<T>(this, length);
    }

    public override void CopyFromHost<T>(ReadOnlySpan<T> source, View<T> destination) => CopyChecked(source, destination.AsSpan());

    public override void CopyToHost<T>(View<T> source, Span<T> destination) => CopyChecked(source.AsSpan(), destination);

    public override void Copy<T>(View<T> source, View<T> destination) => CopyChecked(source.AsSpan(), destination.AsSpan());

    public override void Clear<T>(View<T> destination) => destination.AsSpan().Clear();

    public override void Synchronize()
    {
    }

    public override IDeviceTimer CreateTimer() => new StopwatchTimer();

    public override DeviceMemoryInfo GetMemoryInfo()
    {
        var info = GC.GetGCMemoryInfo();
        long total = info.TotalAvailableMemoryBytes;
        return new DeviceMemoryInfo(Math.Max(0, total - GC.GetTotalMemory(false)), total);
    }

    public override void LaunchOnHost(KernelDefinition kernel, LaunchConfig config, Action<KernelContext> threadBody)
    {
        config.Validate(kernel.Name);
        using var timing = Profiling.LaunchTiming.Start(Profiler, kernel, config);
        ForEachBlock(kernel, config, block =>
        {
            var dim = block.BlockDim;
            for (int z = 0; z < dim.Z; z++)
            {
                for (int y = 0; y < dim.Y; y++)
                {
                    for (int x = 0; x < dim.X; x++)
                    {
                        var ctx = new KernelContext(block, new Dim3(x, y, z));
                        try
                        {
                            threadBody(ctx);
                        }
                        catch (Exception e) when (e is not KernelExecutionException)
                        {
                            throw Fail(kernel, config, block, ctx.ThreadIdx, e);
                        }
                    }
                }
            }
        });
    }

    public override void LaunchOnHost(KernelDefinition kernel, LaunchConfig config, Func<KernelContext, IEnumerator<int>> threadBody)
    {
        config.Validate(kernel.Name);
        using var timing = Profiling.LaunchTiming.Start(Profiler, kernel, config);
        ForEachBlock(kernel, config, block => new BlockStepper(kernel, config, block, threadBody).Run());
    }

    public override void LaunchCompiled(KernelDefinition kernel, LaunchConfig config, ReadOnlySpan<ulong> argumentSlots) =>
        throw new InvalidOperationException($"Kernel {kernel.Name}: the {Id} accelerator runs C# kernel bodies; compiled launches need the cuda accelerator.");

    private void ForEachBlock(KernelDefinition kernel, LaunchConfig config, Action<BlockState> runBlock)
    {
        var grid = config.Grid;
        long blocks = grid.Volume;
        var options = new ParallelOptions { MaxDegreeOfParallelism = _maxParallelism };
        try
        {
            Parallel.For(0L, blocks, options, linear =>
            {
                int bx = (int)(linear % grid.X);
                long rest = linear / grid.X;
                int by = (int)(rest % grid.Y);
                int bz = (int)(rest / grid.Y);
                runBlock(new BlockState(new Dim3(bx, by, bz), config.Block, grid, config.DynamicSharedBytes));
            });
        }
        catch (AggregateException e)
        {
            var first = e.Flatten().InnerExceptions[0];
            throw first as KernelExecutionException ?? new KernelExecutionException($"Kernel {kernel.Name} ({config}) failed: {first.Message}", first);
        }
    }

    internal static KernelExecutionException Fail(KernelDefinition kernel, LaunchConfig config, BlockState block, Dim3 thread, Exception e) =>
        new($"Kernel {kernel.Name} ({config}) failed in block {block.BlockIdx}, thread {thread}: {e.Message}", e);

    private static void CopyChecked<T>(ReadOnlySpan<T> source, Span<T> destination)
    {
        if (source.Length != destination.Length)
        {
            throw new ArgumentException($"Copy of {source.Length} elements into {destination.Length}: lengths must match.");
        }
        source.CopyTo(destination);
    }

    private sealed class StopwatchTimer : IDeviceTimer
    {
        private long _start;
        private long _stop;

        public void Start() => _start = Stopwatch.GetTimestamp();

        public void Stop() => _stop = Stopwatch.GetTimestamp();

        public double ElapsedMilliseconds => Stopwatch.GetElapsedTime(_start, _stop).TotalMilliseconds;

        public void Dispose()
        {
        }
    }
}

/// <summary>
/// Steps the threads of one block, each an iterator that yields at barriers (block-wide) and warp
/// shuffles (warp-wide). A barrier opens only when every live thread of the block waits at one; a
/// shuffle resolves only when every live lane of its warp has deposited. Lanes of one warp waiting
/// at different kinds of synchronisation, or a shuffle that reads an absent lane, are reported as
/// the divergence bugs they are on a GPU.
/// </summary>
internal sealed class BlockStepper
{
    private enum State : byte { Running, AtBarrier, AtWarpSync, Done }

    private readonly KernelDefinition _kernel;
    private readonly LaunchConfig _config;
    private readonly BlockState _block;
    private readonly KernelContext[] _threads;
    private readonly IEnumerator<int>[] _bodies;
    private readonly State[] _states;

    public BlockStepper(KernelDefinition kernel, LaunchConfig config, BlockState block, Func<KernelContext, IEnumerator<int>> threadBody)
    {
        _kernel = kernel;
        _config = config;
        _block = block;
        var dim = block.BlockDim;
        int count = (int)dim.Volume;
        _threads = new KernelContext[count];
        _bodies = new IEnumerator<int>[count];
        _states = new State[count];
        for (int t = 0; t < count; t++)
        {
            int x = t % dim.X;
            int y = t / dim.X % dim.Y;
            int z = t / (dim.X * dim.Y);
            _threads[t] = new KernelContext(block, new Dim3(x, y, z));
            _bodies[t] = threadBody(_threads[t]);
        }
    }

    public void Run()
    {
        int count = _threads.Length;
        int warps = (count + KernelContext.WarpSize - 1) / KernelContext.WarpSize;
        while (true)
        {
            for (int w = 0; w < warps; w++)
            {
                RunWarpToBarrier(w * KernelContext.WarpSize, Math.Min(count, (w + 1) * KernelContext.WarpSize));
            }
            bool anyAtBarrier = false;
            for (int t = 0; t < count; t++)
            {
                if (_states[t] == State.AtBarrier)
                {
                    _states[t] = State.Running;
                    anyAtBarrier = true;
                }
            }
            if (!anyAtBarrier)
            {
                return;
            }
        }
    }

    private void RunWarpToBarrier(int first, int end)
    {
        while (true)
        {
            for (int t = first; t < end; t++)
            {
                if (_states[t] == State.Running)
                {
                    Step(t);
                }
            }
            int atWarp = 0;
            int atBarrier = 0;
            for (int t = first; t < end; t++)
            {
                atWarp += _states[t] == State.AtWarpSync ? 1 : 0;
                atBarrier += _states[t] == State.AtBarrier ? 1 : 0;
            }
            if (atWarp == 0)
            {
                return;
            }
            if (atBarrier > 0)
            {
                throw Diverged(first, $"{atWarp} lanes wait at a warp shuffle while {atBarrier} wait at a block barrier");
            }
            ResolveShuffle(first, end);
        }
    }

    private void Step(int t)
    {
        bool more;
        try
        {
            more = _bodies[t].MoveNext();
        }
        catch (Exception e) when (e is not KernelExecutionException)
        {
            throw HostAccelerator.Fail(_kernel, _config, _block, _threads[t].ThreadIdx, e);
        }
        if (!more)
        {
            _states[t] = State.Done;
            return;
        }
        _states[t] = _bodies[t].Current switch
        {
            KernelYield.Barrier => State.AtBarrier,
            KernelYield.WarpSync => State.AtWarpSync,
            var other => throw new KernelExecutionException($"Kernel {_kernel.Name}: thread yielded {other}, which is no synchronisation point; regenerate the kernel."),
        };
    }

    private void ResolveShuffle(int first, int end)
    {
        for (int t = first; t < end; t++)
        {
            if (_states[t] != State.AtWarpSync)
            {
                continue;
            }
            var ctx = _threads[t];
            int lane = t - first;
            int source = ctx.ShuffleMode switch
            {
                ShuffleMode.Index => ctx.ShuffleArgument & (KernelContext.WarpSize - 1),
                ShuffleMode.Up => lane - ctx.ShuffleArgument,
                ShuffleMode.Down => lane + ctx.ShuffleArgument,
                _ => lane ^ ctx.ShuffleArgument,
            };
            if (source < 0 || source >= KernelContext.WarpSize)
            {
                source = lane; // CUDA: out-of-range up/down shuffles return the caller's own value
            }
            int sourceThread = first + source;
            if (sourceThread >= end || _states[sourceThread] != State.AtWarpSync)
            {
                throw Diverged(first, $"lane {lane} reads lane {source}, which is not taking part in the shuffle (block of {_threads.Length} threads)");
            }
            ctx.ShuffleOutput = _threads[sourceThread].ShuffleValue;
        }
        for (int t = first; t < end; t++)
        {
            if (_states[t] == State.AtWarpSync)
            {
                _threads[t].ShufflePending = false;
                _states[t] = State.Running;
            }
        }
    }

    private KernelExecutionException Diverged(int firstThread, string what) =>
        new($"Kernel {_kernel.Name} ({_config}), block {_block.BlockIdx}, warp {firstThread / KernelContext.WarpSize}: {what}. " +
            "On a GPU this is undefined behaviour; make every lane of the warp reach the same synchronisation point.");
}
