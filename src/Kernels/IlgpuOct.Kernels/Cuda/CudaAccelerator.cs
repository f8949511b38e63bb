using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Text;

namespace IlgpuOct.Kernels.Cuda;

/// <summary>
/// An NVIDIA GPU through the driver API: the device's primary context, one stream for every copy
/// and launch (so work runs in issue order), kernels compiled by NVRTC once per process (and cached
/// on disk). Any thread may call it: each entry point makes the context current on the caller.
/// Set ILGPUOCT_CUDA_SYNC=1 to wait after every launch, so an asynchronous fault names its kernel.
/// </summary>
public sealed unsafe class CudaAccelerator : Accelerator
{
    /// <summary>Dynamic shared memory above this needs an explicit opt-in per function.</summary>
    private const int DefaultDynamicSharedLimit = 48 * 1024;

    // The accelerator whose context this thread last made current (an instance, not a handle: a
    // primary context released and retained again may come back with the same handle).
    [ThreadStatic]
    private static CudaAccelerator? _boundOnThread;

    private readonly int _deviceHandle;
    private readonly nint _context;
    private readonly nint _stream;
    private readonly ConcurrentDictionary<KernelDefinition, Lazy<LoadedKernel>> _kernels = new(ReferenceEqualityComparer.Instance);
    private readonly KernelCache _cache;
    private readonly bool _syncEveryLaunch;
    private string? _lastLaunch;
    private bool _disposed;

    private CudaAccelerator(CudaDeviceInfo device, int driverVersion, Nvrtc nvrtc, KernelCache cache)
    {
        Device = device;
        DriverVersion = driverVersion;
        Compiler = nvrtc;
        _cache = cache;
        Target = nvrtc.ChooseTarget(device.ComputeCapability);
        _syncEveryLaunch = Environment.GetEnvironmentVariable("ILGPUOCT_CUDA_SYNC") == "1";
        // The driver's device handle, which the context calls take (it need not equal the ordinal).
        CudaDriver.Check(CudaDriver.cuDeviceGet(out _deviceHandle, device.Ordinal), $"cuDeviceGet({device.Ordinal})");
        CudaDriver.Check(CudaDriver.cuDevicePrimaryCtxRetain(out _context, _deviceHandle), $"cuDevicePrimaryCtxRetain(device {device.Ordinal})");
        try
        {
            Bind();
            // Flags 0: a blocking stream, ordered with the legacy default stream other libraries may use.
            CudaDriver.Check(CudaDriver.cuStreamCreate(out _stream, 0), "cuStreamCreate");
        }
        catch
        {
            CudaDriver.cuDevicePrimaryCtxRelease(_deviceHandle);
            throw;
        }
    }

    /// <summary>Opens device <paramref name="ordinal"/>; the driver must be loaded and initialised (see <see cref="CudaProbe"/>).</summary>
    internal static CudaAccelerator Open(int ordinal, int driverVersion, Nvrtc nvrtc, KernelCache? cache = null) =>
        new(CudaProbe.QueryDevice(ordinal), driverVersion, nvrtc, cache ?? new KernelCache());

    public override AcceleratorKind Kind => AcceleratorKind.Cuda;

    public override string Name => $"{Device.Name} (sm_{Device.ComputeCapability})";

    public override bool RunsKernelsOnHost => false;

    public CudaDeviceInfo Device { get; }

    /// <summary>cuDriverGetVersion, e.g. 12040 for CUDA 12.4.</summary>
    public int DriverVersion { get; }

    public Nvrtc Compiler { get; }

    /// <summary>What NVRTC emits for this device (CUBIN for its own architecture where possible).</summary>
    public NvrtcTarget Target { get; }

    protected override DeviceBuffer<T> AllocateCore<T>(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        Bind();
        long bytes = (long)length * Unsafe.SizeOf<T>();
        ulong pointer = 0;
        if (bytes > 0)
        {
            CudaDriver.Check(CudaDriver.cuMemAlloc(out pointer, (nuint)bytes), $"cuMemAlloc({bytes} bytes for {length} x {typeof(T).Name})");
        }
        return new CudaBuffer<T>(this, pointer, length);
    }

