namespace IlgpuOct.Kernels;

public enum AcceleratorKind
{
    /// <summary>The fast CPU engine: operators run their SIMD, multithreaded CPU implementations.</summary>
    Cpu,

    /// <summary>The CPU accelerator: operators run their C# kernels with exact grid/block/barrier semantics.</summary>
    CpuKernels,

    /// <summary>An NVIDIA GPU through the CUDA driver API; kernels compiled by NVRTC.</summary>
    Cuda,

    /// <summary>The generated CUDA C compiled by the host C++ compiler and launched through cuda's argument slots: a checker, not an engine.</summary>
    CudaHost,
}

/// <summary>
/// The arithmetic of the matrix products (GEMM and the convolutions' implicit GEMMs) on an accelerator
/// that runs kernels: FP32 (the default and the golden path), or tensor cores with inputs rounded to
/// TF32 (10-bit mantissa) or BF16 (7-bit mantissa) and FP32 accumulation.
/// </summary>
public enum MatmulPrecision
{
    Fp32,
    Tf32,
    Bf16,
}

/// <summary>Free and total memory of an accelerator, in bytes.</summary>
public readonly record struct DeviceMemoryInfo(long FreeBytes, long TotalBytes);

/// <summary>Times work on an accelerator's stream (CUDA events on GPUs, a stopwatch on the host).</summary>
public interface IDeviceTimer : IDisposable
{
    void Start();

    void Stop();

    /// <summary>Milliseconds between Start and Stop; waits for the Stop point to complete.</summary>
    double ElapsedMilliseconds { get; }
}

/// <summary>
/// One device behind one interface: memory, copies, launches, synchronisation, timing.
/// Generated launchers call <see cref="LaunchOnHost(KernelDefinition, LaunchConfig, Action{KernelContext})"/>
/// when <see cref="RunsKernelsOnHost"/> and <see cref="LaunchCompiled"/> otherwise.
/// </summary>
public abstract class Accelerator : IDisposable
{
    public abstract AcceleratorKind Kind { get; }

    /// <summary>Short name: cpu, cpu-kernels, cuda or cuda-host.</summary>
    public string Id => Kind switch
    {
        AcceleratorKind.Cpu => "cpu",
        AcceleratorKind.CpuKernels => "cpu-kernels",
        AcceleratorKind.CudaHost => "cuda-host",
        _ => "cuda",
    };

    /// <summary>Human-readable device name, e.g. "NVIDIA H100 80GB HBM3 (sm_90)".</summary>
    public abstract string Name { get; }

    /// <summary>True for host accelerators, whose launches call the C# kernel bodies.</summary>
    public abstract bool RunsKernelsOnHost { get; }

    /// <summary>
    /// The precision of matrix products on this accelerator (the one place operators read it; default FP32).
    /// TF32 and BF16 run the tensor-core kernels (mma.sync, sm_80 or later on cuda; emulated exactly on
    /// cpu-kernels and cuda-host). The cpu engine has FP32 only and refuses the others.
    /// </summary>
    public MatmulPrecision Precision
    {
        get => _precision;
        set
        {
            if (value != MatmulPrecision.Fp32 && Kind == AcceleratorKind.Cpu)
            {
                throw new NotSupportedException($"--precision {PrecisionName(value)} needs tensor-core kernels, which the cpu engine does not run; use --device cuda (or cpu-kernels / cuda-host to check them), or --precision fp32.");
            }
            _precision = value;
        }
    }

    private MatmulPrecision _precision = MatmulPrecision.Fp32;

    /// <summary>The option spelling of a precision: fp32, tf32 or bf16.</summary>
    public static string PrecisionName(MatmulPrecision precision) => precision.ToString().ToLowerInvariant();

    /// <summary>Parses fp32, tf32 or bf16 (case-insensitive); a one-line error names the choices.</summary>
    public static MatmulPrecision ParsePrecision(string text) => text.Trim().ToLowerInvariant() switch
    {
        "fp32" => MatmulPrecision.Fp32,
        "tf32" => MatmulPrecision.Tf32,
        "bf16" => MatmulPrecision.Bf16,
        _ => throw new ArgumentException($"Unknown precision '{text}'; use fp32, tf32 or bf16."),
    };

    /// <summary>Sees every operator call dispatched on this accelerator (<see cref="OperatorDispatch.Run"/>), e.g. a profiler; null when none.</summary>
    public IOperatorObserver? OperatorObserver { get; set; }

    /// <summary>When set, operator calls (through <see cref="OperatorDispatch.Run"/>) and kernel launches are recorded there (profile mode: every cuda launch is bracketed by events).</summary>
    public Profiling.Profiler? Profiler { get; set; }

    /// <summary>Allocations and host/device copies made through this accelerator so far (the test of "no host round trips in a step").</summary>
    public TransferCounters Transfers { get; } = new();

    public DeviceBuffer<T> Allocate<T>(int length) where T : unmanaged
    {
        Transfers.CountAllocation((long)Math.Max(length, 0) * System.Runtime.CompilerServices.Unsafe.SizeOf<T>());
        return AllocateCore<T>(length);
    }

    public void CopyFromHost<T>(ReadOnlySpan<T> source, View<T> destination) where T : unmanaged
    {
        Transfers.CountHostToDevice((long)source.Length * System.Runtime.CompilerServices.Unsafe.SizeOf<T>());
        CopyFromHostCore(source, destination);
    }

    public void CopyToHost<T>(View<T> source, Span<T> destination) where T : unmanaged
    {
        Transfers.CountDeviceToHost((long)destination.Length * System.Runtime.CompilerServices.Unsafe.SizeOf<T>());
        CopyToHostCore(source, destination);
    }

