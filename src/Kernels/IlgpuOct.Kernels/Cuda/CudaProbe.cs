namespace IlgpuOct.Kernels;

// PLACEHOLDER replaced by the CUDA work package: opens the cuda accelerator or says why not.
internal static class CudaProbe
{
    public static bool TryOpen(out Accelerator? accelerator, out string reason)
    {
        accelerator = null;
        reason = "the CUDA accelerator is not built yet";
        return false;
    }
}