    internal void Free(ulong pointer)
    {
        // After Dispose the context is released and the memory with it.
        if (_disposed || pointer == 0)
        {
            return;
        }
        Bind();
        CudaDriver.Check(CudaDriver.cuMemFree(pointer), "cuMemFree");
    }

    protected override void CopyFromHostCore<T>(ReadOnlySpan<T> source, View<T> destination)
    {
        CheckLengths(source.Length, destination, "CopyFromHost");
        if (source.Length == 0)
        {
            return;
        }
        Bind();
        fixed (T* p = source)
        {
            CudaDriver.Check(CudaDriver.cuMemcpyHtoDAsync(destination.DevicePointer, p, Bytes<T>(source.Length), _stream), "cuMemcpyHtoDAsync");
            // The host memory is pageable and only pinned for this call: wait until the copy has it.
            SynchronizeStream("cuStreamSynchronize after a host-to-device copy");
        }
    }

    protected override void CopyToHostCore<T>(View<T> source, Span<T> destination)
    {
        CheckLengths(destination.Length, source, "CopyToHost");
        if (destination.Length == 0)
        {
            return;
        }
        Bind();
        fixed (T* p = destination)
        {
            CudaDriver.Check(CudaDriver.cuMemcpyDtoHAsync(p, source.DevicePointer, Bytes<T>(destination.Length), _stream), "cuMemcpyDtoHAsync");
            SynchronizeStream("cuStreamSynchronize after a device-to-host copy");
        }
    }

    public override void Copy<T>(View<T> source, View<T> destination)
    {
        if (source.Length != destination.Length)
        {
            throw new ArgumentException($"Copy of {source.Length} elements into {destination.Length}: lengths must match.");
        }
        if (source.Length == 0)
        {
            return;
        }
        RequireDevice(source, "Copy source");
        RequireDevice(destination, "Copy destination");
        Bind();
        CudaDriver.Check(CudaDriver.cuMemcpyDtoDAsync(destination.DevicePointer, source.DevicePointer, Bytes<T>(source.Length), _stream), "cuMemcpyDtoDAsync");
    }

    public override void Clear<T>(View<T> destination)
    {
        if (destination.Length == 0)
        {
            return;
        }
        RequireDevice(destination, "Clear");
        Bind();
        CudaDriver.Check(CudaDriver.cuMemsetD8Async(destination.DevicePointer, 0, Bytes<T>(destination.Length), _stream), "cuMemsetD8Async");
    }

    public override void Synchronize()
    {
        Bind();
        SynchronizeStream("cuStreamSynchronize");
    }

    public override IDeviceTimer CreateTimer()
    {
        Bind();
        return new EventTimer(this);
    }

    public override DeviceMemoryInfo GetMemoryInfo()
    {
        Bind();
        CudaDriver.Check(CudaDriver.cuMemGetInfo(out nuint free, out nuint total), "cuMemGetInfo");
        return new DeviceMemoryInfo((long)free, (long)total);
    }

    public override void LaunchOnHost(KernelDefinition kernel, LaunchConfig config, Action<KernelContext> threadBody) =>
        throw new NotSupportedException($"Kernel {kernel.Name}: the cuda accelerator runs compiled kernels only; C# kernel bodies run on cpu-kernels.");

    public override void LaunchOnHost(KernelDefinition kernel, LaunchConfig config, Func<KernelContext, IEnumerator<int>> threadBody) =>
        throw new NotSupportedException($"Kernel {kernel.Name}: the cuda accelerator runs compiled kernels only; C# kernel bodies run on cpu-kernels.");

