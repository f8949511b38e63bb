using System.Runtime.CompilerServices;

namespace IlgpuOct.Kernels;

/// <summary>Memory owned by an accelerator. Dispose to free it (device memory is not garbage-collected).</summary>
public abstract class DeviceBuffer<T> : IDisposable where T : unmanaged
{
    protected DeviceBuffer(Accelerator accelerator, int length)
    {
        Accelerator = accelerator;
        Length = length;
    }

    public Accelerator Accelerator { get; }

    public int Length { get; }

    public long SizeInBytes => (long)Length * Unsafe.SizeOf<T>();

    /// <summary>The whole buffer as a view (what kernels take).</summary>
    public abstract View<T> View { get; }

    public bool IsDisposed { get; private set; }

    public void Dispose()
    {
        if (!IsDisposed)
        {
            IsDisposed = true;
            Free();
        }
        GC.SuppressFinalize(this);
    }

    protected abstract void Free();

    public static implicit operator View<T>(DeviceBuffer<T> buffer) => buffer.View;
}

/// <summary>A buffer in host memory (the cpu and cpu-kernels accelerators).</summary>
public sealed class HostBuffer<T> : DeviceBuffer<T> where T : unmanaged
{
    private T[] _array;

    internal HostBuffer(Accelerator accelerator, int length) : base(accelerator, length)
    {
        _array = new T[length];
    }

    public override View<T> View => IsDisposed ? throw new ObjectDisposedException(nameof(HostBuffer<T>)) : new View<T>(_array);

    public Span<T> Span => View.AsSpan();

    protected override void Free() => _array = [];
}
