using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace IlgpuOct.Kernels.Cpu;

/// <summary>
/// Packing of op(A) and op(B) slices into the micro-panel layouts the micro-kernels stream through:
/// an A panel is kc steps of MR consecutive floats (rows row0..row0+MR of one column of op(A)), a B
/// panel kc steps of NR consecutive floats (columns col0..col0+NR of one row of op(B)). Rows or
/// columns past the matrix edge are written as zeros, so the micro-kernel never needs a bounds check.
/// </summary>
internal static unsafe class SgemmPacking
{
    /// <summary>Packs op(A)[row0 .. row0+rows, p0 .. p0+kc] (op(A) = A, or A^T when A is stored (K, M)).</summary>
    public static void PackA(bool transA, float* a, nint lda, int row0, int p0, int kc, int rows, int mr, float* dst)
    {
        if (transA)
        {
            // Column p of op(A) is row p of the stored A: MR contiguous floats per step.
            float* src = a + p0 * lda + row0;
            for (int p = 0; p < kc; p++, src += lda, dst += mr)
            {
                int i = 0;
                for (; i < rows; i++)
                {
                    dst[i] = src[i];
                }
                for (; i < mr; i++)
                {
                    dst[i] = 0;
                }
            }
            return;
        }
        // Rows of op(A) are contiguous along p: interleave MR rows.
        for (int i = 0; i < mr; i++)
        {
            float* d = dst + i;
            if (i >= rows)
            {
                for (int p = 0; p < kc; p++, d += mr)
                {
                    *d = 0;
                }
                continue;
            }
            float* src = a + (row0 + i) * lda + p0;
            int q = 0;
            for (; q + 4 <= kc; q += 4, d += 4 * mr)
            {
                d[0] = src[q];
                d[mr] = src[q + 1];
                d[2 * mr] = src[q + 2];
                d[3 * mr] = src[q + 3];
            }
            for (; q < kc; q++, d += mr)
            {
                *d = src[q];
            }
        }
    }

    /// <summary>Packs op(B)[p0 .. p0+kc, col0 .. col0+cols] (op(B) = B, or B^T when B is stored (N, K)).</summary>
    public static void PackB(bool transB, float* b, nint ldb, int p0, int col0, int kc, int cols, int nr, float* dst)
    {
        if (!transB)
        {
            float* src = b + p0 * ldb + col0;
            if (cols == nr)
            {
                for (int p = 0; p < kc; p++, src += ldb, dst += nr)
                {
                    CopyRow(src, dst, nr);
                }
            }
            else
            {
                for (int p = 0; p < kc; p++, src += ldb, dst += nr)
                {
                    int j = 0;
                    for (; j < cols; j++)
                    {
                        dst[j] = src[j];
                    }
                    for (; j < nr; j++)
                    {
                        dst[j] = 0;
                    }
                }
            }
            return;
        }
        // Columns of op(B) are rows of the stored B, contiguous along p: a transpose.
        int jFull = 0;
        if (Avx.IsSupported)
        {
            // 8 x 8 blocks through registers; the scalar loop below finishes ragged columns and steps.
            int p8 = kc & ~7;
            for (; jFull + 8 <= cols; jFull += 8)
            {
                float* src = b + (col0 + jFull) * ldb + p0;
                for (int p = 0; p < p8; p += 8)
                {
                    Transpose8x8(src + p, ldb, dst + p * nr + jFull, nr);
                }
                for (int p = p8; p < kc; p++)
                {
                    float* d = dst + p * nr + jFull;
                    for (int j = 0; j < 8; j++)
                    {
                        d[j] = src[j * ldb + p];
                    }
                }
            }
        }
        for (int j = jFull; j < nr; j++)
        {
            float* d = dst + j;
            if (j >= cols)
            {
                for (int p = 0; p < kc; p++, d += nr)
                {
                    *d = 0;
                }
                continue;
            }
            float* src = b + (col0 + j) * ldb + p0;
            for (int p = 0; p < kc; p++, d += nr)
            {
                *d = src[p];
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void CopyRow(float* src, float* dst, int count)
    {
        if (Vector256.IsHardwareAccelerated)
        {
            for (int j = 0; j < count; j += 8)
            {
                Vector256.Store(Vector256.Load(src + j), dst + j);
            }
        }
        else
        {
            for (int j = 0; j < count; j += 4)
            {
                Vector128.Store(Vector128.Load(src + j), dst + j);
            }
        }
    }

    /// <summary>dst[r * dstStride + c] = src[c * srcStride + r] for an 8 x 8 block.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose8x8(float* src, nint srcStride, float* dst, nint dstStride)
    {
        var r0 = Avx.LoadVector256(src);
        var r1 = Avx.LoadVector256(src + srcStride);
        var r2 = Avx.LoadVector256(src + 2 * srcStride);
        var r3 = Avx.LoadVector256(src + 3 * srcStride);
        var r4 = Avx.LoadVector256(src + 4 * srcStride);
        var r5 = Avx.LoadVector256(src + 5 * srcStride);
        var r6 = Avx.LoadVector256(src + 6 * srcStride);
        var r7 = Avx.LoadVector256(src + 7 * srcStride);

        var t0 = Avx.UnpackLow(r0, r1);
        var t1 = Avx.UnpackHigh(r0, r1);
        var t2 = Avx.UnpackLow(r2, r3);
        var t3 = Avx.UnpackHigh(r2, r3);
        var t4 = Avx.UnpackLow(r4, r5);
        var t5 = Avx.UnpackHigh(r4, r5);
        var t6 = Avx.UnpackLow(r6, r7);
        var t7 = Avx.UnpackHigh(r6, r7);

        var s0 = Avx.Shuffle(t0, t2, 0x44);
        var s1 = Avx.Shuffle(t0, t2, 0xEE);
        var s2 = Avx.Shuffle(t1, t3, 0x44);
        var s3 = Avx.Shuffle(t1, t3, 0xEE);
        var s4 = Avx.Shuffle(t4, t6, 0x44);
        var s5 = Avx.Shuffle(t4, t6, 0xEE);
        var s6 = Avx.Shuffle(t5, t7, 0x44);
        var s7 = Avx.Shuffle(t5, t7, 0xEE);

        Avx.Store(dst, Avx.Permute2x128(s0, s4, 0x20));
        Avx.Store(dst + dstStride, Avx.Permute2x128(s1, s5, 0x20));
        Avx.Store(dst + 2 * dstStride, Avx.Permute2x128(s2, s6, 0x20));
        Avx.Store(dst + 3 * dstStride, Avx.Permute2x128(s3, s7, 0x20));
        Avx.Store(dst + 4 * dstStride, Avx.Permute2x128(s0, s4, 0x31));
        Avx.Store(dst + 5 * dstStride, Avx.Permute2x128(s1, s5, 0x31));
        Avx.Store(dst + 6 * dstStride, Avx.Permute2x128(s2, s6, 0x31));
        Avx.Store(dst + 7 * dstStride, Avx.Permute2x128(s3, s7, 0x31));
    }
}
