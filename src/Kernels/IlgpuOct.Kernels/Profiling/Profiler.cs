using System.Diagnostics;

namespace IlgpuOct.Kernels.Profiling;

/// <summary>FLOPs and bytes moved to or from memory by one operator call (its own work, not that of operators it calls).</summary>
public readonly record struct OperatorCost(double Flops, double Bytes)
{
    /// <summary>n elements read (<paramref name="reads"/> arrays) and written (<paramref name="writes"/>), <paramref name="flopsPerElement"/> each, 4-byte floats.</summary>
    public static OperatorCost Elementwise(long n, double flopsPerElement, int reads, int writes) => new(n * flopsPerElement, 4.0 * n * (reads + writes));
}

/// <summary>The device's ceilings: FP32 GFLOP/s and, where known, memory GB/s, with where they came from.</summary>
public sealed record Roofline(double PeakGflops, double? PeakGBytesPerSecond, string Source);

/// <summary>One timed kernel launch (cuda, cpu-kernels) inside operator call <see cref="CallId"/>.</summary>
public sealed record LaunchRecord(string Kernel, long CallId, LaunchConfig Config, double Milliseconds);

/// <summary>One operator call: its cost, and its own wall time (cpu: stopwatch, nested calls subtracted; elsewhere the host time of issuing it).</summary>
public sealed record OperatorCallRecord(long Id, string Operator, OperatorCost? Cost, double ExclusiveMilliseconds);

/// <summary>
/// Where an accelerator in profile mode reports operator calls and kernel launches. Set
/// <see cref="Accelerator.Profiler"/>; operators open a scope at their public entry point
/// (<see cref="OperatorScope.Enter"/>) and the accelerators time each launch (CUDA events on cuda, a
/// stopwatch on cpu-kernels). Not thread-safe: operators are called from one thread.
/// </summary>
public sealed class Profiler
{
    private readonly List<OperatorCallRecord> _calls = [];
    private readonly List<LaunchRecord> _launches = [];
    private readonly List<IPendingLaunch> _pending = [];
    private readonly Stack<OpenCall> _open = new();
    private long _nextId = 1;

    /// <summary>The operator call launches are attributed to (0 outside any operator).</summary>
    internal long CurrentCallId => _open.Count > 0 ? _open.Peek().Id : 0;

    /// <summary>NVTX ranges (cuda): pushed per operator when libnvToolsExt loads.</summary>
    internal Nvtx? Ranges { get; set; }

    public IReadOnlyList<OperatorCallRecord> Calls => _calls;

    /// <summary>Launches whose times are known (call <see cref="Resolve"/> first on cuda).</summary>
    public IReadOnlyList<LaunchRecord> Launches => _launches;

    /// <summary>Pushes an NVTX range named after each operator when libnvToolsExt can be loaded; false with the reason otherwise.</summary>
    public bool EnableNvtx(out string reason)
    {
        Ranges = Nvtx.TryLoad(out reason);
        return Ranges is not null;
    }

    /// <summary>Forgets everything recorded so far (e.g. after warm-up steps).</summary>
    public void Clear()
    {
        Resolve();
        _calls.Clear();
        _launches.Clear();
    }

    /// <summary>Waits for pending device timings (CUDA events) and turns them into launch records.</summary>
    public void Resolve()
    {
        foreach (var pending in _pending)
        {
            _launches.Add(pending.Complete());
        }
        _pending.Clear();
    }

    internal void BeginCall(string op, OperatorCost? cost)
    {
        _open.Push(new OpenCall(_nextId++, op, cost, Stopwatch.GetTimestamp()));
        Ranges?.Push(op);
    }

    internal void EndCall()
    {
        var call = _open.Pop();
        Ranges?.Pop();
        double total = Stopwatch.GetElapsedTime(call.Start).TotalMilliseconds;
        if (_open.Count > 0)
        {
            _open.Peek().ChildMilliseconds += total;
        }
        _calls.Add(new OperatorCallRecord(call.Id, call.Operator, call.Cost, Math.Max(0, total - call.ChildMilliseconds)));
    }

    /// <summary>A launch timed on the host (cpu-kernels).</summary>
    internal void AddLaunch(KernelDefinition kernel, LaunchConfig config, double milliseconds) =>
        _launches.Add(new LaunchRecord(kernel.Name, CurrentCallId, config, milliseconds));

    /// <summary>A launch whose time the device reports later (cuda events).</summary>
    internal void AddPending(IPendingLaunch launch) => _pending.Add(launch);

    private sealed class OpenCall(long id, string op, OperatorCost? cost, long start)
    {
        public long Id { get; } = id;

        public string Operator { get; } = op;

        public OperatorCost? Cost { get; } = cost;

        public long Start { get; } = start;

        public double ChildMilliseconds { get; set; }
    }
}

/// <summary>A launch bracketed by device events; <see cref="Complete"/> waits for them.</summary>
internal interface IPendingLaunch
{
    LaunchRecord Complete();
}

/// <summary>One operator call in profile mode, opened by <see cref="OperatorDispatch.Run(Accelerator, string, OperatorCost?, Action, Action)"/> (and by kernel-only entry points that do not dispatch). Free when not profiling.</summary>
public readonly struct OperatorScope : IDisposable
{
    private readonly Profiler? _profiler;

    private OperatorScope(Profiler profiler) => _profiler = profiler;

    public static OperatorScope Enter(Accelerator accelerator, string op, OperatorCost? cost)
    {
        var profiler = accelerator?.Profiler;
        if (profiler is null)
        {
            return default;
        }
        profiler.BeginCall(op, cost);
        return new OperatorScope(profiler);
    }

    public void Dispose() => _profiler?.EndCall();
}

/// <summary>Times one host launch (cpu-kernels) when a profiler is attached: <c>using var t = LaunchTiming.Start(Profiler, kernel, config);</c>.</summary>
internal readonly struct LaunchTiming : IDisposable
{
    private readonly Profiler? _profiler;
    private readonly KernelDefinition? _kernel;
    private readonly LaunchConfig _config;
    private readonly long _start;

    private LaunchTiming(Profiler profiler, KernelDefinition kernel, LaunchConfig config)
    {
        _profiler = profiler;
        _kernel = kernel;
        _config = config;
        _start = Stopwatch.GetTimestamp();
    }

    public static LaunchTiming Start(Profiler? profiler, KernelDefinition kernel, LaunchConfig config) =>
        profiler is null ? default : new LaunchTiming(profiler, kernel, config);

    public void Dispose() => _profiler?.AddLaunch(_kernel!, _config, Stopwatch.GetElapsedTime(_start).TotalMilliseconds);
}
