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

    /// <summary>
    /// Packs op(A)[row0 .. row0+rows, p0 .. p0+kc] (op(A) = A, or A^T when A is stored (K, M)) into
    /// ceil(rows / mr) consecutive panels of kc x mr values starting at <paramref name="dst"/>: float for
    /// SGEMM, double for <see cref="DgemmEngine"/> (one body, specialised by the JIT per type).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void PackA<T>(bool transA, T* a, nint lda, int row0, int p0, int kc, int rows, int mr, T* dst)
        where T : unmanaged
    {
        int panels = (rows + mr - 1) / mr;
        nint panelSize = (nint)mr * kc;
        if (transA)
        {
            // Column p of op(A) is row p of the stored A: read it once, contiguously, for every panel
            // of the group (a panel at a time would touch a new row, often a new page, per 6 values).
            T* src = a + p0 * lda + row0;
            int prefetchRows = PrefetchDistance(rows * sizeof(T) / sizeof(float));
            for (int p = 0; p < kc; p++, src += lda)
            {
                if (Sse.IsSupported && p + prefetchRows < kc)
                {
                    T* ahead = src + prefetchRows * lda;
                    for (int line = 0; line < rows; line += 64 / sizeof(T))
                    {
                        Sse.Prefetch0(ahead + line);
                    }
                }
                for (int q = 0; q < panels; q++)
                {
                    T* s = src + q * mr;
                    T* d = dst + q * panelSize + p * mr;
                    int valid = Math.Min(mr, rows - q * mr);
                    int i = 0;
                    for (; i < valid; i++)
                    {
                        d[i] = s[i];
                    }
                    for (; i < mr; i++)
                    {
                        d[i] = default;
                    }
                }
            }
            return;
        }
        // Rows of op(A) are contiguous along p: interleave MR rows per panel.
        for (int q = 0; q < panels; q++)
        {
            T* panel = dst + q * panelSize;
            int valid = Math.Min(mr, rows - q * mr);
            if (typeof(T) == typeof(float) && valid == mr)
            {
                // A full float panel is the transpose of its MR x kc block: vector shuffles, not strided scalar stores.
                Transpose((float*)(a + (row0 + q * mr) * lda + p0), lda, mr, kc, (float*)panel, mr);
                continue;
            }
            for (int i = 0; i < mr; i++)
            {
                T* d = panel + i;
                if (i >= valid)
                {
                    for (int p = 0; p < kc; p++, d += mr)
                    {
                        *d = default;
                    }
                    continue;
                }
                T* src = a + (row0 + q * mr + i) * lda + p0;
                int k4 = 0;
                for (; k4 + 4 <= kc; k4 += 4, d += 4 * mr)
                {
                    d[0] = src[k4];
                    d[mr] = src[k4 + 1];
                    d[2 * mr] = src[k4 + 2];
                    d[3 * mr] = src[k4 + 3];
                }
                for (; k4 < kc; k4++, d += mr)
                {
                    *d = src[k4];
                }
            }
        }
    }

    /// <summary>
    /// Packs op(B)[p0 .. p0+kc, col0 .. col0+cols] (op(B) = B, or B^T when B is stored (N, K)) into
    /// ceil(cols / nr) consecutive panels of kc x nr values starting at <paramref name="dst"/>, columns past
    /// the edge zero: float for SGEMM, double for <see cref="DgemmEngine"/> (one body, specialised by the JIT per type).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void PackB<T>(bool transB, T* b, nint ldb, int p0, int col0, int kc, int cols, int nr, T* dst)
        where T : unmanaged
    {
        int panels = (cols + nr - 1) / nr;
        nint panelSize = (nint)nr * kc;
        if (!transB)
        {
            // Row p of op(B) is contiguous: read it once for every panel of the group.
            int fullPanels = cols / nr;
            int prefetchRows = PrefetchDistance(cols * sizeof(T) / sizeof(float));
            T* src = b + p0 * ldb + col0;
            for (int p = 0; p < kc; p++, src += ldb)
            {
                T* d = dst + p * nr;
                // Rows are far apart (often a page or more): fetch a row a few steps ahead by hand,
                // the hardware prefetcher does not follow short runs spread across pages.
                T* ahead = src + prefetchRows * ldb;
                bool prefetch = Sse.IsSupported && p + prefetchRows < kc;
                for (int q = 0; q < fullPanels; q++)
                {
                    if (prefetch)
                    {
                        for (int line = 0; line < nr; line += 64 / sizeof(T))
                        {
                            Sse.Prefetch0(ahead + q * nr + line);
                        }
                    }
                    CopyRow(src + q * nr, d + q * panelSize, nr);
                }
                if (fullPanels < panels)
                {
                    T* s = src + fullPanels * nr;
                    T* dd = d + fullPanels * panelSize;
                    int valid = cols - fullPanels * nr;
                    int j = 0;
                    for (; j < valid; j++)
                    {
                        dd[j] = s[j];
                    }
                    for (; j < nr; j++)
                    {
                        dd[j] = default;
                    }
                }
            }
            return;
        }
        for (int q = 0; q < panels; q++)
        {
            PackTransposedBPanel(b, ldb, p0, col0 + q * nr, kc, Math.Min(nr, cols - q * nr), nr, dst + q * panelSize);
        }
    }

    /// <summary>One panel of op(B) = B^T: columns of op(B) are rows of the stored B, contiguous along p.</summary>
    private static void PackTransposedBPanel<T>(T* b, nint ldb, int p0, int col0, int kc, int cols, int nr, T* dst)
        where T : unmanaged
    {
        int jFull = 0;
        if (typeof(T) == typeof(float) && Avx.IsSupported)
        {
            // 8 x 8 blocks through registers; the scalar loop below finishes ragged columns and steps.
            int p8 = kc & ~7;
            for (; jFull + 8 <= cols; jFull += 8)
            {
                float* src = (float*)b + (col0 + jFull) * ldb + p0;
                for (int p = 0; p < p8; p += 8)
                {
                    Transpose8x8(src + p, ldb, (float*)dst + p * nr + jFull, nr);
                }
                for (int p = p8; p < kc; p++)
                {
                    float* d = (float*)dst + p * nr + jFull;
                    for (int j = 0; j < 8; j++)
                    {
                        d[j] = src[j * ldb + p];
                    }
                }
            }
        }
        for (int j = jFull; j < nr; j++)
        {
            T* d = dst + j;
            if (j >= cols)
            {
                for (int p = 0; p < kc; p++, d += nr)
                {
                    *d = default;
                }
                continue;
            }
            T* src = b + (col0 + j) * ldb + p0;
            for (int p = 0; p < kc; p++, d += nr)
            {
                *d = src[p];
            }
        }
    }

    /// <summary>
    /// Rows ahead to prefetch when a run of <paramref name="floats"/> is read per source row: enough
    /// runs in flight to cover a DRAM access (~300 cycles), few enough not to flush L1.
    /// </summary>
    private static int PrefetchDistance(int floats) => Math.Clamp(128 / Math.Max(1, floats / 16), 2, 8);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void CopyRow<T>(T* src, T* dst, int count)
        where T : unmanaged
    {
        if (Vector256.IsHardwareAccelerated)
        {
            for (int j = 0; j < count; j += Vector256<T>.Count)
            {
                Vector256.Store(Vector256.Load(src + j), dst + j);
            }
        }
        else
        {
            for (int j = 0; j < count; j += Vector128<T>.Count)
            {
                Vector128.Store(Vector128.Load(src + j), dst + j);
            }
        }
    }
    /// <summary>
    /// dst[c * dstStride + r] = src[r * srcStride + c] for r &lt; rows, c &lt; cols: a row-major block
    /// transposed, 8 x 8 at a time through registers where AVX allows.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Transpose(float* src, nint srcStride, int rows, int cols, float* dst, nint dstStride)
    {
        if (Avx.IsSupported && rows is >= 4 and < 8 && rows == dstStride && cols > 8)
        {
            TransposeShort(src, srcStride, rows, cols, dst);
            return;
        }
        int r8 = Avx.IsSupported ? rows & ~7 : 0, c8 = cols & ~7;
        for (int r = 0; r < r8; r += 8)
        {
            for (int c = 0; c < c8; c += 8)
            {
                Transpose8x8(src + r * srcStride + c, srcStride, dst + c * dstStride + r, dstStride);
            }
            for (int c = c8; c < cols; c++)
            {
                for (int i = 0; i < 8; i++)
                {
                    dst[c * dstStride + r + i] = src[(r + i) * srcStride + c];
                }
            }
        }
        for (int r = r8; r < rows; r++)
        {
            for (int c = 0; c < cols; c++)
            {
                dst[c * dstStride + r] = src[r * srcStride + c];
            }
        }
    }

    /// <summary>
    /// Transpose of 4 to 7 rows into columns exactly <paramref name="rows"/> apart (an MR = 6 A
    /// panel): 8 columns at a time through an 8 x 8 register transpose whose 2 missing rows are zeros.
    /// Each column's 8-float store spills into the next column's first slots, which a later store
    /// rewrites, so the vector path stops while a column is still left for the scalar tail.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void TransposeShort(float* src, nint srcStride, int rows, int cols, float* dst)
    {
        float* rowsPadded = stackalloc float[8 * 8];
        new Span<float>(rowsPadded, 64).Clear();
        int c = 0;
        for (; c + 8 < cols; c += 8)
        {
            for (int r = 0; r < rows; r++)
            {
                Avx.Store(rowsPadded + r * 8, Avx.LoadVector256(src + r * srcStride + c));
            }
            Transpose8x8(rowsPadded, 8, dst + c * rows, rows);
        }
        for (; c < cols; c++)
        {
            for (int r = 0; r < rows; r++)
            {
                dst[c * rows + r] = src[r * srcStride + c];
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
