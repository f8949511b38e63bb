using System.ComponentModel;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace IlgpuOct.Kernels;

/// <summary>How a warp shuffle picks its source lane (CUDA's __shfl_*_sync family, width 32).</summary>
public enum ShuffleMode
{
    Index,
    Up,
    Down,
    Xor,
}

/// <summary>The mma.sync shape a lane waits at in a generated iterator (None: a shuffle or __syncwarp).</summary>
internal enum MmaKind : byte
{
    None,
    M16N8K8Tf32,
    M16N8K16Bf16,
}

/// <summary>Values a generated kernel iterator yields at a synchronisation point.</summary>
public static class KernelYield
{
    /// <summary>__syncthreads(): every live thread of the block must arrive before any goes on.</summary>
    public const int Barrier = 1;

    /// <summary>A warp shuffle: every live lane of the warp must deposit before any reads.</summary>
    public const int WarpSync = 2;

    /// <summary>The low bits of a yielded value say which kind of synchronisation point it is.</summary>
    public const int KindMask = 3;

    /// <summary>A barrier at source line <paramref name="line"/> of the kernel (synccheck names the lines of divergent barriers).</summary>
    public static int BarrierAt(int line) => (line << 2) | Barrier;
}

/// <summary>How a generated host copy touches an element of shared memory (for the sanitizer).</summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public enum SharedAccess
{
    Read,
    Write,
    ReadWrite,
    Atomic,
}

/// <summary>
/// A kernel thread's view of the launch: indices, dimensions, shared memory, barriers and warp
/// shuffles. In CUDA C these become threadIdx/blockIdx/blockDim/gridDim, __shared__ arrays,
/// __syncthreads() and __shfl_*_sync. On host accelerators every thread has its own instance.
/// </summary>
public sealed class KernelContext
{
    public const int WarpSize = 32;

    internal KernelContext(BlockState block, Dim3 threadIdx)
    {
        Block = block;
        _sanitizer = block.Sanitizer;
        ThreadIdx = threadIdx;
        LinearThreadIdx = threadIdx.X + block.BlockDim.X * (threadIdx.Y + block.BlockDim.Y * threadIdx.Z);
    }

    internal BlockState Block { get; }

    public Dim3 ThreadIdx { get; }

    public Dim3 BlockIdx => Block.BlockIdx;

    public Dim3 BlockDim => Block.BlockDim;

    public Dim3 GridDim => Block.GridDim;

    /// <summary>blockIdx.x * blockDim.x + threadIdx.x.</summary>
    public int GlobalX => Block.BlockIdx.X * Block.BlockDim.X + ThreadIdx.X;

    /// <summary>blockIdx.y * blockDim.y + threadIdx.y.</summary>
    public int GlobalY => Block.BlockIdx.Y * Block.BlockDim.Y + ThreadIdx.Y;

    /// <summary>blockIdx.z * blockDim.z + threadIdx.z.</summary>
    public int GlobalZ => Block.BlockIdx.Z * Block.BlockDim.Z + ThreadIdx.Z;

    /// <summary>gridDim.x * blockDim.x: the stride of a grid-stride loop.</summary>
    public int GridStrideX => Block.GridDim.X * Block.BlockDim.X;

    /// <summary>threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z).</summary>
    public int LinearThreadIdx { get; }

    /// <summary>Lane within the warp (linear thread index mod 32).</summary>
    public int LaneIdx => LinearThreadIdx & (WarpSize - 1);

    /// <summary>Warp within the block (linear thread index / 32).</summary>
    public int WarpIdx => LinearThreadIdx >> 5;

    /// <summary>
    /// A statically sized shared-memory array (<c>__shared__ T name[length]</c>). Declare it as a local
    /// at the top level of the kernel body with a compile-time constant length:
    /// <c>var tile = ctx.Shared&lt;float&gt;(TileSize * TileSize);</c>. Every thread of a block sees
    /// the same memory; each block has its own.
    /// </summary>
    public View<T> Shared<T>(int length) where T : unmanaged => Block.GetShared<T>(_sharedCursor++, length);

    /// <summary>
    /// The dynamically sized shared memory of the launch (<c>LaunchConfig.DynamicSharedBytes</c>) as
    /// an array of T. One element type per kernel.
    /// </summary>
    public View<T> DynamicShared<T>() where T : unmanaged => Block.GetDynamicShared<T>();

