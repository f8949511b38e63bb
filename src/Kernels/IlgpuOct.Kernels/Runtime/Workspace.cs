using System.Runtime.CompilerServices;

namespace IlgpuOct.Kernels;

/// <summary>
/// Device scratch that an operator keeps between calls, one buffer per accelerator and purpose, grown on
/// demand. Allocating and freeing in every call would stall each training step on cuda (cuMemFree
/// synchronises the device). Calls on one accelerator are ordered on its stream, so a later call may
/// reuse the buffer as soon as it is issued.
/// </summary>
internal static class Workspace
{
    private static readonly ConditionalWeakTable<Accelerator, Dictionary<string, IDisposable>> Buffers = new();

    /// <summary>The first <paramref name="length"/> elements of the buffer named <paramref name="purpose"/> (contents undefined).</summary>
    public static View<T> Get<T>(Accelerator accelerator, string purpose, int length) where T : unmanaged
    {
        var buffers = Buffers.GetValue(accelerator, _ => new Dictionary<string, IDisposable>());
        lock (buffers)
        {
            var buffer = buffers.GetValueOrDefault(purpose) as DeviceBuffer<T>;
            if (buffer is null || buffer.IsDisposed || buffer.Length < length)
            {
                buffer?.Dispose();
                buffer = accelerator.Allocate<T>(length);
                buffers[purpose] = buffer;
            }
            return buffer.View.Slice(0, length);
        }
    }
}
