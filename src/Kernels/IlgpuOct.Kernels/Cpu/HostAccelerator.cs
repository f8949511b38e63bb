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
    /// <summary>Set to 1 to turn the kernel sanitizers on wherever a host accelerator is opened without saying.</summary>
    public const string SanitizeVariable = "ILGPUOCT_SANITIZE";

    private readonly int _maxParallelism;

    /// <param name="kind">cpu or cpu-kernels.</param>
    /// <param name="maxParallelism">Blocks run at once (0: one per core). Results do not depend on it.</param>
    /// <param name="sanitize">racecheck and initcheck of shared memory; null: on when <see cref="SanitizeVariable"/> is 1.</param>
    public HostAccelerator(AcceleratorKind kind, int maxParallelism = 0, bool? sanitize = null)
    {
        if (kind is AcceleratorKind.Cuda or AcceleratorKind.CudaHost)
        {
            throw new ArgumentException("A host accelerator is cpu or cpu-kernels.", nameof(kind));
        }
        Kind = kind;
        _maxParallelism = maxParallelism > 0 ? maxParallelism : Environment.ProcessorCount;
        Sanitize = sanitize ?? Environment.GetEnvironmentVariable(SanitizeVariable) == "1";
    }

    public override AcceleratorKind Kind { get; }

    /// <summary>
    /// Whether kernel launches run compute-sanitizer-like checks of shared memory: racecheck (two
    /// threads of a block touch one element between the same two barriers, one writing, not both
    /// atomically) and initcheck (a read of an element no thread wrote). synccheck (barriers every
    /// live thread must reach) and signed-overflow checks are always on.
    /// </summary>
    public bool Sanitize { get; }

    public override string Name => $"{Environment.ProcessorCount} CPU cores ({CpuFeatures.Describe()})";

    public override bool RunsKernelsOnHost => true;

    protected override DeviceBuffer<T> AllocateCore<T>(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        return new HostBuffer<T>(this, length);
    }

    protected override void CopyFromHostCore<T>(ReadOnlySpan<T> source, View<T> destination) => CopyChecked(source, destination.AsSpan());

    protected override void CopyToHostCore<T>(View<T> source, Span<T> destination) => CopyChecked(source.AsSpan(), destination);

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
                        catch (Exception e) when (e is not (KernelExecutionException or BlockAbortedException))
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

    // Blocks run in parallel, taken in increasing linear order; global atomics keep that order (see
    // BlockOrder), and the error reported is that of the lowest failing block, so a launch gives the
    // same results and the same error in every run and for every core count.
    private void ForEachBlock(KernelDefinition kernel, LaunchConfig config, Action<BlockState> runBlock)
    {
        var grid = config.Grid;
        long blocks = grid.Volume;
        var order = new BlockOrder();
        long next = -1;
        int workers = (int)Math.Min(_maxParallelism, blocks);
        Parallel.For(0, workers, new ParallelOptions { MaxDegreeOfParallelism = workers }, _ =>
        {
            long linear;
            while ((linear = Interlocked.Increment(ref next)) < blocks && !order.FailedBefore(linear))
            {
                int bx = (int)(linear % grid.X);
                long rest = linear / grid.X;
                int by = (int)(rest % grid.Y);
                int bz = (int)(rest / grid.Y);
                var sanitizer = Sanitize ? new KernelSanitizer(kernel.Name, config) : null;
                var block = new BlockState(new Dim3(bx, by, bz), config.Block, grid, config.DynamicSharedBytes, linear, order, sanitizer);
                try
                {
                    using (block.Enter())
                    {
                        runBlock(block);
                    }
                    order.Complete(linear);
                }
                catch (Exception e)
                {
                    order.Fail(linear, e);
                    return;
                }
            }
        });
        if (order.FirstFailure is { } first)
        {
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
/// The order of one launch's blocks: which have finished (a prefix plus a few out of order), and the
/// lowest block that failed. A block's first atomic on global memory waits until every block of lower
/// index has finished; blocks are handed out in increasing order, so the lowest unfinished block never
/// waits and the launch always progresses.
/// </summary>
internal sealed class BlockOrder
{
    private readonly object _gate = new();
    private readonly HashSet<long> _finishedAhead = [];
    private long _finishedPrefix;
    private long _failedIndex = long.MaxValue;
    private Exception? _failure;

    /// <summary>The error of the lowest block that failed by itself (not aborted because a lower one failed).</summary>
    public Exception? FirstFailure => _failure;

    public bool FailedBefore(long linear) => Volatile.Read(ref _failedIndex) < linear;

    public void Complete(long linear)
    {
        lock (_gate)
        {
            _finishedAhead.Add(linear);
            while (_finishedAhead.Remove(_finishedPrefix))
            {
                _finishedPrefix++;
            }
            Monitor.PulseAll(_gate);
        }
    }

    public void Fail(long linear, Exception e)
    {
        if (e is BlockAbortedException)
        {
            return;
        }
        lock (_gate)
        {
            if (linear < _failedIndex)
            {
                _failedIndex = linear;
                _failure = e;
            }
            Monitor.PulseAll(_gate);
        }
    }

    /// <summary>Waits until blocks 0 .. linear-1 have finished; aborts when one of them failed.</summary>
    public void AwaitTurn(long linear)
    {
        lock (_gate)
        {
            while (_finishedPrefix < linear)
            {
                if (_failedIndex < linear)
                {
                    throw new BlockAbortedException();
                }
                Monitor.Wait(_gate);
            }
        }
    }
}

/// <summary>A block stopped waiting for its turn because a block of lower index failed; that one is reported.</summary>
internal sealed class BlockAbortedException() : Exception("A block of lower index failed.");

/// <summary>
/// Steps the threads of one block, each an iterator that yields at barriers (block-wide) and warp
/// shuffles (warp-wide). A barrier opens only when every live thread of the block waits at one; a
/// shuffle resolves only when every live lane of its warp has deposited. synccheck: lanes of one warp
/// waiting at different kinds of synchronisation, a shuffle that reads an absent lane, threads waiting
/// at different barriers, or a thread that ends while others wait at a barrier are reported as the
/// divergence bugs they are on a GPU.
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
    private readonly int[] _barrierLines;
    private int _endedThisPhase = -1;

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
        _barrierLines = new int[count];
        for (int t = 0; t < count; t++)
        {
            _threads[t] = new KernelContext(block, KernelSanitizer.ThreadOf(block, t));
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
            int first = Array.IndexOf(_states, State.AtBarrier);
            if (first < 0)
            {
                return;
            }
            CheckBarrier(first);
            for (int t = first; t < count; t++)
            {
                if (_states[t] == State.AtBarrier)
                {
                    _states[t] = State.Running;
                }
            }
            _endedThisPhase = -1;
            _block.Sanitizer?.NextPhase();
        }
    }

    // Every live thread waits at a barrier now; they must all wait at the same one, and none may have
    // ended since the last barrier (__syncthreads in divergent code is undefined on a GPU).
    private void CheckBarrier(int first)
    {
        int line = _barrierLines[first];
        for (int t = first + 1; t < _threads.Length; t++)
        {
            if (_states[t] == State.AtBarrier && _barrierLines[t] != line)
            {
                throw Unsynchronised($"thread {_threads[first].ThreadIdx} waits at the barrier of line {line} and thread {_threads[t].ThreadIdx} at the barrier of line {_barrierLines[t]}");
            }
        }
        if (_endedThisPhase >= 0)
        {
            throw Unsynchronised($"thread {_threads[_endedThisPhase].ThreadIdx} ended while thread {_threads[first].ThreadIdx} waits at the barrier of line {line}");
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
        catch (Exception e) when (e is not (KernelExecutionException or BlockAbortedException))
        {
            throw HostAccelerator.Fail(_kernel, _config, _block, _threads[t].ThreadIdx, e);
        }
        if (!more)
        {
            _states[t] = State.Done;
            if (_endedThisPhase < 0)
            {
                _endedThisPhase = t;
            }
            return;
        }
        int yielded = _bodies[t].Current;
        switch (yielded & KernelYield.KindMask)
        {
            case KernelYield.Barrier:
                _states[t] = State.AtBarrier;
                _barrierLines[t] = yielded >> 2;
                break;
            case KernelYield.WarpSync:
                _states[t] = State.AtWarpSync;
                break;
            default:
                throw new KernelExecutionException($"Kernel {_kernel.Name}: thread yielded {yielded}, which is no synchronisation point; regenerate the kernel.");
        }
    }

    private void ResolveShuffle(int first, int end)
    {
        for (int t = first; t < end; t++)
        {
            if (_states[t] == State.AtWarpSync && _threads[t].MmaShape != MmaKind.None)
            {
                ResolveMma(first, end, _threads[t].MmaShape);
                return;
            }
        }
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

    // mma.sync is warp-wide: all 32 lanes must be there, at the same shape, and none at a shuffle.
    private void ResolveMma(int first, int end, MmaKind shape)
    {
        if (end - first != KernelContext.WarpSize)
        {
            throw Diverged(first, $"mma.sync needs a full warp of {KernelContext.WarpSize} lanes, but this warp has {end - first} threads (make the block size a multiple of 32)");
        }
        for (int t = first; t < end; t++)
        {
            if (_states[t] != State.AtWarpSync)
            {
                throw Diverged(first, $"lane {t - first} has exited while other lanes wait at mma.sync; all {KernelContext.WarpSize} lanes must execute it");
            }
            if (_threads[t].MmaShape != shape)
            {
                throw Diverged(first, $"lane {t - first} waits at {(_threads[t].MmaShape == MmaKind.None ? "a shuffle" : _threads[t].MmaShape.ToString())} while lane {Array.FindIndex(_threads, first, end - first, c => c.MmaShape == shape) - first} waits at mma.sync {shape}");
            }
        }
        var d = new float[KernelContext.WarpSize][];
        for (int lane = 0; lane < d.Length; lane++)
        {
            d[lane] = _threads[first + lane].MmaAccumulator!;
        }
        try
        {
            if (shape == MmaKind.M16N8K8Tf32)
            {
                TensorCore.MmaM16N8K8Tf32(d, Fragments<float>(first), Fragments<float>(first, b: true));
            }
            else
            {
                TensorCore.MmaM16N8K16Bf16(d, Fragments<uint>(first), Fragments<uint>(first, b: true));
            }
        }
        catch (ArgumentException e)
        {
            throw Diverged(first, e.Message);
        }
        for (int t = first; t < end; t++)
        {
            var ctx = _threads[t];
            ctx.MmaShape = MmaKind.None;
            ctx.MmaAccumulator = null;
            ctx.MmaA = ctx.MmaB = null;
            _states[t] = State.Running;
        }
    }

    private T[][] Fragments<T>(int first, bool b = false)
    {
        var result = new T[KernelContext.WarpSize][];
        for (int lane = 0; lane < result.Length; lane++)
        {
            result[lane] = (T[])(b ? _threads[first + lane].MmaB! : _threads[first + lane].MmaA!);
        }
        return result;
    }

    private KernelExecutionException Unsynchronised(string what) =>
        new($"Kernel {_kernel.Name} ({_config}), block {_block.BlockIdx}: synccheck: {what}. " +
            "On a GPU this is undefined behaviour (it hangs or mixes phases); make every thread of the block reach the same barriers.");

    private KernelExecutionException Diverged(int firstThread, string what) =>
        new($"Kernel {_kernel.Name} ({_config}), block {_block.BlockIdx}, warp {firstThread / KernelContext.WarpSize}: synccheck: {what}. " +
            "On a GPU this is undefined behaviour; make every lane of the warp reach the same synchronisation point.");
}