    /// <summary>__syncthreads(). Only meaningful through the generated launcher, which turns it into a yield.</summary>
    public void Barrier() => throw NotThroughLauncher(nameof(Barrier));

    /// <summary>__shfl_down_sync(0xffffffff, value, delta): the value of lane + delta (own value past the warp).</summary>
    public T ShuffleDown<T>(T value, int delta) where T : unmanaged => throw NotThroughLauncher(nameof(ShuffleDown));

    /// <summary>__shfl_up_sync(0xffffffff, value, delta): the value of lane - delta (own value below lane 0).</summary>
    public T ShuffleUp<T>(T value, int delta) where T : unmanaged => throw NotThroughLauncher(nameof(ShuffleUp));

    /// <summary>__shfl_xor_sync(0xffffffff, value, laneMask): the value of lane ^ laneMask.</summary>
    public T ShuffleXor<T>(T value, int laneMask) where T : unmanaged => throw NotThroughLauncher(nameof(ShuffleXor));

    /// <summary>__shfl_sync(0xffffffff, value, sourceLane): the value of lane sourceLane mod 32.</summary>
    public T Shuffle<T>(T value, int sourceLane) where T : unmanaged => throw NotThroughLauncher(nameof(Shuffle));

    /// <summary>
    /// <c>mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32</c>: acc = A B + acc for the warp's 16 x 8 x 8
    /// tile. Arguments are this lane's register arrays (<c>stackalloc</c>): <paramref name="acc"/> 4 floats
    /// (C in, D out), <paramref name="a"/> 4 and <paramref name="b"/> 2 TF32 values
    /// (<see cref="KernelMath.RoundToTf32"/>), laid out as <see cref="TensorCore"/> describes. Every lane of
    /// the warp must reach the call (a warp-wide synchronisation, like a shuffle). Needs sm_80 or later.
    /// </summary>
    public void MmaTf32(Span<float> acc, ReadOnlySpan<float> a, ReadOnlySpan<float> b) => throw NotThroughLauncher(nameof(MmaTf32));

    /// <summary>
    /// <c>mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32</c>: acc = A B + acc for the warp's 16 x 8 x 16
    /// tile. <paramref name="acc"/> 4 floats, <paramref name="a"/> 4 and <paramref name="b"/> 2 registers of
    /// two BF16 each (<see cref="KernelMath.PackBf16x2"/>), laid out as <see cref="TensorCore"/> describes.
    /// Every lane of the warp must reach the call. Needs sm_80 or later.
    /// </summary>
    public void MmaBf16(Span<float> acc, ReadOnlySpan<uint> a, ReadOnlySpan<uint> b) => throw NotThroughLauncher(nameof(MmaBf16));

    // ---- Hooks for generated iterator code (not for kernel authors) ----

    /// <summary>First half of a shuffle in a generated iterator: deposit, then yield WarpSync.</summary>
    [EditorBrowsable(EditorBrowsableState.Never)]
    public void ShuffleDeposit<T>(T value, ShuffleMode mode, int argument) where T : unmanaged
    {
        if (Unsafe.SizeOf<T>() > sizeof(ulong))
        {
            throw new NotSupportedException($"Warp shuffles move at most 8 bytes; {typeof(T).Name} is larger.");
        }
        ulong bits = 0;
        Unsafe.As<ulong, T>(ref bits) = value;
        ShuffleValue = bits;
        ShuffleMode = mode;
        ShuffleArgument = argument;
        ShufflePending = true;
    }

    /// <summary>Second half of a shuffle in a generated iterator: the value the warp sync delivered.</summary>
    [EditorBrowsable(EditorBrowsableState.Never)]
    public T ShuffleResult<T>() where T : unmanaged
    {
        ulong bits = ShuffleOutput;
        return Unsafe.As<ulong, T>(ref bits);
    }

    /// <summary>First half of <see cref="MmaTf32"/> in a generated iterator: deposit this lane's fragments, then yield WarpSync.</summary>
    [EditorBrowsable(EditorBrowsableState.Never)]
    public void MmaTf32Deposit(float[] acc, float[] a, float[] b) => MmaDeposit(MmaKind.M16N8K8Tf32, acc, a, b);

