using IlgpuOct.Kernels;
using IlgpuOct.Kernels.CudaHost;

namespace IlgpuOct.Tests.Support;

/// <summary>
/// An accelerator for operator tests written over host arrays. On cpu and cpu-kernels a view wraps
/// the array; on cuda-host (device memory of its own) <see cref="V(float[])"/> uploads the array and
/// <see cref="Sync"/> copies every uploaded buffer back into its array, so a test body stays the same
/// on every device: V(...) the arrays, call the operator, Sync(), assert on the arrays.
/// </summary>
public sealed class TestDevice : IDisposable
{
    private readonly List<Action> _downloads = new();
    private readonly List<IDisposable> _buffers = new();

    private TestDevice(Accelerator accelerator) => Accelerator = accelerator;

    public Accelerator Accelerator { get; }

    /// <summary>A host accelerator of <paramref name="kind"/>, or cuda-host (ILGPUOCT_CACHE is its kernel cache).</summary>
    public static TestDevice Open(AcceleratorKind kind) => new(OpenAccelerator(kind));

    /// <summary>The accelerator alone, for code that uploads and downloads itself (GoldenOperators).</summary>
    public static Accelerator OpenAccelerator(AcceleratorKind kind) =>
        kind == AcceleratorKind.CudaHost ? CudaHostAccelerator.Open() : new HostAccelerator(kind);

    public View<float> V(float[] array) => View(array);

    public View<int> V(int[] array) => View(array);

    public View<T> View<T>(T[] array) where T : unmanaged
    {
        if (Accelerator.RunsKernelsOnHost)
        {
            return new View<T>(array);
        }
        var buffer = Accelerator.Upload<T>(array);
        _buffers.Add(buffer);
        _downloads.Add(() => Accelerator.CopyToHost(buffer.View, array));
        return buffer.View;
    }

    /// <summary>Copies every device buffer back into the array it was made from.</summary>
    public void Sync()
    {
        Accelerator.Synchronize();
        foreach (var download in _downloads)
        {
            download();
        }
    }

    public void Dispose()
    {
        foreach (var buffer in _buffers)
        {
            buffer.Dispose();
        }
        Accelerator.Dispose();
    }
}