    public override void LaunchCompiled(KernelDefinition kernel, LaunchConfig config, ReadOnlySpan<ulong> argumentSlots)
    {
        ArgumentNullException.ThrowIfNull(kernel);
        config.Validate(kernel.Name);
        CheckArgumentCount(kernel, argumentSlots.Length);
        Bind();
        var loaded = Load(kernel);
        EnsureDynamicShared(kernel, loaded, config);

        int count = argumentSlots.Length;
        // cuLaunchKernel copies every parameter before it returns, so stack memory is enough.
        ulong* slots = stackalloc ulong[Math.Max(1, count)];
        void** pointers = stackalloc void*[Math.Max(1, count)];
        for (int i = 0; i < count; i++)
        {
            slots[i] = argumentSlots[i];
            pointers[i] = &slots[i];
        }
        var timing = Profiler is null ? null : new EventLaunch(this, kernel, config, Profiler.CurrentCallId);
        int result = CudaDriver.cuLaunchKernel(
            loaded.Function,
            (uint)config.Grid.X, (uint)config.Grid.Y, (uint)config.Grid.Z,
            (uint)config.Block.X, (uint)config.Block.Y, (uint)config.Block.Z,
            (uint)config.DynamicSharedBytes, _stream, count == 0 ? null : pointers, null);
        if (result != CudaDriver.Success)
        {
            timing?.Dispose();
            throw new CudaException($"cuLaunchKernel({kernel.Name}, {config})", result, CudaDriver.Describe(result), LaunchAdvice(kernel, loaded, config, result));
        }
        if (timing is not null)
        {
            timing.Stop();
            Profiler!.AddPending(timing);
        }
        _lastLaunch = $"{kernel.Name} ({config})";
        if (_syncEveryLaunch)
        {
            int synced = CudaDriver.cuStreamSynchronize(_stream);
            if (synced != CudaDriver.Success)
            {
                throw new CudaException($"kernel {kernel.Name} ({config}), found by ILGPUOCT_CUDA_SYNC=1", synced, CudaDriver.Describe(synced), CudaDriver.AdviceFor(synced));
            }
        }
    }

    /// <summary>
    /// The FP32 and memory ceilings from the driver: SMs x SM clock x FP32 lanes per SM (the
    /// architecture table) x 2 (FMA), and 2 (double data rate) x memory clock x bus width / 8.
    /// Null with <paramref name="reason"/> when the architecture is not in the table or the driver
    /// does not report a clock (CUDA 13 may drop the clock attributes).
    /// </summary>
    public Profiling.Roofline? Roofline(out string reason)
    {
        Bind();
        var arch = Profiling.GpuArchitecture.Find(Device.ComputeCapability);
        if (arch is null)
        {
            reason = $"sm_{Device.ComputeCapability} is not in the architecture table (FP32 lanes per SM unknown)";
            return null;
        }
        CudaDriver.Check(CudaDriver.cuDeviceGet(out int device, Device.Ordinal), "cuDeviceGet");
        if (CudaDriver.cuDeviceGetAttribute(out int clockKhz, CudaDriver.AttributeClockRate, device) != CudaDriver.Success || clockKhz <= 0)
        {
            reason = "the driver does not report the SM clock (CU_DEVICE_ATTRIBUTE_CLOCK_RATE)";
            return null;
        }
        double gflops = Device.MultiprocessorCount * (clockKhz * 1e3) * arch.Fp32LanesPerSm * 2 / 1e9;
        string source = $"{Device.MultiprocessorCount} SMs x {clockKhz / 1e6:F3} GHz x {arch.Fp32LanesPerSm} FP32 lanes ({arch.Name}) x 2";
        double? gbytes = null;
        if (CudaDriver.cuDeviceGetAttribute(out int memoryKhz, CudaDriver.AttributeMemoryClockRate, device) == CudaDriver.Success && memoryKhz > 0
            && CudaDriver.cuDeviceGetAttribute(out int busBits, CudaDriver.AttributeGlobalMemoryBusWidth, device) == CudaDriver.Success && busBits > 0)
        {
            gbytes = 2 * (memoryKhz * 1e3) * (busBits / 8.0) / 1e9;
            source += $"; 2 x {memoryKhz / 1e6:F3} GHz memory clock x {busBits}-bit bus";
        }
        reason = "";
        return new Profiling.Roofline(gflops, gbytes, source);
    }

    /// <summary>Compiles (or fetches from the cache) and loads a kernel now instead of at its first launch.</summary>
    public void Preload(KernelDefinition kernel)
    {
        Bind();
        Load(kernel);
    }

    protected override void Dispose(bool disposing)
    {
        if (_disposed)
        {
            return;
        }
        Bind();
        CudaDriver.cuStreamSynchronize(_stream);
        foreach (var entry in _kernels.Values)
        {
            if (entry.IsValueCreated)
            {
                try
                {
                    CudaDriver.cuModuleUnload(entry.Value.Module);
                }
                catch (CudaException)
                {
                }
            }
        }
        _kernels.Clear();
        CudaDriver.cuStreamDestroy(_stream);
        _disposed = true;
        CudaDriver.cuDevicePrimaryCtxRelease(_deviceHandle);
        if (ReferenceEquals(_boundOnThread, this))
        {
            _boundOnThread = null;
        }
    }

