using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Cuda;
using Xunit;

namespace IlgpuOct.Tests.Cuda;

/// <summary>
/// A fact that needs NVRTC: skipped, with the reason shown, where libnvrtc is missing, unless
/// ILGPUOCT_REQUIRE_NVRTC=1, in which case it runs and fails on the missing library.
/// </summary>
public sealed class NvrtcFactAttribute : FactAttribute
{
    public NvrtcFactAttribute()
    {
        if (!Nvrtc.TryGet(out _, out string reason) && Environment.GetEnvironmentVariable("ILGPUOCT_REQUIRE_NVRTC") != "1")
        {
            Skip = $"NVRTC is not installed ({reason}); set ILGPUOCT_REQUIRE_NVRTC=1 to make this a failure.";
        }
    }
}

/// <summary>A fact that needs a working CUDA device (driver, GPU and NVRTC); skipped with the probe's reason elsewhere.</summary>
public sealed class CudaFactAttribute : FactAttribute
{
    public CudaFactAttribute()
    {
        if (!CudaAvailability.Available(out string reason))
        {
            Skip = $"no usable CUDA device: {reason}";
        }
    }
}

internal static class CudaAvailability
{
    private static readonly Lazy<(bool Available, string Reason)> Probe = new(() =>
    {
        if (CudaProbe.TryOpen(out var accelerator, out string reason))
        {
            accelerator!.Dispose();
            return (true, "");
        }
        return (false, reason);
    });

    public static bool Available(out string reason)
    {
        (bool available, reason) = Probe.Value;
        return available;
    }
}
