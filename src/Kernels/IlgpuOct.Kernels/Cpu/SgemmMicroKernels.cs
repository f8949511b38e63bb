using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace IlgpuOct.Kernels.Cpu;

// Written out in full (from a small script, then reviewed): every accumulator is its own local so the
// JIT keeps the whole MR x NR tile of C in vector registers for the length of the K loop.

/// <summary>
/// Register-blocked SGEMM micro-kernels: C[0..MR, 0..NR] = alpha * (packed A panel x packed B panel) + beta * C.
/// A panel: kc steps of MR floats (one column of op(A) per step); B panel: kc steps of NR floats
/// (one row of op(B) per step). C rows are ldc floats apart; every call writes a full MR x NR tile.
/// </summary>
internal static unsafe class SgemmMicroKernels
{
    /// <summary>AVX-512 (or any 512-bit SIMD): 12 x 32 tile in 24 accumulators of 32 registers.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Vector512x12x32(int kc, float* a, float* b, float* c, nint ldc, float alpha, float beta)
    {
        var c00 = Vector512<float>.Zero; var c01 = Vector512<float>.Zero;
        var c10 = Vector512<float>.Zero; var c11 = Vector512<float>.Zero;
        var c20 = Vector512<float>.Zero; var c21 = Vector512<float>.Zero;
        var c30 = Vector512<float>.Zero; var c31 = Vector512<float>.Zero;
        var c40 = Vector512<float>.Zero; var c41 = Vector512<float>.Zero;
        var c50 = Vector512<float>.Zero; var c51 = Vector512<float>.Zero;
        var c60 = Vector512<float>.Zero; var c61 = Vector512<float>.Zero;
        var c70 = Vector512<float>.Zero; var c71 = Vector512<float>.Zero;
        var c80 = Vector512<float>.Zero; var c81 = Vector512<float>.Zero;
        var c90 = Vector512<float>.Zero; var c91 = Vector512<float>.Zero;
        var c100 = Vector512<float>.Zero; var c101 = Vector512<float>.Zero;
        var c110 = Vector512<float>.Zero; var c111 = Vector512<float>.Zero;
        int p = 0;
        for (; p + 2 <= kc; p += 2)
        {
            var b0 = Vector512.Load(b + 0);
            var b1 = Vector512.Load(b + 16);
            var a0 = Vector512.Create(a[0]);
            c00 = Vector512.FusedMultiplyAdd(a0, b0, c00);
            c01 = Vector512.FusedMultiplyAdd(a0, b1, c01);
            var a1 = Vector512.Create(a[1]);
            c10 = Vector512.FusedMultiplyAdd(a1, b0, c10);
            c11 = Vector512.FusedMultiplyAdd(a1, b1, c11);
            var a2 = Vector512.Create(a[2]);
            c20 = Vector512.FusedMultiplyAdd(a2, b0, c20);
            c21 = Vector512.FusedMultiplyAdd(a2, b1, c21);
            var a3 = Vector512.Create(a[3]);
            c30 = Vector512.FusedMultiplyAdd(a3, b0, c30);
            c31 = Vector512.FusedMultiplyAdd(a3, b1, c31);
            var a4 = Vector512.Create(a[4]);
            c40 = Vector512.FusedMultiplyAdd(a4, b0, c40);
            c41 = Vector512.FusedMultiplyAdd(a4, b1, c41);
            var a5 = Vector512.Create(a[5]);
            c50 = Vector512.FusedMultiplyAdd(a5, b0, c50);
            c51 = Vector512.FusedMultiplyAdd(a5, b1, c51);
            var a6 = Vector512.Create(a[6]);
            c60 = Vector512.FusedMultiplyAdd(a6, b0, c60);
            c61 = Vector512.FusedMultiplyAdd(a6, b1, c61);
            var a7 = Vector512.Create(a[7]);
            c70 = Vector512.FusedMultiplyAdd(a7, b0, c70);
            c71 = Vector512.FusedMultiplyAdd(a7, b1, c71);
            var a8 = Vector512.Create(a[8]);
            c80 = Vector512.FusedMultiplyAdd(a8, b0, c80);
            c81 = Vector512.FusedMultiplyAdd(a8, b1, c81);
            var a9 = Vector512.Create(a[9]);
            c90 = Vector512.FusedMultiplyAdd(a9, b0, c90);
            c91 = Vector512.FusedMultiplyAdd(a9, b1, c91);
            var a10 = Vector512.Create(a[10]);
            c100 = Vector512.FusedMultiplyAdd(a10, b0, c100);
            c101 = Vector512.FusedMultiplyAdd(a10, b1, c101);
            var a11 = Vector512.Create(a[11]);
            c110 = Vector512.FusedMultiplyAdd(a11, b0, c110);
            c111 = Vector512.FusedMultiplyAdd(a11, b1, c111);
            b0 = Vector512.Load(b + 32);
            b1 = Vector512.Load(b + 48);
            a0 = Vector512.Create(a[12]);
            c00 = Vector512.FusedMultiplyAdd(a0, b0, c00);
            c01 = Vector512.FusedMultiplyAdd(a0, b1, c01);
            a1 = Vector512.Create(a[13]);
            c10 = Vector512.FusedMultiplyAdd(a1, b0, c10);
            c11 = Vector512.FusedMultiplyAdd(a1, b1, c11);
            a2 = Vector512.Create(a[14]);
            c20 = Vector512.FusedMultiplyAdd(a2, b0, c20);
            c21 = Vector512.FusedMultiplyAdd(a2, b1, c21);
            a3 = Vector512.Create(a[15]);
            c30 = Vector512.FusedMultiplyAdd(a3, b0, c30);
            c31 = Vector512.FusedMultiplyAdd(a3, b1, c31);
            a4 = Vector512.Create(a[16]);
            c40 = Vector512.FusedMultiplyAdd(a4, b0, c40);
            c41 = Vector512.FusedMultiplyAdd(a4, b1, c41);
            a5 = Vector512.Create(a[17]);
            c50 = Vector512.FusedMultiplyAdd(a5, b0, c50);
            c51 = Vector512.FusedMultiplyAdd(a5, b1, c51);
            a6 = Vector512.Create(a[18]);
            c60 = Vector512.FusedMultiplyAdd(a6, b0, c60);
            c61 = Vector512.FusedMultiplyAdd(a6, b1, c61);
            a7 = Vector512.Create(a[19]);
            c70 = Vector512.FusedMultiplyAdd(a7, b0, c70);
            c71 = Vector512.FusedMultiplyAdd(a7, b1, c71);
            a8 = Vector512.Create(a[20]);
            c80 = Vector512.FusedMultiplyAdd(a8, b0, c80);
            c81 = Vector512.FusedMultiplyAdd(a8, b1, c81);
            a9 = Vector512.Create(a[21]);
            c90 = Vector512.FusedMultiplyAdd(a9, b0, c90);
            c91 = Vector512.FusedMultiplyAdd(a9, b1, c91);
            a10 = Vector512.Create(a[22]);
            c100 = Vector512.FusedMultiplyAdd(a10, b0, c100);
            c101 = Vector512.FusedMultiplyAdd(a10, b1, c101);
            a11 = Vector512.Create(a[23]);
            c110 = Vector512.FusedMultiplyAdd(a11, b0, c110);
            c111 = Vector512.FusedMultiplyAdd(a11, b1, c111);
            a += 24;
            b += 64;
        }
        for (; p < kc; p++)
        {
            var b0 = Vector512.Load(b + 0);
            var b1 = Vector512.Load(b + 16);
            var a0 = Vector512.Create(a[0]);
            c00 = Vector512.FusedMultiplyAdd(a0, b0, c00);
            c01 = Vector512.FusedMultiplyAdd(a0, b1, c01);
            var a1 = Vector512.Create(a[1]);
            c10 = Vector512.FusedMultiplyAdd(a1, b0, c10);
            c11 = Vector512.FusedMultiplyAdd(a1, b1, c11);
            var a2 = Vector512.Create(a[2]);
            c20 = Vector512.FusedMultiplyAdd(a2, b0, c20);
            c21 = Vector512.FusedMultiplyAdd(a2, b1, c21);
            var a3 = Vector512.Create(a[3]);
            c30 = Vector512.FusedMultiplyAdd(a3, b0, c30);
            c31 = Vector512.FusedMultiplyAdd(a3, b1, c31);
            var a4 = Vector512.Create(a[4]);
            c40 = Vector512.FusedMultiplyAdd(a4, b0, c40);
            c41 = Vector512.FusedMultiplyAdd(a4, b1, c41);
            var a5 = Vector512.Create(a[5]);
            c50 = Vector512.FusedMultiplyAdd(a5, b0, c50);
            c51 = Vector512.FusedMultiplyAdd(a5, b1, c51);
            var a6 = Vector512.Create(a[6]);
            c60 = Vector512.FusedMultiplyAdd(a6, b0, c60);
            c61 = Vector512.FusedMultiplyAdd(a6, b1, c61);
            var a7 = Vector512.Create(a[7]);
            c70 = Vector512.FusedMultiplyAdd(a7, b0, c70);
            c71 = Vector512.FusedMultiplyAdd(a7, b1, c71);
            var a8 = Vector512.Create(a[8]);
            c80 = Vector512.FusedMultiplyAdd(a8, b0, c80);
            c81 = Vector512.FusedMultiplyAdd(a8, b1, c81);
            var a9 = Vector512.Create(a[9]);
            c90 = Vector512.FusedMultiplyAdd(a9, b0, c90);
            c91 = Vector512.FusedMultiplyAdd(a9, b1, c91);
            var a10 = Vector512.Create(a[10]);
            c100 = Vector512.FusedMultiplyAdd(a10, b0, c100);
            c101 = Vector512.FusedMultiplyAdd(a10, b1, c101);
            var a11 = Vector512.Create(a[11]);
            c110 = Vector512.FusedMultiplyAdd(a11, b0, c110);
            c111 = Vector512.FusedMultiplyAdd(a11, b1, c111);
            a += 12;
            b += 32;
        }
        var alphaV = Vector512.Create(alpha);
        if (beta == 0)
        {
            // beta == 0 overwrites C without reading it, so NaN or garbage there does not leak through.
            (alphaV * c00).Store(c + 0 * ldc + 0);
            (alphaV * c01).Store(c + 0 * ldc + 16);
            (alphaV * c10).Store(c + 1 * ldc + 0);
            (alphaV * c11).Store(c + 1 * ldc + 16);
            (alphaV * c20).Store(c + 2 * ldc + 0);
            (alphaV * c21).Store(c + 2 * ldc + 16);
            (alphaV * c30).Store(c + 3 * ldc + 0);
            (alphaV * c31).Store(c + 3 * ldc + 16);
            (alphaV * c40).Store(c + 4 * ldc + 0);
            (alphaV * c41).Store(c + 4 * ldc + 16);
            (alphaV * c50).Store(c + 5 * ldc + 0);
            (alphaV * c51).Store(c + 5 * ldc + 16);
            (alphaV * c60).Store(c + 6 * ldc + 0);
            (alphaV * c61).Store(c + 6 * ldc + 16);
            (alphaV * c70).Store(c + 7 * ldc + 0);
            (alphaV * c71).Store(c + 7 * ldc + 16);
            (alphaV * c80).Store(c + 8 * ldc + 0);
            (alphaV * c81).Store(c + 8 * ldc + 16);
            (alphaV * c90).Store(c + 9 * ldc + 0);
            (alphaV * c91).Store(c + 9 * ldc + 16);
            (alphaV * c100).Store(c + 10 * ldc + 0);
            (alphaV * c101).Store(c + 10 * ldc + 16);
            (alphaV * c110).Store(c + 11 * ldc + 0);
            (alphaV * c111).Store(c + 11 * ldc + 16);
        }
        else
        {
            var betaV = Vector512.Create(beta);
            Vector512.FusedMultiplyAdd(betaV, Vector512.Load(c + 0 * ldc + 0), alphaV * c00).Store(c + 0 * ldc + 0);
            Vector512.FusedMultiplyAdd(betaV, Vector512.Load(c + 0 * ldc + 16), alphaV * c01).Store(c + 0 * ldc + 16);
            Vector512.FusedMultiplyAdd(betaV, Vector512.Load(c + 1 * ldc + 0), alphaV * c10).Store(c + 1 * ldc + 0);
            Vector512.FusedMultiplyAdd(betaV, Vector512.Load(c + 1 * ldc + 16), alphaV * c11).Store(c + 1 * ldc + 16);
            Vector512.FusedMultiplyAdd(betaV, Vector512.Load(c + 2 * ldc + 0), alphaV * c20).Store(c + 2 * ldc + 0);
            Vector512.FusedMultiplyAdd(betaV, Vector512.Load(c + 2 * ldc + 16), alphaV * c21).Store(c + 2 * ldc + 16);
            Vector512.FusedMultiplyAdd(betaV, Vector512.Load(c + 3 * ldc + 0), alphaV * c30).Store(c + 3 * ldc + 0);
            Vector512.FusedMultiplyAdd(betaV, Vector512.Load(c + 3 * ldc + 16), alphaV * c31).Store(c + 3 * ldc + 16);
            Vector512.FusedMultiplyAdd(betaV, Vector512.Load(c + 4 * ldc + 0), alphaV * c40).Store(c + 4 * ldc + 0);
            Vector512.FusedMultiplyAdd(betaV, Vector512.Load(c + 4 * ldc + 16), alphaV * c41).Store(c + 4 * ldc + 16);
            Vector512.FusedMultiplyAdd(betaV, Vector512.Load(c + 5 * ldc + 0), alphaV * c50).Store(c + 5 * ldc + 0);
            Vector512.FusedMultiplyAdd(betaV, Vector512.Load(c + 5 * ldc + 16), alphaV * c51).Store(c + 5 * ldc + 16);
            Vector512.FusedMultiplyAdd(betaV, Vector512.Load(c + 6 * ldc + 0), alphaV * c60).Store(c + 6 * ldc + 0);
            Vector512.FusedMultiplyAdd(betaV, Vector512.Load(c + 6 * ldc + 16), alphaV * c61).Store(c + 6 * ldc + 16);
            Vector512.FusedMultiplyAdd(betaV, Vector512.Load(c + 7 * ldc + 0), alphaV * c70).Store(c + 7 * ldc + 0);
            Vector512.FusedMultiplyAdd(betaV, Vector512.Load(c + 7 * ldc + 16), alphaV * c71).Store(c + 7 * ldc + 16);
            Vector512.FusedMultiplyAdd(betaV, Vector512.Load(c + 8 * ldc + 0), alphaV * c80).Store(c + 8 * ldc + 0);
            Vector512.FusedMultiplyAdd(betaV, Vector512.Load(c + 8 * ldc + 16), alphaV * c81).Store(c + 8 * ldc + 16);
            Vector512.FusedMultiplyAdd(betaV, Vector512.Load(c + 9 * ldc + 0), alphaV * c90).Store(c + 9 * ldc + 0);
            Vector512.FusedMultiplyAdd(betaV, Vector512.Load(c + 9 * ldc + 16), alphaV * c91).Store(c + 9 * ldc + 16);
            Vector512.FusedMultiplyAdd(betaV, Vector512.Load(c + 10 * ldc + 0), alphaV * c100).Store(c + 10 * ldc + 0);
            Vector512.FusedMultiplyAdd(betaV, Vector512.Load(c + 10 * ldc + 16), alphaV * c101).Store(c + 10 * ldc + 16);
            Vector512.FusedMultiplyAdd(betaV, Vector512.Load(c + 11 * ldc + 0), alphaV * c110).Store(c + 11 * ldc + 0);
            Vector512.FusedMultiplyAdd(betaV, Vector512.Load(c + 11 * ldc + 16), alphaV * c111).Store(c + 11 * ldc + 16);
        }
    }