    private LoadedKernel Load(KernelDefinition kernel)
    {
        var lazy = _kernels.GetOrAdd(kernel, k => new Lazy<LoadedKernel>(() => Compile(k), LazyThreadSafetyMode.ExecutionAndPublication));
        try
        {
            return lazy.Value;
        }
        catch
        {
            // Let a later call try again (e.g. after the cache folder was fixed) instead of caching the failure.
            _kernels.TryRemove(new KeyValuePair<KernelDefinition, Lazy<LoadedKernel>>(kernel, lazy));
            throw;
        }
    }

    private LoadedKernel Compile(KernelDefinition kernel)
    {
        Bind();
        byte[] image = _cache.GetOrCompile(kernel, Compiler, Target, DriverVersion, Device.ComputeCapability, out _);
        nint module;
        try
        {
            module = LoadModule(kernel, image, Target);
        }
        catch (CudaException e) when (Target.Output == NvrtcOutput.Cubin && e.Result is CudaDriver.ErrorNoBinaryForGpu or CudaDriver.ErrorInvalidImage or CudaDriver.ErrorUnsupportedPtxVersion)
        {
            // A CUBIN the driver refuses (e.g. made by a newer NVRTC): fall back to PTX for the same architecture.
            var ptx = new NvrtcTarget(Target.Architecture, NvrtcOutput.Ptx);
            image = _cache.GetOrCompile(kernel, Compiler, ptx, DriverVersion, Device.ComputeCapability, out _);
            module = LoadModule(kernel, image, ptx);
        }
        nint function;
        byte[] entry = Encoding.UTF8.GetBytes(kernel.EntryPoint + "\0");
        fixed (byte* name = entry)
        {
            int result = CudaDriver.cuModuleGetFunction(out function, module, name);
            if (result != CudaDriver.Success)
            {
                CudaDriver.cuModuleUnload(module);
                CudaDriver.Check(result, $"cuModuleGetFunction({kernel.Name}, entry point \"{kernel.EntryPoint}\")",
                    "the entry point is not in the compiled module: the kernel must be declared extern \"C\" __global__ with that name");
            }
        }
        return new LoadedKernel(module, function);
    }

    private static nint LoadModule(KernelDefinition kernel, byte[] image, NvrtcTarget target)
    {
        // PTX must be NUL-terminated text; NVRTC's PTX already ends in NUL, but be sure.
        byte[] data = target.Output == NvrtcOutput.Ptx && (image.Length == 0 || image[^1] != 0) ? [.. image, 0] : image;
        const int logSize = 16 * 1024;
        byte* log = stackalloc byte[logSize];
        log[0] = 0;
        int* options = stackalloc int[2] { CudaDriver.JitErrorLogBuffer, CudaDriver.JitErrorLogBufferSizeBytes };
        void** values = stackalloc void*[2] { log, (void*)(nint)logSize };
        nint module;
        int result;
        fixed (byte* p = data)
        {
            result = CudaDriver.cuModuleLoadDataEx(out module, p, 2, options, values);
        }
        if (result != CudaDriver.Success)
        {
            string jitLog = new string((sbyte*)log).Trim();
            string? advice = CudaDriver.AdviceFor(result);
            if (jitLog.Length > 0)
            {
                advice = (advice is null ? "" : advice + "; ") + "JIT log: " + jitLog;
            }
            throw new CudaException($"cuModuleLoadDataEx({kernel.Name}, {target})", result, CudaDriver.Describe(result), advice);
        }
        return module;
    }