    /// <summary>First half of <see cref="MmaBf16"/> in a generated iterator: deposit this lane's fragments, then yield WarpSync.</summary>
    [EditorBrowsable(EditorBrowsableState.Never)]
    public void MmaBf16Deposit(float[] acc, uint[] a, uint[] b) => MmaDeposit(MmaKind.M16N8K16Bf16, acc, a, b);

    private void MmaDeposit(MmaKind shape, float[] acc, Array a, Array b)
    {
        MmaShape = shape;
        MmaAccumulator = acc;
        MmaA = a;
        MmaB = b;
    }

    /// <summary>
    /// Sanitizer hook of generated host copies: <c>s[i]</c> on shared memory becomes
    /// <c>s[ctx.SharedIndex(s, i, access, "s")]</c>; returns <paramref name="index"/> unchanged.
    /// </summary>
    [EditorBrowsable(EditorBrowsableState.Never)]
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int SharedIndex<T>(View<T> shared, int index, SharedAccess access, string name) where T : unmanaged
    {
        _sanitizer?.Access(Block, shared.HostArray!, shared.HostOffset + index, LinearThreadIdx, access, name);
        return index;
    }

    /// <summary>
    /// Sanitizer hook of the host copies of synchronising helpers: <c>v[i]</c> on a view parameter, checked
    /// as <see cref="SharedIndex"/> when the caller passed shared memory; returns <paramref name="index"/>.
    /// </summary>
    [EditorBrowsable(EditorBrowsableState.Never)]
    public int ViewIndex<T>(View<T> view, int index, SharedAccess access, string name) where T : unmanaged
    {
        if (_sanitizer is not null && Block.IsSharedArray(view.HostArray))
        {
            _sanitizer.Access(Block, view.HostArray!, view.HostOffset + index, LinearThreadIdx, access, name);
        }
        return index;
    }

    /// <summary>Sanitizer hook of the host copies of synchronising helpers: <c>v[i] = x</c> on a view parameter (see <see cref="ViewIndex"/>).</summary>
    [EditorBrowsable(EditorBrowsableState.Never)]
    public T ViewStore<T>(View<T> view, int index, T value, string name) where T : unmanaged
    {
        view[index] = value;
        if (_sanitizer is not null && Block.IsSharedArray(view.HostArray))
        {
            _sanitizer.Access(Block, view.HostArray!, view.HostOffset + index, LinearThreadIdx, SharedAccess.Write, name);
        }
        return value;
    }

    /// <summary>Sanitizer hook of generated host copies: <c>s[i] = v</c> on shared memory (recorded after v is evaluated).</summary>
    [EditorBrowsable(EditorBrowsableState.Never)]
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public T SharedStore<T>(View<T> shared, int index, T value, string name) where T : unmanaged
    {
        shared[index] = value;
        _sanitizer?.Access(Block, shared.HostArray!, shared.HostOffset + index, LinearThreadIdx, SharedAccess.Write, name);
        return value;
    }

    internal ulong ShuffleValue;
    internal ShuffleMode ShuffleMode;
    internal int ShuffleArgument;
    internal bool ShufflePending;
    internal ulong ShuffleOutput;
    internal MmaKind MmaShape;
    internal float[]? MmaAccumulator;
    internal Array? MmaA;
    internal Array? MmaB;

    private readonly KernelSanitizer? _sanitizer;
    private int _sharedCursor;

    private static InvalidOperationException NotThroughLauncher(string member) => new(
        $"KernelContext.{member} only works inside a [Kernel] method started through its generated launcher " +
        "(XxxKernel.Launch), which turns barriers and shuffles into synchronisation points.");
}

/// <summary>
/// State shared by the threads of one block on a host accelerator: indices, shared memory, the
/// sanitizer (when on) and the block's place in the launch's order of global atomics.
/// </summary>
internal sealed class BlockState
{
    // The block the current OS thread is running, so Atomic (which sees only a ref) can keep its turn.
    [ThreadStatic]
    private static BlockState? t_current;

    private readonly List<Array> _shared = [];
    private readonly int _dynamicSharedBytes;
    private readonly long _linearIndex;
    private readonly BlockOrder? _order;
    private Array? _dynamic;
    private bool _turnReached;

    public BlockState(Dim3 blockIdx, Dim3 blockDim, Dim3 gridDim, int dynamicSharedBytes,
        long linearIndex = 0, BlockOrder? order = null, KernelSanitizer? sanitizer = null)
    {
        BlockIdx = blockIdx;
        BlockDim = blockDim;
        GridDim = gridDim;
        _dynamicSharedBytes = dynamicSharedBytes;
        _linearIndex = linearIndex;
        _order = order;
        _turnReached = order is null;
        Sanitizer = sanitizer;
    }