    /// <summary>
    /// AVX2+FMA (or any 256-bit SIMD): a 6 x 2-vector tile in 12 accumulators of 16 registers, for single
    /// (6 x 16, SGEMM) and double precision (6 x 8, <see cref="DgemmEngine"/>): one body, specialised by the
    /// JIT per type. A panel: kc steps of 6 values; B panel: kc steps of 2 vectors.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Vector256x6x2<T>(int kc, T* a, T* b, T* c, nint ldc, T alpha, T beta)
        where T : unmanaged, INumber<T>
    {
        int w = Vector256<T>.Count;
        var c00 = Vector256<T>.Zero; var c01 = Vector256<T>.Zero;
        var c10 = Vector256<T>.Zero; var c11 = Vector256<T>.Zero;
        var c20 = Vector256<T>.Zero; var c21 = Vector256<T>.Zero;
        var c30 = Vector256<T>.Zero; var c31 = Vector256<T>.Zero;
        var c40 = Vector256<T>.Zero; var c41 = Vector256<T>.Zero;
        var c50 = Vector256<T>.Zero; var c51 = Vector256<T>.Zero;
        PrefetchTile(c, ldc, 6, 2 * w);
        int p = 0;
        for (; p + 4 <= kc; p += 4)
        {
            var b0 = Vector256.Load(b + 0);
            var b1 = Vector256.Load(b + w);
            var a0 = Vector256.Create(a[0]);
            c00 = Fma(a0, b0, c00);
            c01 = Fma(a0, b1, c01);
            var a1 = Vector256.Create(a[1]);
            c10 = Fma(a1, b0, c10);
            c11 = Fma(a1, b1, c11);
            var a2 = Vector256.Create(a[2]);
            c20 = Fma(a2, b0, c20);
            c21 = Fma(a2, b1, c21);
            var a3 = Vector256.Create(a[3]);
            c30 = Fma(a3, b0, c30);
            c31 = Fma(a3, b1, c31);
            var a4 = Vector256.Create(a[4]);
            c40 = Fma(a4, b0, c40);
            c41 = Fma(a4, b1, c41);
            var a5 = Vector256.Create(a[5]);
            c50 = Fma(a5, b0, c50);
            c51 = Fma(a5, b1, c51);
            b0 = Vector256.Load(b + 2 * w);
            b1 = Vector256.Load(b + 3 * w);
            a0 = Vector256.Create(a[6]);
            c00 = Fma(a0, b0, c00);
            c01 = Fma(a0, b1, c01);
            a1 = Vector256.Create(a[7]);
            c10 = Fma(a1, b0, c10);
            c11 = Fma(a1, b1, c11);
            a2 = Vector256.Create(a[8]);
            c20 = Fma(a2, b0, c20);
            c21 = Fma(a2, b1, c21);
            a3 = Vector256.Create(a[9]);
            c30 = Fma(a3, b0, c30);
            c31 = Fma(a3, b1, c31);
            a4 = Vector256.Create(a[10]);
            c40 = Fma(a4, b0, c40);
            c41 = Fma(a4, b1, c41);
            a5 = Vector256.Create(a[11]);
            c50 = Fma(a5, b0, c50);
            c51 = Fma(a5, b1, c51);
            b0 = Vector256.Load(b + 4 * w);
            b1 = Vector256.Load(b + 5 * w);
            a0 = Vector256.Create(a[12]);
            c00 = Fma(a0, b0, c00);
            c01 = Fma(a0, b1, c01);
            a1 = Vector256.Create(a[13]);
            c10 = Fma(a1, b0, c10);
            c11 = Fma(a1, b1, c11);
            a2 = Vector256.Create(a[14]);
            c20 = Fma(a2, b0, c20);
            c21 = Fma(a2, b1, c21);
            a3 = Vector256.Create(a[15]);
            c30 = Fma(a3, b0, c30);
            c31 = Fma(a3, b1, c31);
            a4 = Vector256.Create(a[16]);
            c40 = Fma(a4, b0, c40);
            c41 = Fma(a4, b1, c41);
            a5 = Vector256.Create(a[17]);
            c50 = Fma(a5, b0, c50);
            c51 = Fma(a5, b1, c51);
            b0 = Vector256.Load(b + 6 * w);
            b1 = Vector256.Load(b + 7 * w);
            a0 = Vector256.Create(a[18]);
            c00 = Fma(a0, b0, c00);
            c01 = Fma(a0, b1, c01);
            a1 = Vector256.Create(a[19]);
            c10 = Fma(a1, b0, c10);
            c11 = Fma(a1, b1, c11);
            a2 = Vector256.Create(a[20]);
            c20 = Fma(a2, b0, c20);
            c21 = Fma(a2, b1, c21);
            a3 = Vector256.Create(a[21]);
            c30 = Fma(a3, b0, c30);
            c31 = Fma(a3, b1, c31);
            a4 = Vector256.Create(a[22]);
            c40 = Fma(a4, b0, c40);
            c41 = Fma(a4, b1, c41);
            a5 = Vector256.Create(a[23]);
            c50 = Fma(a5, b0, c50);
            c51 = Fma(a5, b1, c51);
            a += 24;
            b += 8 * w;
        }
        for (; p < kc; p++)
        {
            var b0 = Vector256.Load(b + 0);
            var b1 = Vector256.Load(b + w);
            var a0 = Vector256.Create(a[0]);
            c00 = Fma(a0, b0, c00);
            c01 = Fma(a0, b1, c01);
            var a1 = Vector256.Create(a[1]);
            c10 = Fma(a1, b0, c10);
            c11 = Fma(a1, b1, c11);
            var a2 = Vector256.Create(a[2]);
            c20 = Fma(a2, b0, c20);
            c21 = Fma(a2, b1, c21);
            var a3 = Vector256.Create(a[3]);
            c30 = Fma(a3, b0, c30);
            c31 = Fma(a3, b1, c31);
            var a4 = Vector256.Create(a[4]);
            c40 = Fma(a4, b0, c40);
            c41 = Fma(a4, b1, c41);
            var a5 = Vector256.Create(a[5]);
            c50 = Fma(a5, b0, c50);
            c51 = Fma(a5, b1, c51);
            a += 6;
            b += 2 * w;
        }
        var alphaV = Vector256.Create(alpha);
        if (beta == T.Zero)
        {
            // beta == 0 overwrites C without reading it, so NaN or garbage there does not leak through.
            (alphaV * c00).Store(c + 0 * ldc + 0);
            (alphaV * c01).Store(c + 0 * ldc + w);
            (alphaV * c10).Store(c + 1 * ldc + 0);
            (alphaV * c11).Store(c + 1 * ldc + w);
            (alphaV * c20).Store(c + 2 * ldc + 0);
            (alphaV * c21).Store(c + 2 * ldc + w);
            (alphaV * c30).Store(c + 3 * ldc + 0);
            (alphaV * c31).Store(c + 3 * ldc + w);
            (alphaV * c40).Store(c + 4 * ldc + 0);
            (alphaV * c41).Store(c + 4 * ldc + w);
            (alphaV * c50).Store(c + 5 * ldc + 0);
            (alphaV * c51).Store(c + 5 * ldc + w);
        }
        else
        {
            var betaV = Vector256.Create(beta);
            Fma(betaV, Vector256.Load(c + 0 * ldc + 0), alphaV * c00).Store(c + 0 * ldc + 0);
            Fma(betaV, Vector256.Load(c + 0 * ldc + w), alphaV * c01).Store(c + 0 * ldc + w);
            Fma(betaV, Vector256.Load(c + 1 * ldc + 0), alphaV * c10).Store(c + 1 * ldc + 0);
            Fma(betaV, Vector256.Load(c + 1 * ldc + w), alphaV * c11).Store(c + 1 * ldc + w);
            Fma(betaV, Vector256.Load(c + 2 * ldc + 0), alphaV * c20).Store(c + 2 * ldc + 0);
            Fma(betaV, Vector256.Load(c + 2 * ldc + w), alphaV * c21).Store(c + 2 * ldc + w);
            Fma(betaV, Vector256.Load(c + 3 * ldc + 0), alphaV * c30).Store(c + 3 * ldc + 0);
            Fma(betaV, Vector256.Load(c + 3 * ldc + w), alphaV * c31).Store(c + 3 * ldc + w);
            Fma(betaV, Vector256.Load(c + 4 * ldc + 0), alphaV * c40).Store(c + 4 * ldc + 0);
            Fma(betaV, Vector256.Load(c + 4 * ldc + w), alphaV * c41).Store(c + 4 * ldc + w);
            Fma(betaV, Vector256.Load(c + 5 * ldc + 0), alphaV * c50).Store(c + 5 * ldc + 0);
            Fma(betaV, Vector256.Load(c + 5 * ldc + w), alphaV * c51).Store(c + 5 * ldc + w);
        }
    }

