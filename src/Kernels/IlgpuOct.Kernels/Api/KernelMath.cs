namespace IlgpuOct.Kernels;

/// <summary>
/// Math intrinsics that have no <see cref="MathF"/> counterpart. Kernels use <see cref="MathF"/> and
/// <see cref="Math"/> directly for the rest (Exp, Log, Sqrt, Tanh, Min, Max, Abs, Floor,
/// FusedMultiplyAdd, Pow, ...), which the generator maps to CUDA's functions.
/// </summary>
public static class KernelMath
{
    /// <summary>1/sqrt(x); <c>rsqrtf</c> on CUDA (approximate there to ~2 ulp).</summary>
    public static float Rsqrt(float x) => 1f / MathF.Sqrt(x);

    /// <summary>1/sqrt(x) in double; <c>rsqrt</c> on CUDA.</summary>
    public static double Rsqrt(double x) => 1.0 / Math.Sqrt(x);

    /// <summary>Reinterprets float bits as int (<c>__float_as_int</c>).</summary>
    public static int FloatAsInt(float x) => BitConverter.SingleToInt32Bits(x);

    /// <summary>Reinterprets int bits as float (<c>__int_as_float</c>).</summary>
    public static float IntAsFloat(int x) => BitConverter.Int32BitsToSingle(x);

    /// <summary>
    /// <c>cvt.rna.tf32.f32</c>: x rounded to TF32 (10-bit mantissa, ties away from zero), as a float whose
    /// low 13 bits are 0; the operand form of <see cref="KernelContext.MmaTf32"/>. See <see cref="TensorCore.RoundToTf32Bits"/>.
    /// </summary>
    public static float RoundToTf32(float x) => BitConverter.UInt32BitsToSingle(TensorCore.RoundToTf32Bits(x));

    /// <summary>
    /// <c>cvt.rn.bf16x2.f32</c>: two floats rounded to BF16 (ties to even) and packed, <paramref name="low"/>
    /// in bits 0..15 and <paramref name="high"/> in bits 16..31; the operand form of <see cref="KernelContext.MmaBf16"/>.
    /// </summary>
    public static uint PackBf16x2(float low, float high) =>
        TensorCore.RoundToBf16Bits(low) | ((uint)TensorCore.RoundToBf16Bits(high) << 16);
}