    private void EnsureDynamicShared(KernelDefinition kernel, LoadedKernel loaded, LaunchConfig config)
    {
        int dynamicBytes = config.DynamicSharedBytes;
        if (dynamicBytes <= DefaultDynamicSharedLimit || dynamicBytes <= loaded.DynamicSharedAllowed)
        {
            return;
        }
        int limit = Device.MaxSharedMemoryPerBlockOptin - kernel.StaticSharedBytes;
        if (dynamicBytes > limit)
        {
            throw new ArgumentOutOfRangeException(nameof(config),
                $"Kernel {kernel.Name} ({config}): {dynamicBytes} B of dynamic shared memory plus {kernel.StaticSharedBytes} B static exceed the {Device.MaxSharedMemoryPerBlockOptin} B per block that {Name} allows; use smaller tiles.");
        }
        lock (loaded)
        {
            if (dynamicBytes > loaded.DynamicSharedAllowed)
            {
                CudaDriver.Check(
                    CudaDriver.cuFuncSetAttribute(loaded.Function, CudaDriver.FunctionAttributeMaxDynamicSharedSizeBytes, dynamicBytes),
                    $"cuFuncSetAttribute({kernel.Name}, MAX_DYNAMIC_SHARED_SIZE_BYTES = {dynamicBytes})");
                loaded.DynamicSharedAllowed = dynamicBytes;
            }
        }
    }

    private string? LaunchAdvice(KernelDefinition kernel, LoadedKernel loaded, LaunchConfig config, int result)
    {
        var facts = new List<string>();
        if (CudaDriver.cuFuncGetAttribute(out int maxThreads, CudaDriver.FunctionAttributeMaxThreadsPerBlock, loaded.Function) == CudaDriver.Success)
        {
            facts.Add($"this kernel allows at most {maxThreads} threads per block");
        }
        if (CudaDriver.cuFuncGetAttribute(out int registers, CudaDriver.FunctionAttributeNumRegs, loaded.Function) == CudaDriver.Success)
        {
            facts.Add($"it uses {registers} registers per thread");
        }
        if (CudaDriver.cuFuncGetAttribute(out int staticShared, CudaDriver.FunctionAttributeSharedSizeBytes, loaded.Function) == CudaDriver.Success)
        {
            facts.Add($"{staticShared} B static shared memory");
        }
        string known = facts.Count > 0 ? " (" + string.Join(", ", facts) + $"; the device allows {Device.MaxSharedMemoryPerBlockOptin} B shared per block with opt-in)" : "";
        string? advice = result switch
        {
            CudaDriver.ErrorInvalidValue => $"block {config.Block} is too large or the shared memory too much for this kernel{known}; use smaller blocks or less dynamic shared memory",
            CudaDriver.ErrorLaunchOutOfResources => $"the block needs more registers or shared memory than an SM has{known}; use fewer threads per block",
            CudaDriver.ErrorInvalidHandle => "the kernel's module was unloaded or belongs to another context; launch it on the accelerator that loaded it",
            _ => string.Join("; ", new[] { CudaDriver.AdviceFor(result), _lastLaunch is null ? null : $"the previous launch was {_lastLaunch}", known.Trim() }
                .Where(part => !string.IsNullOrEmpty(part))),
        };
        return string.IsNullOrEmpty(advice) ? null : advice;
    }

    internal static void CheckArgumentCount(KernelDefinition kernel, int slots)
    {
        string parameters = kernel.Parameters.Trim();
        // Only a plain comma-separated list can be counted; anything else is left to the driver.
        if (parameters.Length == 0 || parameters == "void" || parameters.Contains('(') || parameters.Contains('<'))
        {
            if (parameters.Length == 0 && slots != 0)
            {
                throw new ArgumentException($"Kernel {kernel.Name} takes no parameters but was given {slots} argument slots.");
            }
            return;
        }
        int expected = parameters.Split(',').Length;
        if (expected != slots)
        {
            throw new ArgumentException($"Kernel {kernel.Name} takes {expected} CUDA parameters ({kernel.Parameters}) but was given {slots} argument slots; regenerate the launcher.");
        }
    }

    private void SynchronizeStream(string call)
    {
        int result = CudaDriver.cuStreamSynchronize(_stream);
        if (result != CudaDriver.Success)
        {
            string previous = _lastLaunch is null ? "" : $"; the last kernel launched was {_lastLaunch}";
            throw new CudaException(call, result, CudaDriver.Describe(result), (CudaDriver.AdviceFor(result) ?? "an earlier asynchronous operation failed") + previous);
        }
    }