    protected abstract DeviceBuffer<T> AllocateCore<T>(int length) where T : unmanaged;

    protected abstract void CopyFromHostCore<T>(ReadOnlySpan<T> source, View<T> destination) where T : unmanaged;

    protected abstract void CopyToHostCore<T>(View<T> source, Span<T> destination) where T : unmanaged;

    public abstract void Copy<T>(View<T> source, View<T> destination) where T : unmanaged;

    /// <summary>Sets every byte of the view to zero.</summary>
    public abstract void Clear<T>(View<T> destination) where T : unmanaged;

    /// <summary>Waits until all work issued so far has finished.</summary>
    public abstract void Synchronize();

    public abstract IDeviceTimer CreateTimer();

    public abstract DeviceMemoryInfo GetMemoryInfo();

    /// <summary>Runs a barrier-free kernel body for every thread of the grid.</summary>
    public abstract void LaunchOnHost(KernelDefinition kernel, LaunchConfig config, Action<KernelContext> threadBody);

    /// <summary>Runs a kernel with barriers or shuffles: each thread is an iterator that yields at every synchronisation point.</summary>
    public abstract void LaunchOnHost(KernelDefinition kernel, LaunchConfig config, Func<KernelContext, IEnumerator<int>> threadBody);

    /// <summary>Launches the compiled kernel; <paramref name="argumentSlots"/> holds one 8-byte slot per CUDA parameter.</summary>
    public abstract void LaunchCompiled(KernelDefinition kernel, LaunchConfig config, ReadOnlySpan<ulong> argumentSlots);

    /// <summary>
    /// Throws unless <paramref name="view"/> is memory this accelerator's kernels can address; generated
    /// launchers call it for every view argument, so a host array given to a GPU launch (or a device
    /// view given to a host launch) fails with the kernel and parameter named instead of faulting.
    /// </summary>
    public virtual void CheckLaunchView<T>(View<T> view, KernelDefinition kernel, string parameter) where T : unmanaged
    {
        if (view.Length == 0 || view.IsDevice != RunsKernelsOnHost)
        {
            return;
        }
        throw new ArgumentException(RunsKernelsOnHost
            ? $"Kernel {kernel.Name}: argument '{parameter}' is device memory ({view}) but {Id} runs kernels on host arrays; pass a buffer this accelerator allocated."
            : $"Kernel {kernel.Name}: argument '{parameter}' is a host array ({view}) but {Id} kernels read only its own memory; copy it with accelerator.Upload(...) and pass that buffer.", parameter);
    }

    /// <summary>Allocates a buffer and copies <paramref name="source"/> into it.</summary>
    public DeviceBuffer<T> Upload<T>(ReadOnlySpan<T> source) where T : unmanaged
    {
        var buffer = Allocate<T>(source.Length);
        CopyFromHost(source, buffer.View);
        return buffer;
    }

    /// <summary>Copies a view to a new host array.</summary>
    public T[] Download<T>(View<T> source) where T : unmanaged
    {
        var result = new T[source.Length];
        CopyToHost(source, result);
        return result;
    }

    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    protected virtual void Dispose(bool disposing)
    {
    }

    public override string ToString() => $"{Id}: {Name}";
}

/// <summary>
/// Counts of device allocations and host/device copies of one accelerator (thread-safe). On the
/// host accelerators a "copy" is the same call a GPU would make, so a test on cpu-kernels or
/// cuda-host sees the transfers cuda would do.
/// </summary>
public sealed class TransferCounters
{
    private long _allocations;
    private long _allocatedBytes;
    private long _hostToDevice;
    private long _hostToDeviceBytes;
    private long _deviceToHost;
    private long _deviceToHostBytes;

    public TransferSnapshot Snapshot() => new(Interlocked.Read(ref _allocations), Interlocked.Read(ref _allocatedBytes),
        Interlocked.Read(ref _hostToDevice), Interlocked.Read(ref _hostToDeviceBytes),
        Interlocked.Read(ref _deviceToHost), Interlocked.Read(ref _deviceToHostBytes));

    internal void CountAllocation(long bytes)
    {
        Interlocked.Increment(ref _allocations);
        Interlocked.Add(ref _allocatedBytes, bytes);
    }

    internal void CountHostToDevice(long bytes)
    {
        Interlocked.Increment(ref _hostToDevice);
        Interlocked.Add(ref _hostToDeviceBytes, bytes);
    }

    internal void CountDeviceToHost(long bytes)
    {
        Interlocked.Increment(ref _deviceToHost);
        Interlocked.Add(ref _deviceToHostBytes, bytes);
    }
}

/// <summary>The counters at one moment; subtract two to get what happened in between.</summary>
public readonly record struct TransferSnapshot(long Allocations, long AllocatedBytes, long HostToDevice, long HostToDeviceBytes, long DeviceToHost, long DeviceToHostBytes)
{
    public static TransferSnapshot operator -(TransferSnapshot after, TransferSnapshot before) => new(
        after.Allocations - before.Allocations, after.AllocatedBytes - before.AllocatedBytes,
        after.HostToDevice - before.HostToDevice, after.HostToDeviceBytes - before.HostToDeviceBytes,
        after.DeviceToHost - before.DeviceToHost, after.DeviceToHostBytes - before.DeviceToHostBytes);

    public override string ToString() =>
        $"{Allocations} allocation(s) ({AllocatedBytes} B), {HostToDevice} host-to-device ({HostToDeviceBytes} B), {DeviceToHost} device-to-host ({DeviceToHostBytes} B)";
}