    /// <summary>racecheck/initcheck of this block's shared memory; null when the sanitizer is off.</summary>
    public KernelSanitizer? Sanitizer { get; }

    /// <summary>Makes this block the one the calling OS thread runs until the returned scope ends.</summary>
    public Scope Enter()
    {
        var previous = t_current;
        t_current = this;
        return new Scope(previous);
    }

    public readonly struct Scope(BlockState? previous) : IDisposable
    {
        public void Dispose() => t_current = previous;
    }

    /// <summary>
    /// Called by every atomic before it touches <paramref name="target"/>: an atomic on global memory
    /// waits until every block with a lower linear index has finished, so the order of atomics (and
    /// with it float sums and returned old values) is the same in every run. Shared memory is private
    /// to the block and needs no turn.
    /// </summary>
    public static void BeforeAtomic<T>(ref T target) where T : unmanaged
    {
        var block = t_current;
        if (block is null || block._turnReached || block.IsShared(ref target))
        {
            return;
        }
        block._order!.AwaitTurn(block._linearIndex);
        block._turnReached = true;
    }

    /// <summary>Whether <paramref name="memory"/> is one of this block's shared-memory arrays (static or dynamic).</summary>
    public bool IsSharedArray(Array? memory)
    {
        if (memory is null)
        {
            return false;
        }
        lock (_shared)
        {
            return _shared.Contains(memory) || ReferenceEquals(_dynamic, memory);
        }
    }

    private bool IsShared<T>(ref T target) where T : unmanaged
    {
        lock (_shared)
        {
            foreach (var array in _shared)
            {
                if (Contains(array, ref target))
                {
                    return true;
                }
            }
            return _dynamic is not null && Contains(_dynamic, ref target);
        }
    }

    private static bool Contains<T>(Array array, ref T target) where T : unmanaged
    {
        nint offset = Unsafe.ByteOffset(ref MemoryMarshal.GetArrayDataReference(array), ref Unsafe.As<T, byte>(ref target));
        return offset >= 0 && offset < Buffer.ByteLength(array);
    }

    public Dim3 BlockIdx { get; }

    public Dim3 BlockDim { get; }

    public Dim3 GridDim { get; }

    public View<T> GetShared<T>(int slot, int length) where T : unmanaged
    {
        lock (_shared)
        {
            if (slot < _shared.Count)
            {
                if (_shared[slot] is not T[] existing || existing.Length != length)
                {
                    throw new InvalidOperationException(
                        $"Shared allocation #{slot} was declared as {typeof(T).Name}[{length}] by one thread and differently by another; " +
                        "declare shared memory at the top of the kernel, unconditionally, in the same order in every thread.");
                }
                return new View<T>(existing);
            }
            if (slot != _shared.Count)
            {
                throw new InvalidOperationException("Shared allocations must be declared in the same order by every thread.");
            }
            var array = NewPoisoned<T>(length);
            _shared.Add(array);
            return new View<T>(array);
        }
    }

    public View<T> GetDynamicShared<T>() where T : unmanaged
    {
        lock (_shared)
        {
            _dynamic ??= NewPoisoned<T>(_dynamicSharedBytes / Unsafe.SizeOf<T>());
            if (_dynamic is not T[] array)
            {
                throw new InvalidOperationException($"Dynamic shared memory was taken as {_dynamic.GetType().GetElementType()?.Name} and as {typeof(T).Name}; use one element type per kernel.");
            }
            return new View<T>(array);
        }
    }

    // Shared memory is uninitialised on a GPU; NaN (floats) and a pattern (integers) make a kernel
    // that reads before writing fail its CPU test instead of passing by luck on zeros.
    private static T[] NewPoisoned<T>(int length) where T : unmanaged
    {
        var array = new T[length];
        if (typeof(T) == typeof(float))
        {
            Array.Fill((float[])(object)array, float.NaN);
        }
        else if (typeof(T) == typeof(double))
        {
            Array.Fill((double[])(object)array, double.NaN);
        }
        else if (typeof(T) == typeof(int))
        {
            Array.Fill((int[])(object)array, unchecked((int)0xCDCDCDCD));
        }
        return array;
    }
}