    /// <summary>
    /// Requests the C tile's cache lines before the K loop: C was last touched a whole panel sweep ago
    /// (usually out of L2), and loading it only in the epilogue stalls every tile on a chain of misses
    /// (~20 % of the micro-kernel's time at 1024^3 with beta = 1, by perf samples).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PrefetchTile<T>(T* c, nint ldc, int rows, int cols)
        where T : unmanaged
    {
        if (!Sse.IsSupported)
        {
            return;
        }
        for (int r = 0; r < rows; r++)
        {
            // First and last element: both lines when the row straddles two.
            Sse.Prefetch0(c + r * ldc);
            Sse.Prefetch0(c + r * ldc + cols - 1);
        }
    }

    // Fused multiply-add of Vector256<T>: the type test folds away when the JIT specialises the caller.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<T> Fma<T>(Vector256<T> x, Vector256<T> y, Vector256<T> z)
        where T : unmanaged, INumber<T> =>
        typeof(T) == typeof(float)
            ? Vector256.FusedMultiplyAdd(x.AsSingle(), y.AsSingle(), z.AsSingle()).As<float, T>()
            : Vector256.FusedMultiplyAdd(x.AsDouble(), y.AsDouble(), z.AsDouble()).As<double, T>();

    /// <summary>128-bit SIMD (SSE, NEON): 6 x 8 tile in 12 accumulators.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Vector128x6x8(int kc, float* a, float* b, float* c, nint ldc, float alpha, float beta)
    {
        var c00 = Vector128<float>.Zero; var c01 = Vector128<float>.Zero;
        var c10 = Vector128<float>.Zero; var c11 = Vector128<float>.Zero;
        var c20 = Vector128<float>.Zero; var c21 = Vector128<float>.Zero;
        var c30 = Vector128<float>.Zero; var c31 = Vector128<float>.Zero;
        var c40 = Vector128<float>.Zero; var c41 = Vector128<float>.Zero;
        var c50 = Vector128<float>.Zero; var c51 = Vector128<float>.Zero;
        int p = 0;
        for (; p + 4 <= kc; p += 4)
        {
            var b0 = Vector128.Load(b + 0);
            var b1 = Vector128.Load(b + 4);
            var a0 = Vector128.Create(a[0]);
            c00 = Vector128.MultiplyAddEstimate(a0, b0, c00);
            c01 = Vector128.MultiplyAddEstimate(a0, b1, c01);
            var a1 = Vector128.Create(a[1]);
            c10 = Vector128.MultiplyAddEstimate(a1, b0, c10);
            c11 = Vector128.MultiplyAddEstimate(a1, b1, c11);
            var a2 = Vector128.Create(a[2]);
            c20 = Vector128.MultiplyAddEstimate(a2, b0, c20);
            c21 = Vector128.MultiplyAddEstimate(a2, b1, c21);
            var a3 = Vector128.Create(a[3]);
            c30 = Vector128.MultiplyAddEstimate(a3, b0, c30);
            c31 = Vector128.MultiplyAddEstimate(a3, b1, c31);
            var a4 = Vector128.Create(a[4]);
            c40 = Vector128.MultiplyAddEstimate(a4, b0, c40);
            c41 = Vector128.MultiplyAddEstimate(a4, b1, c41);
            var a5 = Vector128.Create(a[5]);
            c50 = Vector128.MultiplyAddEstimate(a5, b0, c50);
            c51 = Vector128.MultiplyAddEstimate(a5, b1, c51);
            b0 = Vector128.Load(b + 8);
            b1 = Vector128.Load(b + 12);
            a0 = Vector128.Create(a[6]);
            c00 = Vector128.MultiplyAddEstimate(a0, b0, c00);
            c01 = Vector128.MultiplyAddEstimate(a0, b1, c01);
            a1 = Vector128.Create(a[7]);
            c10 = Vector128.MultiplyAddEstimate(a1, b0, c10);
            c11 = Vector128.MultiplyAddEstimate(a1, b1, c11);
            a2 = Vector128.Create(a[8]);
            c20 = Vector128.MultiplyAddEstimate(a2, b0, c20);
            c21 = Vector128.MultiplyAddEstimate(a2, b1, c21);
            a3 = Vector128.Create(a[9]);
            c30 = Vector128.MultiplyAddEstimate(a3, b0, c30);
            c31 = Vector128.MultiplyAddEstimate(a3, b1, c31);
            a4 = Vector128.Create(a[10]);
            c40 = Vector128.MultiplyAddEstimate(a4, b0, c40);
            c41 = Vector128.MultiplyAddEstimate(a4, b1, c41);
            a5 = Vector128.Create(a[11]);
            c50 = Vector128.MultiplyAddEstimate(a5, b0, c50);
            c51 = Vector128.MultiplyAddEstimate(a5, b1, c51);
            b0 = Vector128.Load(b + 16);
            b1 = Vector128.Load(b + 20);
            a0 = Vector128.Create(a[12]);
            c00 = Vector128.MultiplyAddEstimate(a0, b0, c00);
            c01 = Vector128.MultiplyAddEstimate(a0, b1, c01);
            a1 = Vector128.Create(a[13]);
            c10 = Vector128.MultiplyAddEstimate(a1, b0, c10);
            c11 = Vector128.MultiplyAddEstimate(a1, b1, c11);
            a2 = Vector128.Create(a[14]);
            c20 = Vector128.MultiplyAddEstimate(a2, b0, c20);
            c21 = Vector128.MultiplyAddEstimate(a2, b1, c21);
            a3 = Vector128.Create(a[15]);
            c30 = Vector128.MultiplyAddEstimate(a3, b0, c30);
            c31 = Vector128.MultiplyAddEstimate(a3, b1, c31);
            a4 = Vector128.Create(a[16]);
            c40 = Vector128.MultiplyAddEstimate(a4, b0, c40);
            c41 = Vector128.MultiplyAddEstimate(a4, b1, c41);
            a5 = Vector128.Create(a[17]);
            c50 = Vector128.MultiplyAddEstimate(a5, b0, c50);
            c51 = Vector128.MultiplyAddEstimate(a5, b1, c51);
            b0 = Vector128.Load(b + 24);
            b1 = Vector128.Load(b + 28);
            a0 = Vector128.Create(a[18]);
            c00 = Vector128.MultiplyAddEstimate(a0, b0, c00);
            c01 = Vector128.MultiplyAddEstimate(a0, b1, c01);
            a1 = Vector128.Create(a[19]);
            c10 = Vector128.MultiplyAddEstimate(a1, b0, c10);
            c11 = Vector128.MultiplyAddEstimate(a1, b1, c11);
            a2 = Vector128.Create(a[20]);
            c20 = Vector128.MultiplyAddEstimate(a2, b0, c20);
            c21 = Vector128.MultiplyAddEstimate(a2, b1, c21);
            a3 = Vector128.Create(a[21]);
            c30 = Vector128.MultiplyAddEstimate(a3, b0, c30);
            c31 = Vector128.MultiplyAddEstimate(a3, b1, c31);
            a4 = Vector128.Create(a[22]);
            c40 = Vector128.MultiplyAddEstimate(a4, b0, c40);
            c41 = Vector128.MultiplyAddEstimate(a4, b1, c41);
            a5 = Vector128.Create(a[23]);
            c50 = Vector128.MultiplyAddEstimate(a5, b0, c50);
            c51 = Vector128.MultiplyAddEstimate(a5, b1, c51);
            a += 24;
            b += 32;
        }
        for (; p < kc; p++)
        {
            var b0 = Vector128.Load(b + 0);
            var b1 = Vector128.Load(b + 4);
            var a0 = Vector128.Create(a[0]);
            c00 = Vector128.MultiplyAddEstimate(a0, b0, c00);
            c01 = Vector128.MultiplyAddEstimate(a0, b1, c01);
            var a1 = Vector128.Create(a[1]);
            c10 = Vector128.MultiplyAddEstimate(a1, b0, c10);
            c11 = Vector128.MultiplyAddEstimate(a1, b1, c11);
            var a2 = Vector128.Create(a[2]);
            c20 = Vector128.MultiplyAddEstimate(a2, b0, c20);
            c21 = Vector128.MultiplyAddEstimate(a2, b1, c21);
            var a3 = Vector128.Create(a[3]);
            c30 = Vector128.MultiplyAddEstimate(a3, b0, c30);
            c31 = Vector128.MultiplyAddEstimate(a3, b1, c31);
            var a4 = Vector128.Create(a[4]);
            c40 = Vector128.MultiplyAddEstimate(a4, b0, c40);
            c41 = Vector128.MultiplyAddEstimate(a4, b1, c41);
            var a5 = Vector128.Create(a[5]);
            c50 = Vector128.MultiplyAddEstimate(a5, b0, c50);
            c51 = Vector128.MultiplyAddEstimate(a5, b1, c51);
            a += 6;
            b += 8;
        }
        var alphaV = Vector128.Create(alpha);
        if (beta == 0)
        {
            // beta == 0 overwrites C without reading it, so NaN or garbage there does not leak through.
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
            var betaV = Vector128.Create(beta);
            Vector128.MultiplyAddEstimate(betaV, Vector128.Load(c + 0 * ldc + 0), alphaV * c00).Store(c + 0 * ldc + 0);
            Vector128.MultiplyAddEstimate(betaV, Vector128.Load(c + 0 * ldc + 4), alphaV * c01).Store(c + 0 * ldc + 4);
            Vector128.MultiplyAddEstimate(betaV, Vector128.Load(c + 1 * ldc + 0), alphaV * c10).Store(c + 1 * ldc + 0);
            Vector128.MultiplyAddEstimate(betaV, Vector128.Load(c + 1 * ldc + 4), alphaV * c11).Store(c + 1 * ldc + 4);
            Vector128.MultiplyAddEstimate(betaV, Vector128.Load(c + 2 * ldc + 0), alphaV * c20).Store(c + 2 * ldc + 0);
            Vector128.MultiplyAddEstimate(betaV, Vector128.Load(c + 2 * ldc + 4), alphaV * c21).Store(c + 2 * ldc + 4);
            Vector128.MultiplyAddEstimate(betaV, Vector128.Load(c + 3 * ldc + 0), alphaV * c30).Store(c + 3 * ldc + 0);
            Vector128.MultiplyAddEstimate(betaV, Vector128.Load(c + 3 * ldc + 4), alphaV * c31).Store(c + 3 * ldc + 4);
            Vector128.MultiplyAddEstimate(betaV, Vector128.Load(c + 4 * ldc + 0), alphaV * c40).Store(c + 4 * ldc + 0);
            Vector128.MultiplyAddEstimate(betaV, Vector128.Load(c + 4 * ldc + 4), alphaV * c41).Store(c + 4 * ldc + 4);
            Vector128.MultiplyAddEstimate(betaV, Vector128.Load(c + 5 * ldc + 0), alphaV * c50).Store(c + 5 * ldc + 0);
            Vector128.MultiplyAddEstimate(betaV, Vector128.Load(c + 5 * ldc + 4), alphaV * c51).Store(c + 5 * ldc + 4);
        }
    }
}
