namespace IlgpuOct.Kernels;

/// <summary>A kernel failed: names the kernel, the launch shape and, on host accelerators, the block and thread.</summary>
public sealed class KernelExecutionException : Exception
{
    public KernelExecutionException(string message, Exception? inner = null) : base(message, inner)
    {
    }
}
