using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using IlgpuOct.Kernels.Cuda;

namespace IlgpuOct.Kernels.CudaHost;

/// <summary>
/// <c>cuda-host</c>: runs the generated CUDA C itself on the CPU. Each kernel's translation unit is
/// compiled by the host C++ compiler against <c>cuda_host.h</c> into a shared library (cached on
/// disk like NVRTC's images) and launched through the very argument slots the cuda accelerator
/// hands to cuLaunchKernel: buffers are host memory whose address goes in the slot. Blocks run in
/// parallel, one block at a time per OS thread, each CUDA thread a fiber (exact barrier and
/// shuffle semantics). A checker of the translation, not an engine.
/// <para>Sanitizer build (option or ILGPUOCT_CUDAHOST_SANITIZE=1): UBSan checks compiled into the
/// kernel (signed overflow, shift counts, shared/local array bounds, float-to-int range, ...) and
/// guard zones after every buffer, checked after each launch; each finding names the kernel,
/// block and thread (or the buffer and element).</para>
/// </summary>
public sealed unsafe class CudaHostAccelerator : Accelerator
{
    private const int ErrorCapacity = 2048;

    /// <summary>Bytes of canary after each buffer in the sanitizer build (writes past the end land here).</summary>
    internal const int GuardBytes = 256;

    internal const byte GuardByte = 0xA5;

    private readonly ConcurrentDictionary<KernelDefinition, Lazy<LoadedLibrary>> _kernels = new(ReferenceEqualityComparer.Instance);
    private readonly ConcurrentBag<StackRegion> _stacks = new();
    private readonly ConcurrentDictionary<nint, long> _allocations = new();
    private readonly KernelCache _cache;
    private readonly string _loadDirectory;
    private readonly int _maxParallelism;
    private bool _disposed;

    private CudaHostAccelerator(HostCompiler compiler, bool sanitize, KernelCache cache, int maxParallelism)
    {
        Compiler = compiler;
        Sanitize = sanitize;
        _cache = cache;
        _maxParallelism = maxParallelism > 0 ? maxParallelism : Environment.ProcessorCount;
        StackBytes = StackSizeFromEnvironment() ?? (sanitize ? 256 * 1024 : 64 * 1024);
        _loadDirectory = Directory.CreateTempSubdirectory("ilgpuoct-cudahost-load-").FullName;
    }

    /// <summary>
    /// Opens cuda-host with the machine's C++ compiler. <paramref name="sanitize"/> null means
    /// ILGPUOCT_CUDAHOST_SANITIZE=1 decides.
    /// </summary>
    public static CudaHostAccelerator Open(bool? sanitize = null, KernelCache? cache = null, int maxParallelism = 0)
    {
        var compiler = HostCompiler.TryGet(out string reason)
            ?? throw new AcceleratorUnavailableException($"--device cuda-host needs a host C++ compiler: {reason}.");
        bool sanitizeBuild = sanitize ?? Environment.GetEnvironmentVariable("ILGPUOCT_CUDAHOST_SANITIZE") == "1";
        return new CudaHostAccelerator(compiler, sanitizeBuild, cache ?? new KernelCache(), maxParallelism);
    }

    public override AcceleratorKind Kind => AcceleratorKind.CudaHost;

    public override string Name => $"generated CUDA C on {Environment.ProcessorCount} CPU cores ({Compiler.Identity}{(Sanitize ? ", UBSan + guard zones" : "")})";

    public override bool RunsKernelsOnHost => false;

    public HostCompiler Compiler { get; }

    /// <summary>True for the sanitizer build.</summary>
    public bool Sanitize { get; }

    /// <summary>Stack bytes of each CUDA thread's fiber ($ILGPUOCT_CUDAHOST_STACK overrides).</summary>
    public int StackBytes { get; }

    protected override DeviceBuffer<T> AllocateCore<T>(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ObjectDisposedException.ThrowIf(_disposed, this);
        long bytes = (long)length * Unsafe.SizeOf<T>();
        if (bytes == 0)
        {
            return new CudaHostBuffer<T>(this, 0, 0);
        }
        long total = bytes + (Sanitize ? GuardBytes : 0);
        // Uninitialised like cuMemAlloc, but deterministic: a fixed pattern instead of old heap data.
        var pointer = (nint)NativeMemory.AlignedAlloc((nuint)total, 256);
        new Span<byte>((void*)pointer, checked((int)Math.Min(total, int.MaxValue))).Fill(Sanitize ? GuardByte : (byte)0);
        _allocations[pointer] = bytes;
        return new CudaHostBuffer<T>(this, pointer, length);
    }

