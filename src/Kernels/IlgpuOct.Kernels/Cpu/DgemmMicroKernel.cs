namespace IlgpuOct.Kernels.Cpu;

/// <summary>
/// The tile of the float64 register-blocked GEMM micro-kernel of <see cref="DgemmEngine"/>, which is
/// <see cref="SgemmMicroKernels.Vector256x6x2{T}"/> specialised for double (one body for both precisions):
/// C[0..6, 0..8] = alpha * (packed A panel x packed B panel) + beta * C. A panel: kc steps of 6 doubles
/// (one column of op(A) per step); B panel: kc steps of 8 doubles (one row of op(B) per step). On AVX2+FMA
/// the 6 x 2-vector tile takes 12 of the 16 ymm registers, with 2 for B and 1 for the broadcast of A.
/// </summary>
internal static class DgemmMicroKernel
{
    /// <summary>Rows of the register tile.</summary>
    public const int Mr = 6;

    /// <summary>Columns of the register tile (two 256-bit vectors of doubles).</summary>
    public const int Nr = 8;
}