    private void Bind()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!ReferenceEquals(_boundOnThread, this))
        {
            CudaDriver.Check(CudaDriver.cuCtxSetCurrent(_context), "cuCtxSetCurrent");
            _boundOnThread = this;
        }
    }

    private static nuint Bytes<T>(int length) where T : unmanaged => (nuint)((long)length * Unsafe.SizeOf<T>());

    private static void CheckLengths<T>(int hostLength, View<T> device, string operation) where T : unmanaged
    {
        if (hostLength != device.Length)
        {
            throw new ArgumentException($"{operation} of {hostLength} elements with a device view of {device.Length}: lengths must match.");
        }
        if (hostLength > 0)
        {
            RequireDevice(device, operation);
        }
    }

    private static void RequireDevice<T>(View<T> view, string operation) where T : unmanaged
    {
        if (!view.IsDevice)
        {
            throw new ArgumentException($"{operation}: {view} is host memory; the cuda accelerator takes views of its own buffers (Allocate/Upload).");
        }
    }

    private sealed class LoadedKernel(nint module, nint function)
    {
        public nint Module { get; } = module;

        public nint Function { get; } = function;

        public int DynamicSharedAllowed { get; set; } = DefaultDynamicSharedLimit;
    }

    /// <summary>A launch between two events on the stream (profile mode); the time is read once the stop event completes.</summary>
    private sealed class EventLaunch : Profiling.IPendingLaunch, IDisposable
    {
        private readonly EventTimer _timer;
        private readonly KernelDefinition _kernel;
        private readonly LaunchConfig _config;
        private readonly long _callId;

        public EventLaunch(CudaAccelerator owner, KernelDefinition kernel, LaunchConfig config, long callId)
        {
            _timer = new EventTimer(owner);
            _kernel = kernel;
            _config = config;
            _callId = callId;
            _timer.Start();
        }

        public void Stop() => _timer.Stop();

        public Profiling.LaunchRecord Complete()
        {
            try
            {
                return new Profiling.LaunchRecord(_kernel.Name, _callId, _config, _timer.ElapsedMilliseconds);
            }
            finally
            {
                _timer.Dispose();
            }
        }

        public void Dispose() => _timer.Dispose();
    }

    private sealed class EventTimer : IDeviceTimer
    {
        private readonly CudaAccelerator _owner;
        private readonly nint _start;
        private readonly nint _stop;
        private bool _disposed;

        public EventTimer(CudaAccelerator owner)
        {
            _owner = owner;
            CudaDriver.Check(CudaDriver.cuEventCreate(out _start, 0), "cuEventCreate");
            CudaDriver.Check(CudaDriver.cuEventCreate(out _stop, 0), "cuEventCreate");
        }

        public void Start()
        {
            _owner.Bind();
            CudaDriver.Check(CudaDriver.cuEventRecord(_start, _owner._stream), "cuEventRecord(start)");
        }

        public void Stop()
        {
            _owner.Bind();
            CudaDriver.Check(CudaDriver.cuEventRecord(_stop, _owner._stream), "cuEventRecord(stop)");
        }

        public double ElapsedMilliseconds
        {
            get
            {
                _owner.Bind();
                CudaDriver.Check(CudaDriver.cuEventSynchronize(_stop), "cuEventSynchronize", "call Start and Stop before reading the time");
                CudaDriver.Check(CudaDriver.cuEventElapsedTime(out float ms, _start, _stop), "cuEventElapsedTime", "call Start and Stop before reading the time");
                return ms;
            }
        }

        public void Dispose()
        {
            if (_disposed || _owner._disposed)
            {
                return;
            }
            _disposed = true;
            _owner.Bind();
            CudaDriver.cuEventDestroy(_start);
            CudaDriver.cuEventDestroy(_stop);
        }
    }
}

/// <summary>Device memory of the cuda accelerator; its view carries the device address and length.</summary>
public sealed class CudaBuffer<T> : DeviceBuffer<T> where T : unmanaged
{
    private readonly CudaAccelerator _owner;
    private readonly ulong _pointer;

    internal CudaBuffer(CudaAccelerator owner, ulong pointer, int length) : base(owner, length)
    {
        _owner = owner;
        _pointer = pointer;
    }

    public ulong DevicePointer => _pointer;

    public override View<T> View => IsDisposed ? throw new ObjectDisposedException(nameof(CudaBuffer<T>)) : new View<T>(_pointer, Length);

    protected override void Free() => _owner.Free(_pointer);
}