    internal void Free(nint pointer)
    {
        if (pointer != 0)
        {
            _allocations.TryRemove(pointer, out _);
            NativeMemory.AlignedFree((void*)pointer);
        }
    }

    protected override void CopyFromHostCore<T>(ReadOnlySpan<T> source, View<T> destination)
    {
        CheckLength(source.Length, destination, "CopyFromHost");
        source.CopyTo(Span(destination));
    }

    protected override void CopyToHostCore<T>(View<T> source, Span<T> destination)
    {
        CheckLength(destination.Length, source, "CopyToHost");
        Span(source).CopyTo(destination);
    }

    public override void Copy<T>(View<T> source, View<T> destination)
    {
        if (source.Length != destination.Length)
        {
            throw new ArgumentException($"Copy of {source.Length} elements into {destination.Length}: lengths must match.");
        }
        Span(source).CopyTo(Span(destination));
    }

    public override void Clear<T>(View<T> destination) => Span(destination).Clear();

    public override void Synchronize()
    {
    }

    public override IDeviceTimer CreateTimer() => new ElapsedTimer();

    public override DeviceMemoryInfo GetMemoryInfo()
    {
        var info = GC.GetGCMemoryInfo();
        return new DeviceMemoryInfo(Math.Max(0, info.TotalAvailableMemoryBytes - info.MemoryLoadBytes), info.TotalAvailableMemoryBytes);
    }

    public override void LaunchOnHost(KernelDefinition kernel, LaunchConfig config, Action<KernelContext> threadBody) =>
        throw new NotSupportedException($"Kernel {kernel.Name}: cuda-host runs the generated CUDA C only; C# kernel bodies run on cpu-kernels.");

    public override void LaunchOnHost(KernelDefinition kernel, LaunchConfig config, Func<KernelContext, IEnumerator<int>> threadBody) =>
        throw new NotSupportedException($"Kernel {kernel.Name}: cuda-host runs the generated CUDA C only; C# kernel bodies run on cpu-kernels.");

    public override void LaunchCompiled(KernelDefinition kernel, LaunchConfig config, ReadOnlySpan<ulong> argumentSlots)
    {
        ArgumentNullException.ThrowIfNull(kernel);
        ObjectDisposedException.ThrowIf(_disposed, this);
        config.Validate(kernel.Name);
        CudaAccelerator.CheckArgumentCount(kernel, argumentSlots.Length);
        if (config.DynamicSharedBytes > HostCompiler.MaxDynamicSharedBytes)
        {
            throw new ArgumentOutOfRangeException(nameof(config), $"Kernel {kernel.Name} ({config}): {config.DynamicSharedBytes} B of dynamic shared memory exceed the {HostCompiler.MaxDynamicSharedBytes} B a block may have; use smaller tiles.");
        }
        var library = Load(kernel);

        // The layout cuLaunchKernel reads: an array of pointers, each to one 8-byte argument value.
        int count = argumentSlots.Length;
        var slots = (ulong*)NativeMemory.Alloc((nuint)Math.Max(1, count), sizeof(ulong));
        var pointers = (void**)NativeMemory.Alloc((nuint)Math.Max(1, count), (nuint)sizeof(void*));
        try
        {
            for (int i = 0; i < count; i++)
            {
                slots[i] = argumentSlots[i];
                pointers[i] = &slots[i];
            }
            RunBlocks(kernel, config, library, pointers);
        }
        finally
        {
            NativeMemory.Free(slots);
            NativeMemory.Free(pointers);
        }
        if (Sanitize)
        {
            CheckGuards(kernel, config);
        }
    }

    /// <summary>Compiles (or fetches from the cache) and loads a kernel now instead of at its first launch.</summary>
    public void Preload(KernelDefinition kernel) => Load(kernel);

