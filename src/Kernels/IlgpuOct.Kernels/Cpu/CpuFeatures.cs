using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace IlgpuOct.Kernels;

/// <summary>What the host CPU offers the fast engine.</summary>
public static class CpuFeatures
{
    public static bool HasAvx512 => Vector512.IsHardwareAccelerated && Avx512F.IsSupported;

    public static bool HasAvx2Fma => Avx2.IsSupported && Fma.IsSupported;

    /// <summary>FP32 lanes of the widest accelerated vector.</summary>
    public static int Fp32Lanes => HasAvx512 ? 16 : Vector256.IsHardwareAccelerated ? 8 : Vector128.IsHardwareAccelerated ? 4 : 1;

    public static string Describe() => HasAvx512 ? "AVX-512" : HasAvx2Fma ? "AVX2+FMA" : Vector128.IsHardwareAccelerated ? "SSE/NEON" : "scalar";
}
