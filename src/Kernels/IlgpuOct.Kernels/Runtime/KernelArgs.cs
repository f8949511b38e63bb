using System.Runtime.CompilerServices;

namespace IlgpuOct.Kernels;

/// <summary>Packs launch arguments into 8-byte slots (little-endian), the layout cuLaunchKernel reads through its pointer array.</summary>
public static class KernelArgs
{
    public static ulong Pack<T>(T value) where T : unmanaged
    {
        if (Unsafe.SizeOf<T>() > sizeof(ulong))
        {
            throw new NotSupportedException($"Kernel scalar arguments are at most 8 bytes; {typeof(T).Name} is larger.");
        }
        ulong bits = 0;
        Unsafe.As<ulong, T>(ref bits) = value;
        return bits;
    }
}
