using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace IlgpuOct.Kernels.Cpu;

// Written out in full (from a small script, then reviewed), like SgemmMicroKernels: every accumulator is
// its own local so the JIT keeps the whole 6 x 8 tile of C in vector registers for the length of the K loop.

/// <summary>
/// The float64 register-blocked GEMM micro-kernel of <see cref="DgemmEngine"/>:
/// C[0..6, 0..8] = alpha * (packed A panel x packed B panel) + beta * C. A panel: kc steps of 6 doubles
/// (one column of op(A) per step); B panel: kc steps of 8 doubles (one row of op(B) per step). On AVX2+FMA
/// the 6 x 2-vector tile takes 12 of the 16 ymm registers, with 2 for B and 1 for the broadcast of A.
/// </summary>
internal static unsafe class DgemmMicroKernel
{
    /// <summary>Rows of the register tile.</summary>
    public const int Mr = 6;

    /// <summary>Columns of the register tile (two 256-bit vectors of doubles).</summary>
    public const int Nr = 8;

    /// <summary>C rows are <paramref name="ldc"/> doubles apart; beta == 0 overwrites C without reading it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Vector256x6x8(int kc, double* a, double* b, double* c, nint ldc, double alpha, double beta)
    {
        var c00 = Vector256<double>.Zero; var c01 = Vector256<double>.Zero;
        var c10 = Vector256<double>.Zero; var c11 = Vector256<double>.Zero;
        var c20 = Vector256<double>.Zero; var c21 = Vector256<double>.Zero;
        var c30 = Vector256<double>.Zero; var c31 = Vector256<double>.Zero;
        var c40 = Vector256<double>.Zero; var c41 = Vector256<double>.Zero;
        var c50 = Vector256<double>.Zero; var c51 = Vector256<double>.Zero;
        int p = 0;
        for (; p + 4 <= kc; p += 4)
        {
            var b0 = Vector256.Load(b + 0);
            var b1 = Vector256.Load(b + 4);
            var a0 = Vector256.Create(a[0]);
            c00 = Vector256.FusedMultiplyAdd(a0, b0, c00);
            c01 = Vector256.FusedMultiplyAdd(a0, b1, c01);
            var a1 = Vector256.Create(a[1]);
            c10 = Vector256.FusedMultiplyAdd(a1, b0, c10);
            c11 = Vector256.FusedMultiplyAdd(a1, b1, c11);
            var a2 = Vector256.Create(a[2]);
            c20 = Vector256.FusedMultiplyAdd(a2, b0, c20);
            c21 = Vector256.FusedMultiplyAdd(a2, b1, c21);
            var a3 = Vector256.Create(a[3]);
            c30 = Vector256.FusedMultiplyAdd(a3, b0, c30);
            c31 = Vector256.FusedMultiplyAdd(a3, b1, c31);
            var a4 = Vector256.Create(a[4]);
            c40 = Vector256.FusedMultiplyAdd(a4, b0, c40);
            c41 = Vector256.FusedMultiplyAdd(a4, b1, c41);
            var a5 = Vector256.Create(a[5]);
            c50 = Vector256.FusedMultiplyAdd(a5, b0, c50);
            c51 = Vector256.FusedMultiplyAdd(a5, b1, c51);
            b0 = Vector256.Load(b + 8);
            b1 = Vector256.Load(b + 12);
            a0 = Vector256.Create(a[6]);
            c00 = Vector256.FusedMultiplyAdd(a0, b0, c00);
            c01 = Vector256.FusedMultiplyAdd(a0, b1, c01);
            a1 = Vector256.Create(a[7]);
            c10 = Vector256.FusedMultiplyAdd(a1, b0, c10);
            c11 = Vector256.FusedMultiplyAdd(a1, b1, c11);
            a2 = Vector256.Create(a[8]);
            c20 = Vector256.FusedMultiplyAdd(a2, b0, c20);
            c21 = Vector256.FusedMultiplyAdd(a2, b1, c21);
            a3 = Vector256.Create(a[9]);
            c30 = Vector256.FusedMultiplyAdd(a3, b0, c30);
            c31 = Vector256.FusedMultiplyAdd(a3, b1, c31);
            a4 = Vector256.Create(a[10]);
            c40 = Vector256.FusedMultiplyAdd(a4, b0, c40);
            c41 = Vector256.FusedMultiplyAdd(a4, b1, c41);
            a5 = Vector256.Create(a[11]);
            c50 = Vector256.FusedMultiplyAdd(a5, b0, c50);
            c51 = Vector256.FusedMultiplyAdd(a5, b1, c51);
            b0 = Vector256.Load(b + 16);
            b1 = Vector256.Load(b + 20);
            a0 = Vector256.Create(a[12]);
            c00 = Vector256.FusedMultiplyAdd(a0, b0, c00);
            c01 = Vector256.FusedMultiplyAdd(a0, b1, c01);
            a1 = Vector256.Create(a[13]);
            c10 = Vector256.FusedMultiplyAdd(a1, b0, c10);
            c11 = Vector256.FusedMultiplyAdd(a1, b1, c11);
            a2 = Vector256.Create(a[14]);
            c20 = Vector256.FusedMultiplyAdd(a2, b0, c20);
            c21 = Vector256.FusedMultiplyAdd(a2, b1, c21);
            a3 = Vector256.Create(a[15]);
            c30 = Vector256.FusedMultiplyAdd(a3, b0, c30);
            c31 = Vector256.FusedMultiplyAdd(a3, b1, c31);
            a4 = Vector256.Create(a[16]);
            c40 = Vector256.FusedMultiplyAdd(a4, b0, c40);
            c41 = Vector256.FusedMultiplyAdd(a4, b1, c41);
            a5 = Vector256.Create(a[17]);
            c50 = Vector256.FusedMultiplyAdd(a5, b0, c50);
            c51 = Vector256.FusedMultiplyAdd(a5, b1, c51);
            b0 = Vector256.Load(b + 24);
            b1 = Vector256.Load(b + 28);
            a0 = Vector256.Create(a[18]);
            c00 = Vector256.FusedMultiplyAdd(a0, b0, c00);
            c01 = Vector256.FusedMultiplyAdd(a0, b1, c01);
            a1 = Vector256.Create(a[19]);
            c10 = Vector256.FusedMultiplyAdd(a1, b0, c10);
            c11 = Vector256.FusedMultiplyAdd(a1, b1, c11);
            a2 = Vector256.Create(a[20]);
            c20 = Vector256.FusedMultiplyAdd(a2, b0, c20);
            c21 = Vector256.FusedMultiplyAdd(a2, b1, c21);
            a3 = Vector256.Create(a[21]);
            c30 = Vector256.FusedMultiplyAdd(a3, b0, c30);
            c31 = Vector256.FusedMultiplyAdd(a3, b1, c31);
            a4 = Vector256.Create(a[22]);
            c40 = Vector256.FusedMultiplyAdd(a4, b0, c40);
            c41 = Vector256.FusedMultiplyAdd(a4, b1, c41);
            a5 = Vector256.Create(a[23]);
            c50 = Vector256.FusedMultiplyAdd(a5, b0, c50);
            c51 = Vector256.FusedMultiplyAdd(a5, b1, c51);
            a += 24;
            b += 32;
        }
        for (; p < kc; p++)
        {
            var b0 = Vector256.Load(b + 0);
            var b1 = Vector256.Load(b + 4);
            var a0 = Vector256.Create(a[0]);
            c00 = Vector256.FusedMultiplyAdd(a0, b0, c00);
            c01 = Vector256.FusedMultiplyAdd(a0, b1, c01);
            var a1 = Vector256.Create(a[1]);
            c10 = Vector256.FusedMultiplyAdd(a1, b0, c10);
            c11 = Vector256.FusedMultiplyAdd(a1, b1, c11);
            var a2 = Vector256.Create(a[2]);
            c20 = Vector256.FusedMultiplyAdd(a2, b0, c20);
            c21 = Vector256.FusedMultiplyAdd(a2, b1, c21);
            var a3 = Vector256.Create(a[3]);
            c30 = Vector256.FusedMultiplyAdd(a3, b0, c30);
            c31 = Vector256.FusedMultiplyAdd(a3, b1, c31);
            var a4 = Vector256.Create(a[4]);
            c40 = Vector256.FusedMultiplyAdd(a4, b0, c40);
            c41 = Vector256.FusedMultiplyAdd(a4, b1, c41);
            var a5 = Vector256.Create(a[5]);
            c50 = Vector256.FusedMultiplyAdd(a5, b0, c50);
            c51 = Vector256.FusedMultiplyAdd(a5, b1, c51);
            a += 6;
            b += 8;
        }
        var alphaV = Vector256.Create(alpha);
        if (beta == 0)
        {
            (alphaV * c00).Store(c + 0 * ldc + 0);
            (alphaV * c01).Store(c + 0 * ldc + 4);
            (alphaV * c10).Store(c + 1 * ldc + 0);
            (alphaV * c11).Store(c + 1 * ldc + 4);
            (alphaV * c20).Store(c + 2 * ldc + 0);
            (alphaV * c21).Store(c + 2 * ldc + 4);
            (alphaV * c30).Store(c + 3 * ldc + 0);
            (alphaV * c31).Store(c + 3 * ldc + 4);
            (alphaV * c40).Store(c + 4 * ldc + 0);
            (alphaV * c41).Store(c + 4 * ldc + 4);
            (alphaV * c50).Store(c + 5 * ldc + 0);
            (alphaV * c51).Store(c + 5 * ldc + 4);
        }
        else
        {
            var betaV = Vector256.Create(beta);
            Vector256.FusedMultiplyAdd(betaV, Vector256.Load(c + 0 * ldc + 0), alphaV * c00).Store(c + 0 * ldc + 0);
            Vector256.FusedMultiplyAdd(betaV, Vector256.Load(c + 0 * ldc + 4), alphaV * c01).Store(c + 0 * ldc + 4);
            Vector256.FusedMultiplyAdd(betaV, Vector256.Load(c + 1 * ldc + 0), alphaV * c10).Store(c + 1 * ldc + 0);
            Vector256.FusedMultiplyAdd(betaV, Vector256.Load(c + 1 * ldc + 4), alphaV * c11).Store(c + 1 * ldc + 4);
            Vector256.FusedMultiplyAdd(betaV, Vector256.Load(c + 2 * ldc + 0), alphaV * c20).Store(c + 2 * ldc + 0);
            Vector256.FusedMultiplyAdd(betaV, Vector256.Load(c + 2 * ldc + 4), alphaV * c21).Store(c + 2 * ldc + 4);
            Vector256.FusedMultiplyAdd(betaV, Vector256.Load(c + 3 * ldc + 0), alphaV * c30).Store(c + 3 * ldc + 0);
            Vector256.FusedMultiplyAdd(betaV, Vector256.Load(c + 3 * ldc + 4), alphaV * c31).Store(c + 3 * ldc + 4);
            Vector256.FusedMultiplyAdd(betaV, Vector256.Load(c + 4 * ldc + 0), alphaV * c40).Store(c + 4 * ldc + 0);
            Vector256.FusedMultiplyAdd(betaV, Vector256.Load(c + 4 * ldc + 4), alphaV * c41).Store(c + 4 * ldc + 4);
            Vector256.FusedMultiplyAdd(betaV, Vector256.Load(c + 5 * ldc + 0), alphaV * c50).Store(c + 5 * ldc + 0);
            Vector256.FusedMultiplyAdd(betaV, Vector256.Load(c + 5 * ldc + 4), alphaV * c51).Store(c + 5 * ldc + 4);
        }
    }
}
