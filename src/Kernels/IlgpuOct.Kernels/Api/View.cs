using System.Runtime.CompilerServices;

namespace IlgpuOct.Kernels;

/// <summary>
/// A typed window on accelerator memory: what kernels index. On host accelerators it wraps a
/// managed array (every access is bounds-checked, so an out-of-range kernel fails its CPU test
/// with the index); on CUDA it carries a device address and is only passed to launches.
/// In CUDA C a view parameter becomes a pointer and an int length (<c>x</c>, <c>x_length</c>).
/// </summary>
public readonly struct View<T> where T : unmanaged
{
    private readonly T[]? _array;
    private readonly int _offset;
    private readonly ulong _devicePointer;

    public View(T[] array) : this(array, 0, array?.Length ?? 0) { }

    public View(T[] array, int offset, int length)
    {
        ArgumentNullException.ThrowIfNull(array);
        if ((uint)offset > (uint)array.Length || (uint)length > (uint)(array.Length - offset))
        {
            throw new ArgumentOutOfRangeException(nameof(length), $"View [{offset}, {offset + length}) lies outside an array of {array.Length} elements.");
        }
        _array = array;
        _offset = offset;
        Length = length;
    }

    /// <summary>A view of device memory (CUDA); <paramref name="devicePointer"/> is the address of element 0.</summary>
    public View(ulong devicePointer, int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        _devicePointer = devicePointer;
        Length = length;
    }

    public int Length { get; }

    /// <summary>The managed array behind a host view (null on devices); the sanitizer keys shared memory by it.</summary>
    internal T[]? HostArray => _array;

    internal int HostOffset => _offset;

    /// <summary>True when the memory lives on a device and cannot be indexed from the host.</summary>
    public bool IsDevice => _array is null && _devicePointer != 0;

    /// <summary>Device address of element 0 (0 for host views).</summary>
    public ulong DevicePointer => _devicePointer;

    public ref T this[int index]
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get
        {
            if ((uint)index >= (uint)Length)
            {
                ThrowIndex(index);
            }
            if (_array is null)
            {
                ThrowDevice();
            }
            return ref _array![_offset + index];
        }
    }

    /// <summary>A sub-view (host code only; kernels take offsets as int arguments instead).</summary>
    public View<T> Slice(int start, int length)
    {
        if ((uint)start > (uint)Length || (uint)length > (uint)(Length - start))
        {
            throw new ArgumentOutOfRangeException(nameof(length), $"Slice [{start}, {start + length}) lies outside a view of {Length} elements.");
        }
        return _array is not null
            ? new View<T>(_array, _offset + start, length)
            : new View<T>(_devicePointer + (ulong)start * (ulong)Unsafe.SizeOf<T>(), length);
    }

    public View<T> Slice(int start) => Slice(start, Length - start);

    /// <summary>The host memory behind the view; only for host accelerators (cpu, cpu-kernels).</summary>
    public Span<T> AsSpan()
    {
        if (_array is null)
        {
            if (Length == 0)
            {
                return Span<T>.Empty;
            }
            ThrowDevice();
        }
        return new Span<T>(_array, _offset, Length);
    }

    public override string ToString() => IsDevice ? $"View<{typeof(T).Name}>[{Length}] @0x{_devicePointer:x}" : $"View<{typeof(T).Name}>[{Length}]";

    private void ThrowIndex(int index) =>
        throw new IndexOutOfRangeException($"Kernel accessed element {index} of a View<{typeof(T).Name}> of length {Length}.");

    private static void ThrowDevice() =>
        throw new InvalidOperationException("This view lives in device memory; copy it to the host (Accelerator.CopyToHost) before reading it.");
}