    /// <summary>Unloads a kernel's library (for callers that make many short-lived kernels, such as the fuzzer).</summary>
    public void Release(KernelDefinition kernel)
    {
        if (_kernels.TryRemove(kernel, out var lazy) && lazy.IsValueCreated)
        {
            NativeLibrary.Free(lazy.Value.Handle);
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        while (_stacks.TryTake(out var region))
        {
            region.Dispose();
        }
        // Libraries stay mapped: a kernel's code may be referenced by another accelerator's launch in flight.
        _kernels.Clear();
        try
        {
            Directory.Delete(_loadDirectory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private void RunBlocks(KernelDefinition kernel, LaunchConfig config, LoadedLibrary library, void** arguments)
    {
        long blocks = config.Grid.Volume;
        int threads = (int)config.Block.Volume;
        string? firstError = null;
        long firstBlock = long.MaxValue;
        var gate = new object();
        var options = new ParallelOptions { MaxDegreeOfParallelism = _maxParallelism };
        Parallel.For(0L, blocks, options,
            () => Rent(threads),
            (block, state, region) =>
            {
                if (state.ShouldExitCurrentIteration)
                {
                    return region;
                }
                var launch = new HostLaunch
                {
                    GridX = config.Grid.X, GridY = config.Grid.Y, GridZ = config.Grid.Z,
                    BlockX = config.Block.X, BlockY = config.Block.Y, BlockZ = config.Block.Z,
                    DynamicSharedBytes = config.DynamicSharedBytes,
                    StackBytes = StackBytes,
                    Arguments = arguments,
                    Stacks = region.Stacks,
                    Error = region.Error,
                    ErrorCapacity = ErrorCapacity,
                };
                region.Error[0] = 0;
                if (library.RunBlock(&launch, block) != 0)
                {
                    string message = Marshal.PtrToStringUTF8((nint)region.Error) ?? "unknown error";
                    lock (gate)
                    {
                        if (block < firstBlock)
                        {
                            firstBlock = block;
                            firstError = message;
                        }
                    }
                    state.Stop();
                }
                return region;
            },
            region => _stacks.Add(region));
        if (firstError is not null)
        {
            throw new KernelExecutionException($"Kernel {kernel.Name} ({config}) failed on cuda-host: {firstError}");
        }
    }

    private StackRegion Rent(int threads)
    {
        long bytes = (long)threads * StackBytes;
        if (_stacks.TryTake(out var region))
        {
            if (region.Bytes >= bytes)
            {
                return region;
            }
            region.Dispose();
        }
        return new StackRegion(bytes, ErrorCapacity);
    }

    /// <summary>Also requires the view to lie inside one of this accelerator's buffers.</summary>
    public override void CheckLaunchView<T>(View<T> view, KernelDefinition kernel, string parameter)
    {
        base.CheckLaunchView(view, kernel, parameter);
        if (view.Length == 0)
        {
            return;
        }
        ulong start = view.DevicePointer;
        ulong end = start + (ulong)view.Length * (ulong)Unsafe.SizeOf<T>();
        foreach (var (pointer, bytes) in _allocations)
        {
            if (start >= (ulong)pointer && end <= (ulong)pointer + (ulong)bytes)
            {
                return;
            }
        }
        throw new ArgumentException($"Kernel {kernel.Name}: argument '{parameter}' ({view}) is not memory of this cuda-host accelerator (another accelerator's buffer, or freed); pass a buffer this accelerator allocated.", parameter);
    }

    private void CheckGuards(KernelDefinition kernel, LaunchConfig config)
    {
        foreach (var (pointer, bytes) in _allocations)
        {
            var guard = new Span<byte>((byte*)pointer + bytes, GuardBytes);
            int bad = guard.IndexOfAnyExcept(GuardByte);
            if (bad >= 0)
            {
                guard.Fill(GuardByte);
                throw new KernelExecutionException(
                    $"Kernel {kernel.Name} ({config}) wrote past the end of a buffer on cuda-host (sanitizer): byte {bad} after the end of a {bytes}-byte buffer at 0x{pointer:x}; check the kernel's index arithmetic against the view's Length.");
            }
        }
    }

    private LoadedLibrary Load(KernelDefinition kernel)
    {
        var lazy = _kernels.GetOrAdd(kernel, k => new Lazy<LoadedLibrary>(() => Build(k), LazyThreadSafetyMode.ExecutionAndPublication));
        try
        {
            return lazy.Value;
        }
        catch
        {
            _kernels.TryRemove(new KeyValuePair<KernelDefinition, Lazy<LoadedLibrary>>(kernel, lazy));
            throw;
        }
    }

    private LoadedLibrary Build(KernelDefinition kernel)
    {
        string key = Compiler.Key(kernel, Sanitize);
        byte[] image = _cache.GetOrCreate(key, ".host.so", () => Compiler.Build(kernel, Sanitize), out _);
        // dlopen needs a plain file: a private copy per process, removed once mapped.
        string path = Path.Combine(_loadDirectory, key + ".so");
        File.WriteAllBytes(path, image);
        nint handle = NativeLibrary.Load(path);
        File.Delete(path);
        if (!NativeLibrary.TryGetExport(handle, "ioct_host_run_block", out nint run))
        {
            throw new InvalidOperationException($"Kernel {kernel.Name}: the cuda-host library has no ioct_host_run_block export; clear the kernel cache ({_cache.Directory}) and retry.");
        }
        return new LoadedLibrary(handle, (delegate* unmanaged<HostLaunch*, long, int>)run);
    }

    private static int? StackSizeFromEnvironment()
    {
        string? text = Environment.GetEnvironmentVariable("ILGPUOCT_CUDAHOST_STACK");
        return int.TryParse(text, out int bytes) && bytes >= 16 * 1024 ? bytes : null;
    }

    private static Span<T> Span<T>(View<T> view) where T : unmanaged
    {
        if (view.Length == 0)
        {
            return System.Span<T>.Empty;
        }
        if (!view.IsDevice)
        {
            throw new ArgumentException($"{view} is managed host memory; cuda-host takes views of its own buffers (Allocate/Upload).");
        }
        return new Span<T>((void*)view.DevicePointer, view.Length);
    }

    private static void CheckLength<T>(int hostLength, View<T> device, string operation) where T : unmanaged
    {
        if (hostLength != device.Length)
        {
            throw new ArgumentException($"{operation} of {hostLength} elements with a device view of {device.Length}: lengths must match.");
        }
    }

    /// <summary>The launch record cuda_host.h reads (struct ioct_host::Launch).</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct HostLaunch
    {
        public int GridX, GridY, GridZ;
        public int BlockX, BlockY, BlockZ;
        public int DynamicSharedBytes;
        public int StackBytes;
        public void** Arguments;
        public byte* Stacks;
        public byte* Error;
        public int ErrorCapacity;
        public int Reserved;
    }

    private sealed class LoadedLibrary(nint handle, delegate* unmanaged<HostLaunch*, long, int> runBlock)
    {
        public nint Handle { get; } = handle;

        public int RunBlock(HostLaunch* launch, long block) => runBlock(launch, block);
    }

    /// <summary>Fiber stacks for one block's threads and an error buffer; one per worker, reused across launches.</summary>
    private sealed class StackRegion : IDisposable
    {
        public StackRegion(long bytes, int errorCapacity)
        {
            Bytes = bytes;
            // Large allocations are mmap'ed by the C library: pages a fiber never touches cost nothing.
            Stacks = (byte*)NativeMemory.AlignedAlloc((nuint)bytes, 4096);
            Error = (byte*)NativeMemory.AllocZeroed((nuint)errorCapacity);
        }

        public long Bytes { get; }

        public byte* Stacks { get; private set; }

        public byte* Error { get; private set; }

        public void Dispose()
        {
            NativeMemory.AlignedFree(Stacks);
            NativeMemory.Free(Error);
            Stacks = null;
            Error = null;
        }
    }

    private sealed class ElapsedTimer : IDeviceTimer
    {
        private readonly Stopwatch _watch = new();

        public void Start() => _watch.Restart();

        public void Stop() => _watch.Stop();

        public double ElapsedMilliseconds => _watch.Elapsed.TotalMilliseconds;

        public void Dispose()
        {
        }
    }
}

/// <summary>Host memory of the cuda-host accelerator; its view carries the address like a device pointer.</summary>
public sealed class CudaHostBuffer<T> : DeviceBuffer<T> where T : unmanaged
{
    private readonly CudaHostAccelerator _owner;
    private readonly nint _pointer;

    internal CudaHostBuffer(CudaHostAccelerator owner, nint pointer, int length) : base(owner, length)
    {
        _owner = owner;
        _pointer = pointer;
    }

    public override View<T> View => IsDisposed ? throw new ObjectDisposedException(nameof(CudaHostBuffer<T>)) : new View<T>((ulong)_pointer, Length);

    protected override void Free() => _owner.Free(_pointer);
}
