using IlgpuOct.Kernels.Cpu;
using IlgpuOct.Kernels.Profiling;

namespace IlgpuOct.Kernels.Operators;

/// <summary>
/// Single-precision GEMM, row-major: C = alpha * op(A) * op(B) + beta * C, where op(A) is m x k
/// (A stored k x m when transA) and op(B) is k x n (B stored n x k when transB); lda/ldb/ldc are
/// row strides. beta == 0 overwrites C without reading it (NaN there does not survive); alpha == 0
/// or k == 0 only scales C. The CPU implementation (packed panels, SIMD micro-kernel, threads; see
/// <see cref="SgemmEngine"/>) is the fast engine's workhorse; the kernels are tiled.
/// </summary>
public static partial class Gemm
{
    private static int _cpuMaxThreads = Environment.ProcessorCount;

    /// <summary>Most threads one CPU GEMM uses (default: Environment.ProcessorCount). Small products always use one.</summary>
    public static int CpuMaxThreads
    {
        get => Volatile.Read(ref _cpuMaxThreads);
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1, nameof(CpuMaxThreads));
            Volatile.Write(ref _cpuMaxThreads, value);
        }
    }

    /// <summary>The micro-kernel <see cref="Cpu"/> uses on this machine.</summary>
    public static SgemmMicroKernel CpuMicroKernel => SgemmEngine.Resolve(SgemmMicroKernel.Auto);

    public static void Cpu(bool transA, bool transB, int m, int n, int k, float alpha,
        ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, float beta, Span<float> c, int ldc) =>
        Cpu(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, SgemmMicroKernel.Auto, CpuMaxThreads);

    /// <summary><see cref="Cpu(bool, bool, int, int, int, float, ReadOnlySpan{float}, int, ReadOnlySpan{float}, int, float, Span{float}, int)"/> with a chosen micro-kernel and thread limit (tests, benchmarks).</summary>
    public static unsafe void Cpu(bool transA, bool transB, int m, int n, int k, float alpha,
        ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, float beta, Span<float> c, int ldc,
        SgemmMicroKernel microKernel, int maxThreads)
    {
        CheckShapes(transA, transB, m, n, k, a.Length, lda, b.Length, ldb, c.Length, ldc);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxThreads, 1);
        fixed (float* pa = a, pb = b, pc = c)
        {
            SgemmEngine.Run(microKernel, maxThreads, transA, transB, m, n, k, alpha, pa, lda, pb, ldb, beta, pc, ldc);
        }
    }

    /// <summary>
    /// <paramref name="batch"/> independent products C_i = alpha * op(A_i) * op(B_i) + beta * C_i with
    /// A_i at a[i * strideA] (strideA 0 shares one A, e.g. convolution weights), likewise B and C.
    /// Small products run one per thread; large ones one after another, each multithreaded.
    /// </summary>
    public static unsafe void CpuBatched(bool transA, bool transB, int batch, int m, int n, int k, float alpha,
        ReadOnlySpan<float> a, int lda, long strideA, ReadOnlySpan<float> b, int ldb, long strideB,
        float beta, Span<float> c, int ldc, long strideC)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(batch);
        ArgumentOutOfRangeException.ThrowIfNegative(strideA);
        ArgumentOutOfRangeException.ThrowIfNegative(strideB);
        if (batch == 0)
        {
            return;
        }
        long needC = (long)m * n == 0 ? 0 : (long)(m - 1) * ldc + n;
        if (needC > 0 && strideC < needC)
        {
            throw new ArgumentOutOfRangeException(nameof(strideC), $"strideC {strideC} is smaller than one C matrix ({needC} floats): the products would overwrite each other; use strideC >= (m-1)*ldc + n.");
        }
        // Shapes of the last product bound every other one (strides are non-negative).
        long last = batch - 1;
        CheckShapes(transA, transB, m, n, k,
            ClampLength(a.Length - last * strideA), lda, ClampLength(b.Length - last * strideB), ldb, ClampLength(c.Length - last * strideC), ldc);
        int maxThreads = CpuMaxThreads;
        fixed (float* pa = a, pb = b, pc = c)
        {
            if (batch == 1 || maxThreads == 1 || (long)m * n * k >= SgemmEngine.ParallelThreshold)
            {
                for (long i = 0; i < batch; i++)
                {
                    SgemmEngine.Run(SgemmMicroKernel.Auto, maxThreads, transA, transB, m, n, k, alpha,
                        pa + i * strideA, lda, pb + i * strideB, ldb, beta, pc + i * strideC, ldc);
                }
                return;
            }
            nint aa = (nint)pa, bb = (nint)pb, cc = (nint)pc;
            Parallel.For(0, batch, new ParallelOptions { MaxDegreeOfParallelism = maxThreads }, i =>
                SgemmEngine.Run(SgemmMicroKernel.Auto, 1, transA, transB, m, n, k, alpha,
                    (float*)aa + i * strideA, lda, (float*)bb + i * strideB, ldb, beta, (float*)cc + i * strideC, ldc));
        }
    }

    private static int ClampLength(long length) => (int)Math.Clamp(length, -1, int.MaxValue);

    /// <summary>Checks dimensions, strides and that each span holds its whole matrix; messages say what to pass.</summary>
    internal static void CheckShapes(bool transA, bool transB, int m, int n, int k, int aLength, int lda, int bLength, int ldb, int cLength, int ldc,
        string elements = "floats")
    {
        if (m < 0 || n < 0 || k < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(m), $"GEMM sizes must be non-negative (m={m}, n={n}, k={k}).");
        }
        CheckMatrix("A", transA ? k : m, transA ? m : k, aLength, lda, transA ? "k x m (transA)" : "m x k", elements);
        CheckMatrix("B", transB ? n : k, transB ? k : n, bLength, ldb, transB ? "n x k (transB)" : "k x n", elements);
        CheckMatrix("C", m, n, cLength, ldc, "m x n", elements);
    }

    /// <summary>Checks one operand's stride and that its span holds the whole matrix (<paramref name="elements"/> names the element type in the message).</summary>
    internal static void CheckMatrix(string name, int rows, int cols, int length, int ld, string layout, string elements = "floats")
    {
        if (rows == 0 || cols == 0)
        {
            return;
        }
        if (ld < cols)
        {
            throw new ArgumentOutOfRangeException("ld" + name.ToLowerInvariant(),
                $"Row stride of {name} ({ld}) is smaller than its row length {cols}; {name} is stored {layout} row-major, so pass a stride >= {cols}.");
        }
        long need = (long)(rows - 1) * ld + cols;
        if (length < need)
        {
            throw new ArgumentException(
                $"{name} holds {length} {elements} but a {rows} x {cols} matrix with row stride {ld} needs {need}; check m/n/k, the transpose flags and the stride.",
                name.ToLowerInvariant());
        }
    }

    // ================================================================== GPU kernels
    //
    // Numbered variants, slowest first. All take op(A) (m, k) / op(B) (k, n) through index math on
    // the transpose flags, so one kernel serves A B, A^T B (conv weight gradients), A B^T (conv input
    // gradients) and A^T B^T. Shared tiles are stored k-major ([kk][row] and [kk][col]) so the inner
    // product loop reads consecutive addresses across a warp; each thread owns rows tRow + i*16 and
    // columns tCol + j*16 of its block tile (strided, so shared reads and global writes are
    // conflict-free and coalesced without vector types). Tiles are padded by 4 floats per k-row so
    // the transposing stores hit 32 different banks.

    /// <summary>Threads per block of the tiled kernels (a 16 x 16 arrangement of register tiles).</summary>
    public const int TiledThreads = 256;

    private const int NaiveBlock = 16;

    private const int Tile64 = 64;     // Gemm2: 64 x 64 block tile
    private const int Tile64K = 16;    //        16-deep k slices
    private const int Tile64Per = 4;   //        4 x 4 outputs per thread
    private const int Tile64Stride = Tile64 + 4;

    private const int Tile128 = 128;   // Gemm3: 128 x 128 block tile
    private const int Tile128K = 8;    //        8-deep k slices
    private const int Tile128Per = 8;  //        8 x 8 outputs per thread
    private const int Tile128Stride = Tile128 + 4;

    /// <summary>Gemm1, the baseline: one thread per element of C, operands read straight from global memory.</summary>
    [Kernel]
    private static void Gemm1Naive(KernelContext ctx, int m, int n, int k, float alpha,
        View<float> a, int lda, bool transA, View<float> b, int ldb, bool transB, float beta, View<float> c, int ldc)
    {
        int col = ctx.GlobalX;
        int row = ctx.GlobalY;
        if (row >= m || col >= n)
        {
            return;
        }
        float sum = 0f;
        for (int p = 0; p < k; p++)
        {
            float av = transA ? a[p * lda + row] : a[row * lda + p];
            float bv = transB ? b[col * ldb + p] : b[p * ldb + col];
            sum = MathF.FusedMultiplyAdd(av, bv, sum);
        }
        int at = row * ldc + col;
        c[at] = beta == 0f ? alpha * sum : MathF.FusedMultiplyAdd(beta, c[at], alpha * sum);
    }

    /// <summary>Gemm2: 64 x 64 block tile, k in slices of 16 through shared memory, 4 x 4 outputs per thread.</summary>
    [Kernel]
    private static void Gemm2Tiled64(KernelContext ctx, int m, int n, int k, float alpha,
        View<float> a, int lda, bool transA, View<float> b, int ldb, bool transB, float beta, View<float> c, int ldc)
    {
        var tileA = ctx.Shared<float>(Tile64K * Tile64Stride);  // [kk][row]
        var tileB = ctx.Shared<float>(Tile64K * Tile64Stride);  // [kk][col]
        Span<float> acc = stackalloc float[Tile64Per * Tile64Per];
        Span<float> regA = stackalloc float[Tile64Per];
        Span<float> regB = stackalloc float[Tile64Per];
        int tid = ctx.ThreadIdx.X;
        int tRow = tid / 16;
        int tCol = tid % 16;
        int rowBase = ctx.BlockIdx.Y * Tile64;
        int colBase = ctx.BlockIdx.X * Tile64;
        for (int k0 = 0; k0 < k; k0 += Tile64K)
        {
            // 64 x 16 of op(A) and 16 x 64 of op(B): 4 elements per thread each, consecutive threads
            // walking the operand's contiguous dimension; zeros outside the matrices.
            for (int e = tid; e < Tile64 * Tile64K; e += TiledThreads)
            {
                int r = transA ? e % Tile64 : e / Tile64K;
                int kk = transA ? e / Tile64 : e % Tile64K;
                int gr = rowBase + r;
                int gk = k0 + kk;
                float v = 0f;
                if (gr < m && gk < k)
                {
                    v = transA ? a[gk * lda + gr] : a[gr * lda + gk];
                }
                tileA[kk * Tile64Stride + r] = v;
            }
            for (int e = tid; e < Tile64 * Tile64K; e += TiledThreads)
            {
                int cc = transB ? e / Tile64K : e % Tile64;
                int kk = transB ? e % Tile64K : e / Tile64;
                int gc = colBase + cc;
                int gk = k0 + kk;
                float v = 0f;
                if (gc < n && gk < k)
                {
                    v = transB ? b[gc * ldb + gk] : b[gk * ldb + gc];
                }
                tileB[kk * Tile64Stride + cc] = v;
            }
            ctx.Barrier();
            for (int kk = 0; kk < Tile64K; kk++)
            {
                for (int i = 0; i < Tile64Per; i++)
                {
                    regA[i] = tileA[kk * Tile64Stride + tRow + i * 16];
                }
                for (int j = 0; j < Tile64Per; j++)
                {
                    regB[j] = tileB[kk * Tile64Stride + tCol + j * 16];
                }
                for (int i = 0; i < Tile64Per; i++)
                {
                    for (int j = 0; j < Tile64Per; j++)
                    {
                        acc[i * Tile64Per + j] = MathF.FusedMultiplyAdd(regA[i], regB[j], acc[i * Tile64Per + j]);
                    }
                }
            }
            ctx.Barrier();
        }
        for (int i = 0; i < Tile64Per; i++)
        {
            int row = rowBase + tRow + i * 16;
            for (int j = 0; j < Tile64Per; j++)
            {
                int col = colBase + tCol + j * 16;
                if (row < m && col < n)
                {
                    int at = row * ldc + col;
                    float v = alpha * acc[i * Tile64Per + j];
                    c[at] = beta == 0f ? v : MathF.FusedMultiplyAdd(beta, c[at], v);
                }
            }
        }
    }

    /// <summary>Gemm3: 128 x 128 block tile, k in slices of 8 through shared memory, 8 x 8 outputs per thread.</summary>
    [Kernel]
    private static void Gemm3Tiled128(KernelContext ctx, int m, int n, int k, float alpha,
        View<float> a, int lda, bool transA, View<float> b, int ldb, bool transB, float beta, View<float> c, int ldc)
    {
        var tileA = ctx.Shared<float>(Tile128K * Tile128Stride);  // [kk][row]
        var tileB = ctx.Shared<float>(Tile128K * Tile128Stride);  // [kk][col]
        Span<float> acc = stackalloc float[Tile128Per * Tile128Per];
        Span<float> regA = stackalloc float[Tile128Per];
        Span<float> regB = stackalloc float[Tile128Per];
        int tid = ctx.ThreadIdx.X;
        int tRow = tid / 16;
        int tCol = tid % 16;
        int rowBase = ctx.BlockIdx.Y * Tile128;
        int colBase = ctx.BlockIdx.X * Tile128;
        for (int k0 = 0; k0 < k; k0 += Tile128K)
        {
            for (int e = tid; e < Tile128 * Tile128K; e += TiledThreads)
            {
                int r = transA ? e % Tile128 : e / Tile128K;
                int kk = transA ? e / Tile128 : e % Tile128K;
                int gr = rowBase + r;
                int gk = k0 + kk;
                float v = 0f;
                if (gr < m && gk < k)
                {
                    v = transA ? a[gk * lda + gr] : a[gr * lda + gk];
                }
                tileA[kk * Tile128Stride + r] = v;
            }
            for (int e = tid; e < Tile128 * Tile128K; e += TiledThreads)
            {
                int cc = transB ? e / Tile128K : e % Tile128;
                int kk = transB ? e % Tile128K : e / Tile128;
                int gc = colBase + cc;
                int gk = k0 + kk;
                float v = 0f;
                if (gc < n && gk < k)
                {
                    v = transB ? b[gc * ldb + gk] : b[gk * ldb + gc];
                }
                tileB[kk * Tile128Stride + cc] = v;
            }
            ctx.Barrier();
            for (int kk = 0; kk < Tile128K; kk++)
            {
                for (int i = 0; i < Tile128Per; i++)
                {
                    regA[i] = tileA[kk * Tile128Stride + tRow + i * 16];
                }
                for (int j = 0; j < Tile128Per; j++)
                {
                    regB[j] = tileB[kk * Tile128Stride + tCol + j * 16];
                }
                for (int i = 0; i < Tile128Per; i++)
                {
                    for (int j = 0; j < Tile128Per; j++)
                    {
                        acc[i * Tile128Per + j] = MathF.FusedMultiplyAdd(regA[i], regB[j], acc[i * Tile128Per + j]);
                    }
                }
            }
            ctx.Barrier();
        }
        for (int i = 0; i < Tile128Per; i++)
        {
            int row = rowBase + tRow + i * 16;
            for (int j = 0; j < Tile128Per; j++)
            {
                int col = colBase + tCol + j * 16;
                if (row < m && col < n)
                {
                    int at = row * ldc + col;
                    float v = alpha * acc[i * Tile128Per + j];
                    c[at] = beta == 0f ? v : MathF.FusedMultiplyAdd(beta, c[at], v);
                }
            }
        }
    }


    // ------------------------------------------------------------------ Gemm4: warp tiling
    //
    // Block tile 128 x 128 (BK 8) -> 8 warps as 2 x 4 warp tiles of 64 x 32 -> each warp as 2 x 2
    // sub-tiles of 32 x 16 whose lanes (8 x 4) own 4 x 4 outputs each, so a thread holds 8 x 8. A
    // warp's shared reads then touch 8 (A) and 4 (B) distinct, 4-float-spaced addresses: broadcast,
    // no bank conflict. Global loads are one Float4 per thread per operand per k-slice (the launcher
    // passes vectorA/vectorB only when Float4.IsAligned; edges and unaligned operands take the scalar
    // path); the next slice is loaded into registers while the current one is multiplied, and stored
    // into the other half of the double-buffered shared tiles, so one barrier per slice suffices.

    private const int Warp128 = 128;              // Gemm4: block tile
    internal const int Warp128K = 8;               //        k slice (also Conv2d.ConvWarpTiled's)
    internal const int Warp128Stride = Warp128 + 4; //       padded k-row of a shared tile (also Conv2d's)
    private const int Warp128Buffer = Warp128K * Warp128Stride;
    private const int WarpTileM = 64;             //        warp tile 64 x 32 (2 x 4 warps)
    private const int WarpTileN = 32;
    private const int WarpSubM = 32;              //        warp sub-tile 32 x 16: lanes 8 x 4, 4 x 4 each
    private const int WarpSubN = 16;

    /// <summary>Gemm4: warp-tiled 128 x 128 block tile, BK 8, Float4 global loads, double-buffered shared tiles, 8 x 8 outputs per thread.</summary>
    /// <remarks>Launch bounds (256 threads, 2 blocks per SM): at most 128 registers, so two blocks (16 warps) stay resident, as with Gemm3.</remarks>
    [Kernel(MaxThreadsPerBlock = TiledThreads, MinBlocksPerMultiprocessor = 2)]
    private static void Gemm4WarpTiled(KernelContext ctx, int m, int n, int k, float alpha,
        View<float> a, int lda, bool transA, bool vectorA, View<float> b, int ldb, bool transB, bool vectorB,
        float beta, View<float> c, int ldc, bool vectorC)
    {
        var tileA = ctx.Shared<float>(2 * Warp128Buffer);  // two buffers of [kk][row]
        var tileB = ctx.Shared<float>(2 * Warp128Buffer);  // two buffers of [kk][col]
        Span<float> acc = stackalloc float[64];
        Span<float> regA = stackalloc float[8];
        Span<float> regB = stackalloc float[8];
        Span<float> nextA = stackalloc float[4];
        Span<float> nextB = stackalloc float[4];
        int tid = ctx.ThreadIdx.X;
        int lane = tid & 31;
        int warp = tid >> 5;
        int rowBase = ctx.BlockIdx.Y * Warp128;
        int colBase = ctx.BlockIdx.X * Warp128;
        // Rows / columns of this thread inside the block tile, before adding i (sub-tile) and the 4 outputs.
        int threadRow = (warp >> 2) * WarpTileM + (lane >> 2) * 4;
        int threadCol = (warp & 3) * WarpTileN + (lane & 3) * 4;
        // op(A) is k-major in memory when transA (rows of A are k); op(B) when !transB.
        Gemm4LoadSlice(a, lda, transA, vectorA, m, k, rowBase, 0, tid, nextA);
        Gemm4LoadSlice(b, ldb, !transB, vectorB, n, k, colBase, 0, tid, nextB);
        for (int s = 0; s < 4; s++)
        {
            tileA[Gemm4SharedIndex(transA, tid, s)] = Gemm4Pick(nextA, transA, tid, s);
            tileB[Gemm4SharedIndex(!transB, tid, s)] = Gemm4Pick(nextB, !transB, tid, s);
        }
        ctx.Barrier();
        for (int k0 = 0; k0 < k; k0 += Warp128K)
        {
            int current = ((k0 / Warp128K) & 1) * Warp128Buffer;
            bool hasNext = k0 + Warp128K < k;
            if (hasNext)
            {
                // Issued before the products so the global loads are in flight while they run.
                Gemm4LoadSlice(a, lda, transA, vectorA, m, k, rowBase, k0 + Warp128K, tid, nextA);
                Gemm4LoadSlice(b, ldb, !transB, vectorB, n, k, colBase, k0 + Warp128K, tid, nextB);
            }
            for (int kk = 0; kk < Warp128K; kk++)
            {
                for (int i = 0; i < 8; i++)
                {
                    regA[i] = tileA[current + kk * Warp128Stride + threadRow + (i >> 2) * WarpSubM + (i & 3)];
                }
                for (int j = 0; j < 8; j++)
                {
                    regB[j] = tileB[current + kk * Warp128Stride + threadCol + (j >> 2) * WarpSubN + (j & 3)];
                }
                Gemm4Fma(regA, regB, acc);
            }
            if (hasNext)
            {
                // The other buffer was last read in the previous slice, before the barrier that ended it.
                int other = Warp128Buffer - current;
                for (int s = 0; s < 4; s++)
                {
                    tileA[other + Gemm4SharedIndex(transA, tid, s)] = Gemm4Pick(nextA, transA, tid, s);
                    tileB[other + Gemm4SharedIndex(!transB, tid, s)] = Gemm4Pick(nextB, !transB, tid, s);
                }
            }
            ctx.Barrier();
        }
        for (int i = 0; i < 8; i++)
        {
            int row = rowBase + threadRow + (i >> 2) * WarpSubM + (i & 3);
            for (int jq = 0; jq < 2; jq++)
            {
                int col = colBase + threadCol + jq * WarpSubN;
                if (row < m)
                {
                    int at = row * ldc + col;
                    float v0 = alpha * acc[i * 8 + jq * 4];
                    float v1 = alpha * acc[i * 8 + jq * 4 + 1];
                    float v2 = alpha * acc[i * 8 + jq * 4 + 2];
                    float v3 = alpha * acc[i * 8 + jq * 4 + 3];
                    if (vectorC && col + 3 < n)
                    {
                        if (beta != 0f)
                        {
                            var old = Float4.LoadAligned(c, at);
                            v0 = MathF.FusedMultiplyAdd(beta, old.X, v0);
                            v1 = MathF.FusedMultiplyAdd(beta, old.Y, v1);
                            v2 = MathF.FusedMultiplyAdd(beta, old.Z, v2);
                            v3 = MathF.FusedMultiplyAdd(beta, old.W, v3);
                        }
                        Float4.StoreAligned(c, at, v0, v1, v2, v3);
                    }
                    else
                    {
                        Gemm4StoreScalar(c, at, col, n, beta, v0, 0);
                        Gemm4StoreScalar(c, at, col, n, beta, v1, 1);
                        Gemm4StoreScalar(c, at, col, n, beta, v2, 2);
                        Gemm4StoreScalar(c, at, col, n, beta, v3, 3);
                    }
                }
            }
        }
    }

    /// <summary>
    /// This thread's 4 elements of a 128 x 8 operand slice (op(A) rows or op(B) columns = "outer"),
    /// zeros outside the matrix. kMajor: the stored matrix has k as its rows, so the 4 elements are 4
    /// consecutive outer indices of one k; otherwise 4 consecutive k of one outer index.
    /// </summary>
    internal static void Gemm4LoadSlice(View<float> v, int ld, bool kMajor, bool vector, int outerExtent, int k,
        int outerBase, int k0, int tid, Span<float> dst)
    {
        int outer = outerBase + (kMajor ? (tid & 31) * 4 : tid >> 1);
        int kk = k0 + (kMajor ? tid >> 5 : (tid & 1) * 4);
        bool whole = kMajor ? kk < k && outer + 3 < outerExtent : outer < outerExtent && kk + 3 < k;
        if (vector && whole)
        {
            var f = Float4.LoadAligned(v, kMajor ? kk * ld + outer : outer * ld + kk);
            dst[0] = f.X;
            dst[1] = f.Y;
            dst[2] = f.Z;
            dst[3] = f.W;
        }
        else
        {
            for (int j = 0; j < 4; j++)
            {
                int o = kMajor ? outer + j : outer;
                int q = kMajor ? kk : kk + j;
                dst[j] = o < outerExtent && q < k ? v[kMajor ? q * ld + o : o * ld + q] : 0f;
            }
        }
    }

    /// <summary>
    /// Where store s (0..3) of this thread's slice goes in a shared [kk][outer] buffer. Non-k-major
    /// slices land in 4 k-rows of one column (lanes 2 apart in a row, 4 k-rows x 4 pad apart: 32
    /// banks). k-major slices are 4 consecutive columns of one k-row; store s writes element
    /// (s + lane / 8) % 4, a swizzle that spreads the 4 lanes 8 apart (same bank otherwise) over 4 banks.
    /// </summary>
    internal static int Gemm4SharedIndex(bool kMajor, int tid, int s) =>
        kMajor
            ? (tid >> 5) * Warp128Stride + (tid & 31) * 4 + ((s + ((tid & 31) >> 3)) & 3)
            : ((tid & 1) * 4 + s) * Warp128Stride + (tid >> 1);

    /// <summary>acc[8 i + j] += regA[i] * regB[j]: one k step of a thread's 8 x 8 outputs (also Conv2d.ConvWarpTiled's).</summary>
    internal static void Gemm4Fma(Span<float> regA, Span<float> regB, Span<float> acc)
    {
        for (int i = 0; i < 8; i++)
        {
            for (int j = 0; j < 8; j++)
            {
                acc[i * 8 + j] = MathF.FusedMultiplyAdd(regA[i], regB[j], acc[i * 8 + j]);
            }
        }
    }

    /// <summary>The register Gemm4SharedIndex's store s writes (constant indices: the array stays in registers).</summary>
    private static float Gemm4Pick(Span<float> slice, bool kMajor, int tid, int s)
    {
        int e = kMajor ? (s + ((tid & 31) >> 3)) & 3 : s;
        return e == 0 ? slice[0] : e == 1 ? slice[1] : e == 2 ? slice[2] : slice[3];
    }

    /// <summary>c[at + j] = v (+ beta * c[at + j]) when column col + j lies inside the n columns.</summary>
    private static void Gemm4StoreScalar(View<float> c, int at, int col, int n, float beta, float v, int j)
    {
        if (col + j < n)
        {
            c[at + j] = beta == 0f ? v : MathF.FusedMultiplyAdd(beta, c[at + j], v);
        }
    }

    // ================================================================== dispatcher

    /// <summary>
    /// Kernel choice when <see cref="Run"/> is given <see cref="GemmVariant.Auto"/> off cuda (cuda times
    /// <see cref="TunedVariants"/> per shape instead): Gemm4 (warp-tiled 128 x 128 tiles) when its grid
    /// has at least this many blocks, else Gemm2 (64 x 64), whose 4x more blocks keep more SMs busy on
    /// small products. Static figures (sm_90, NVRTC 11.8): Gemm4 holds 128 registers under its launch
    /// bounds, no spill, 2 blocks = 16 warps per SM as Gemm3, with one Float4 load per operand per
    /// slice where Gemm3 issues 4 scalar loads, and one barrier per k-slice where Gemm3 has two.
    /// Not yet measured on a GPU.
    /// </summary>
    public const int Tiled128MinBlocks = 66;

    /// <summary>The kernel <see cref="Run"/> would launch off cuda for an m x n product with <see cref="GemmVariant.Auto"/>.</summary>
    public static GemmVariant ResolveVariant(GemmVariant variant, int m, int n)
    {
        if (variant != GemmVariant.Auto)
        {
            return variant;
        }
        long blocks128 = (long)((m + Tile128 - 1) / Tile128) * ((n + Tile128 - 1) / Tile128);
        return blocks128 >= Tiled128MinBlocks ? GemmVariant.Gemm4WarpTiled : GemmVariant.Gemm2Tiled64;
    }

    /// <summary>Cost model: 2 m n k FLOPs (plus 2 m n for a non-zero beta); A, B and C read once, C written once (the minimum traffic).</summary>
    public static OperatorCost Cost(int m, int n, int k, float beta) =>
        new(2.0 * m * n * k + (beta != 0 ? 2.0 * m * n : 0), 4.0 * ((double)m * k + (double)k * n + (beta != 0 ? 2.0 : 1.0) * m * n));

    /// <summary>
    /// C = alpha * op(A) * op(B) + beta * C on an accelerator: the CPU implementation on cpu, a kernel
    /// on cpu-kernels and cuda (<paramref name="variant"/>; Auto picks by size). Views: A (m, k) or
    /// (k, m) when transA, B (k, n) or (n, k) when transB, C (m, n), each row-major with its row
    /// stride; same argument rules as <see cref="Cpu(bool, bool, int, int, int, float, ReadOnlySpan{float}, int, ReadOnlySpan{float}, int, float, Span{float}, int)"/>.
    /// </summary>
    public static void Run(Accelerator acc, bool transA, bool transB, int m, int n, int k, float alpha,
        View<float> a, int lda, View<float> b, int ldb, float beta, View<float> c, int ldc, GemmVariant variant)
    {
        OperatorDispatch.Run(acc, "Gemm.Run", Cost(m, n, k, beta),
            () => Cpu(transA, transB, m, n, k, alpha, a.AsSpan(), lda, b.AsSpan(), ldb, beta, c.AsSpan(), ldc),
            () =>
            {
                CheckShapes(transA, transB, m, n, k, a.Length, lda, b.Length, ldb, c.Length, ldc);
                if (m == 0 || n == 0)
                {
                    return;
                }
                if (acc.Precision != MatmulPrecision.Fp32)
                {
                    RunTensorCore(acc, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
                    return;
                }
                // k == 0 or alpha == 0 need no special case: the kernels' sums are 0 and C is only scaled
                // (beta == 0 writes 0). They do read A and B when alpha == 0 (0 * NaN is NaN), as a GPU BLAS may.
                var resolved = variant == GemmVariant.Auto && acc.Kind == AcceleratorKind.Cuda
                    ? Tuned(acc, transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
                    : ResolveVariant(variant, m, n);
                Launch(acc, resolved, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
            });
    }

    private static void Launch(Accelerator acc, GemmVariant variant, bool transA, bool transB, int m, int n, int k, float alpha,
        View<float> a, int lda, View<float> b, int ldb, float beta, View<float> c, int ldc)
    {
        switch (variant)
        {
            case GemmVariant.Gemm1Naive:
                Gemm1NaiveKernel.Launch(acc, Config(GemmVariant.Gemm1Naive, m, n),
                    m, n, k, alpha, a, lda, transA, b, ldb, transB, beta, c, ldc);
                break;
            case GemmVariant.Gemm2Tiled64:
                Gemm2Tiled64Kernel.Launch(acc, Config(GemmVariant.Gemm2Tiled64, m, n),
                    m, n, k, alpha, a, lda, transA, b, ldb, transB, beta, c, ldc);
                break;
            case GemmVariant.Gemm3Tiled128:
                Gemm3Tiled128Kernel.Launch(acc, Config(GemmVariant.Gemm3Tiled128, m, n),
                    m, n, k, alpha, a, lda, transA, b, ldb, transB, beta, c, ldc);
                break;
            case GemmVariant.Gemm4WarpTiled:
                // Float4 paths only where every row of the operand starts 16-byte aligned; otherwise scalar loads.
                Gemm4WarpTiledKernel.Launch(acc, Config(GemmVariant.Gemm4WarpTiled, m, n),
                    m, n, k, alpha, a, lda, transA, Float4.IsAligned(a, lda), b, ldb, transB, Float4.IsAligned(b, ldb),
                    beta, c, ldc, Float4.IsAligned(c, ldc));
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(variant), $"Unknown GEMM variant {variant}; use {VariantNames}.");
        }
    }

    /// <summary>The variants the cuda autotuner times for <see cref="GemmVariant.Auto"/> (Gemm1 is never competitive).</summary>
    public static IReadOnlyList<GemmVariant> TunedVariants { get; } = [GemmVariant.Gemm2Tiled64, GemmVariant.Gemm3Tiled128, GemmVariant.Gemm4WarpTiled];

    private static readonly Lazy<Autotuner> Tuner = new(() => Autotuner.InKernelCache("autotune-gemm.json"));

    /// <summary>The autotuner's key of a product: transposes, sizes and which operands can take Float4 accesses.</summary>
    public static string TuningProblem(bool transA, bool transB, int m, int n, int k, bool vectorA, bool vectorB, bool vectorC) =>
        $"sgemm {(transA ? "T" : "N")}{(transB ? "T" : "N")} m={m} n={n} k={k} float4={(vectorA ? 1 : 0)}{(vectorB ? 1 : 0)}{(vectorC ? 1 : 0)}";

    /// <summary>
    /// Auto on cuda: each of <see cref="TunedVariants"/> launched once untimed (module load) and once
    /// between CUDA events, into a scratch C with beta 0 so the caller's C is untouched; the winner is
    /// cached per device and problem (<see cref="Autotuner"/>).
    /// </summary>
    private static GemmVariant Tuned(Accelerator acc, bool transA, bool transB, int m, int n, int k,
        View<float> a, int lda, View<float> b, int ldb, View<float> c, int ldc)
    {
        string problem = TuningProblem(transA, transB, m, n, k, Float4.IsAligned(a, lda), Float4.IsAligned(b, ldb), Float4.IsAligned(c, ldc));
        string winner = Tuner.Value.Choose(acc.Name, problem, [.. TunedVariants.Select(v => v.ToString())], name =>
        {
            var candidate = Enum.Parse<GemmVariant>(name);
            using var scratch = acc.Allocate<float>(c.Length);
            Launch(acc, candidate, transA, transB, m, n, k, 1f, a, lda, b, ldb, 0f, scratch.View, ldc);
            using var timer = acc.CreateTimer();
            timer.Start();
            Launch(acc, candidate, transA, transB, m, n, k, 1f, a, lda, b, ldb, 0f, scratch.View, ldc);
            timer.Stop();
            return timer.ElapsedMilliseconds;
        });
        return Enum.Parse<GemmVariant>(winner);
    }

    /// <summary>The grid of one output tile per block for an m x n product with a resolved variant.</summary>
    private static LaunchConfig Config(GemmVariant variant, int m, int n) => variant switch
    {
        GemmVariant.Gemm1Naive => new LaunchConfig(new Dim3((n + NaiveBlock - 1) / NaiveBlock, (m + NaiveBlock - 1) / NaiveBlock), new Dim3(NaiveBlock, NaiveBlock)),
        GemmVariant.Gemm2Tiled64 => new LaunchConfig(new Dim3((n + Tile64 - 1) / Tile64, (m + Tile64 - 1) / Tile64), TiledThreads),
        GemmVariant.Gemm3Tiled128 => new LaunchConfig(new Dim3((n + Tile128 - 1) / Tile128, (m + Tile128 - 1) / Tile128), TiledThreads),
        GemmVariant.Gemm4WarpTiled => new LaunchConfig(new Dim3((n + Warp128 - 1) / Warp128, (m + Warp128 - 1) / Warp128), TiledThreads),
        _ => throw new ArgumentOutOfRangeException(nameof(variant), $"Unknown GEMM variant {variant}; use {VariantNames}."),
    };

    private const string VariantNames = "Auto, Gemm1Naive, Gemm2Tiled64, Gemm3Tiled128 or Gemm4WarpTiled";

    /// <summary>The classifier's products (Linear forward and backward) and a 1024^3 benchmark product, for each kernel.</summary>
    [LaunchShapes]
    private static IEnumerable<LaunchShape> LaunchShapes()
    {
        var fc = ResNet18Shapes.Fc;
        var products = new (string Case, int M, int N)[] { ("fc forward", fc.N, fc.Out), ("fc backward data", fc.N, fc.In), ("fc backward weight", fc.Out, fc.In), ("bench 1024^3", 1024, 1024) };
        var kernels = new[] { (GemmVariant.Gemm1Naive, Gemm1NaiveKernel.Definition), (GemmVariant.Gemm2Tiled64, Gemm2Tiled64Kernel.Definition), (GemmVariant.Gemm3Tiled128, Gemm3Tiled128Kernel.Definition), (GemmVariant.Gemm4WarpTiled, Gemm4WarpTiledKernel.Definition) };
        foreach (var (variant, kernel) in kernels)
        {
            foreach (var (name, m, n) in products)
            {
                yield return new LaunchShape(kernel, name, Config(variant, m, n));
            }
        }
    }

    /// <inheritdoc cref="Run(Accelerator, bool, bool, int, int, int, float, View{float}, int, View{float}, int, float, View{float}, int, GemmVariant)"/>
    public static void Run(Accelerator acc, bool transA, bool transB, int m, int n, int k, float alpha,
        View<float> a, int lda, View<float> b, int ldb, float beta, View<float> c, int ldc) =>
        Run(acc, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, GemmVariant.Auto);

    // ================================================================== self-tests

    [SelfTests]
    private static IEnumerable<SelfTestCase> SelfTests()
    {
        foreach (var variant in new[] { GemmVariant.Gemm1Naive, GemmVariant.Gemm2Tiled64, GemmVariant.Gemm3Tiled128, GemmVariant.Gemm4WarpTiled })
        {
            // (128, 256, 64): every Float4 path of Gemm4 (aligned rows, whole tiles); the others cross tile edges.
            foreach (var (m, n, k) in new[] { (1, 1, 1), (67, 45, 33), (300, 260, 200), (128, 256, 64) })
            {
                foreach (bool transA in new[] { false, true })
                {
                    foreach (bool transB in new[] { false, true })
                    {
                        string shape = $"{(transA ? "T" : "N")}{(transB ? "T" : "N")} m={m} n={n} k={k}";
                        yield return new SelfTestCase($"Gemm.{variant}", shape,
                            (acc, seed) => SelfCheck(acc, seed, variant, transA, transB, m, n, k));
                    }
                }
            }
        }
    }

    /// <summary>Runs one variant on seeded data (alpha 1.5, beta -0.5) and returns its largest difference from <see cref="Cpu(bool, bool, int, int, int, float, ReadOnlySpan{float}, int, ReadOnlySpan{float}, int, float, Span{float}, int)"/>.</summary>
    internal static SelfTestResult SelfCheck(Accelerator acc, int seed, GemmVariant variant, bool transA, bool transB, int m, int n, int k)
    {
        var random = new Random(seed);
        float[] Fill(int length)
        {
            var data = new float[length];
            for (int i = 0; i < length; i++)
            {
                data[i] = (float)(random.NextDouble() * 2 - 1);
            }
            return data;
        }
        var a = Fill(m * k);
        var b = Fill(k * n);
        var c = Fill(m * n);
        int lda = transA ? m : k;
        int ldb = transB ? k : n;
        const float alpha = 1.5f;
        const float beta = -0.5f;
        var expected = (float[])c.Clone();
        Cpu(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, expected, n);
        using var da = acc.Upload<float>(a);
        using var db = acc.Upload<float>(b);
        using var dc = acc.Upload<float>(c);
        Run(acc, transA, transB, m, n, k, alpha, da, lda, db, ldb, beta, dc, n, variant);
        acc.Synchronize();
        var actual = acc.Download(dc.View);
        // Both sides sum k products of magnitude <= 1.5 in float, in different orders.
        return new SelfTestResult(SelfTestCatalog.MaxAbsDifference(actual, expected), 1e-5 + 1e-6 * k);
    }
}

/// <summary>The GEMM kernels, numbered slowest to (expected) fastest; Auto tunes on cuda and picks by product size elsewhere.</summary>
public enum GemmVariant
{
    /// <summary>On cuda: the fastest of <see cref="Gemm.TunedVariants"/> for the shape, timed once and cached. Elsewhere: Gemm4 for products that fill a GPU with 128 x 128 tiles, Gemm2 below (see <see cref="Gemm.Tiled128MinBlocks"/>).</summary>
    Auto = 0,

    /// <summary>Gemm1: one thread per output, global memory only (baseline).</summary>
    Gemm1Naive = 1,

    /// <summary>Gemm2: 64 x 64 block tile, BK 16, 4 x 4 per thread.</summary>
    Gemm2Tiled64 = 2,

    /// <summary>Gemm3: 128 x 128 block tile, BK 8, 8 x 8 per thread.</summary>
    Gemm3Tiled128 = 3,

    /// <summary>Gemm4: 128 x 128 block tile split into 64 x 32 warp tiles, BK 8, Float4 global loads and stores, double-buffered shared tiles, 8 x 8 per thread.</summary>
    Gemm4WarpTiled = 4,
}

// ====================================================================== tensor-core variants (TF32, BF16)
// Kept apart from the FP32 kernels above: selected by Accelerator.Precision, not by GemmVariant.

public static partial class Gemm
{
    /// <summary>Block tile (rows and columns of C) of the tensor-core kernels: 4 warps, each 32 x 32 (2 x 4 mma tiles).</summary>
    internal const int TcTile = 64;

    /// <summary>k units (TF32 values, or BF16 pairs) per shared-memory slice: two mma k-steps of 8 units.</summary>
    internal const int TcUnits = 16;

    /// <summary>Row pitch of the shared slices in 32-bit words: 20 puts the 8 x 4 fragment reads of a warp on 32 distinct banks.</summary>
    internal const int TcPitch = TcUnits + 4;

    /// <summary>Threads of a tensor-core block: 4 warps.</summary>
    internal const int TcThreads = 128;

    /// <summary>
    /// GemmTensorCore1: C = alpha op(A) op(B) + beta C with mma.sync, TF32 m16n8k8 or (bf16) BF16 m16n8k16,
    /// FP32 accumulation. 64 x 64 block tile, 4 warps of 32 x 32; k in slices of 16 units staged in
    /// shared memory as 32-bit words (a TF32 value, or two BF16 packed by cvt.rn.bf16x2), rounded once
    /// on the way in; rows of both slices are k-contiguous so a fragment register is one word.
    /// </summary>
    [Kernel]
    private static void GemmTensorCore1(KernelContext ctx, bool bf16, int m, int n, int k, float alpha,
        View<float> a, int lda, bool transA, View<float> b, int ldb, bool transB, float beta, View<float> c, int ldc)
    {
        var tileA = ctx.Shared<uint>(TcTile * TcPitch);  // [row][k unit]
        var tileB = ctx.Shared<uint>(TcTile * TcPitch);  // [col][k unit]
        Span<float> acc = stackalloc float[32];          // tile (mi, ni) at 4 (4 mi + ni): 2 x 4 mma tiles
        Span<float> d = stackalloc float[4];
        Span<float> fa = stackalloc float[4];
        Span<float> fb = stackalloc float[2];
        Span<uint> ua = stackalloc uint[4];
        Span<uint> ub = stackalloc uint[2];
        int tid = ctx.ThreadIdx.X;
        int g = ctx.LaneIdx >> 2;
        int t = ctx.LaneIdx & 3;
        int warpRow = (ctx.WarpIdx >> 1) * 32;
        int warpCol = (ctx.WarpIdx & 1) * 32;
        int rowBase = ctx.BlockIdx.Y * TcTile;
        int colBase = ctx.BlockIdx.X * TcTile;
        int units = bf16 ? (k + 1) / 2 : k;
        for (int u0 = 0; u0 < units; u0 += TcUnits)
        {
            for (int e = tid; e < TcTile * TcUnits; e += TcThreads)
            {
                int r = e / TcUnits;
                int u = e % TcUnits;
                tileA[r * TcPitch + u] = TcUnit(a, lda, !transA, rowBase + r, u0 + u, m, k, bf16);
                tileB[r * TcPitch + u] = TcUnit(b, ldb, transB, colBase + r, u0 + u, n, k, bf16);
            }
            ctx.Barrier();
            TcSliceMma(ctx, tileA, tileB, acc, d, ua, fa, ub, fb, warpRow, warpCol, g, t, bf16);
            ctx.Barrier();
        }
        for (int q = 0; q < 32; q++)
        {
            int row = rowBase + warpRow + TcRow(q, g);
            int col = colBase + warpCol + TcCol(q, t);
            if (row < m && col < n)
            {
                int at = row * ldc + col;
                float v = alpha * acc[q];
                c[at] = beta == 0f ? v : MathF.FusedMultiplyAdd(beta, c[at], v);
            }
        }
    }

    /// <summary>
    /// The mma k-loop of a tensor-core block (GemmTensorCore1, Conv2d.ConvTensorCore1) over one staged
    /// slice of <see cref="TcUnits"/> units: per 8-unit step, the warp's 2 x 4 tiles of m16n8, each through
    /// <paramref name="d"/> (acc of tile (mi, ni) at 4 (4 mi + ni)). Every lane of the warp calls it.
    /// </summary>
    internal static void TcSliceMma(KernelContext ctx, View<uint> tileA, View<uint> tileB, Span<float> acc, Span<float> d,
        Span<uint> ua, Span<float> fa, Span<uint> ub, Span<float> fb, int warpRow, int warpCol, int g, int t, bool bf16)
    {
        for (int ks = 0; ks < TcUnits; ks += 8)
        {
            for (int tile = 0; tile < 8; tile++)
            {
                TcFragments(tileA, tileB, (warpRow + (tile >> 2) * 16 + g) * TcPitch + ks + t, (warpCol + (tile & 3) * 8 + g) * TcPitch + ks + t, ua, fa, ub, fb);
                for (int i = 0; i < 4; i++)
                {
                    d[i] = acc[tile * 4 + i];
                }
                if (bf16)
                {
                    ctx.MmaBf16(d, ua, ub);
                }
                else
                {
                    ctx.MmaTf32(d, fa, fb);
                }
                for (int i = 0; i < 4; i++)
                {
                    acc[tile * 4 + i] = d[i];
                }
            }
        }
    }

    /// <summary>
    /// This lane's fragments of one mma k-step from the shared slices (rows k-contiguous, pitch
    /// <see cref="TcPitch"/>): A register i at row g + 8 (i % 2), unit t + 4 (i / 2) (<paramref name="aAt"/>
    /// is row g, unit t of the mma tile); B register i at unit t + 4 i of column g (<paramref name="bAt"/>).
    /// The same words serve both formats: TF32 values, or BF16 pairs (then a unit is 2 k).
    /// </summary>
    internal static void TcFragments(View<uint> tileA, View<uint> tileB, int aAt, int bAt, Span<uint> ua, Span<float> fa, Span<uint> ub, Span<float> fb)
    {
        for (int i = 0; i < 4; i++)
        {
            ua[i] = tileA[aAt + (i & 1) * 8 * TcPitch + (i >> 1) * 4];
            fa[i] = KernelMath.IntAsFloat((int)ua[i]);
        }
        for (int i = 0; i < 2; i++)
        {
            ub[i] = tileB[bAt + 4 * i];
            fb[i] = KernelMath.IntAsFloat((int)ub[i]);
        }
    }

    /// <summary>Row within the warp's 32 x 32 of accumulator q (element q % 4 of tile q / 4): 16 mi + g + 8 ((q % 4) / 2).</summary>
    internal static int TcRow(int q, int g) => (q >> 4) * 16 + g + ((q >> 1) & 1) * 8;

    /// <summary>Column within the warp's 32 x 32 of accumulator q: 8 ni + 2 t + q % 2.</summary>
    internal static int TcCol(int q, int t) => ((q >> 2) & 3) * 8 + 2 * t + (q & 1);

    /// <summary>One shared word: <paramref name="low"/> rounded to TF32, or low and high rounded to BF16 and packed (low first).</summary>
    internal static uint TcWord(float low, float high, bool bf16) =>
        bf16 ? KernelMath.PackBf16x2(low, high) : (uint)KernelMath.FloatAsInt(KernelMath.RoundToTf32(low));

    /// <summary>
    /// One 32-bit k unit of a tensor-core operand row: element (row, unit) rounded to TF32, or elements
    /// (row, 2 unit) and (row, 2 unit + 1) rounded to BF16 and packed (low first); zeros outside the
    /// matrix. kContiguous: element (r, q) is v[r ld + q], else v[q ld + r].
    /// </summary>
    private static uint TcUnit(View<float> v, int ld, bool kContiguous, int row, int unit, int rows, int kDim, bool bf16)
    {
        int q = bf16 ? 2 * unit : unit;
        return TcWord(TcElement(v, ld, kContiguous, row, q, rows, kDim), bf16 ? TcElement(v, ld, kContiguous, row, q + 1, rows, kDim) : 0f, bf16);
    }

    private static float TcElement(View<float> v, int ld, bool kContiguous, int row, int q, int rows, int kDim)
    {
        if (row >= rows || q >= kDim)
        {
            return 0f;
        }
        return kContiguous ? v[row * ld + q] : v[q * ld + row];
    }

    /// <summary>The grid of the tensor-core kernels for an m x n output.</summary>
    internal static LaunchConfig TensorCoreConfig(int m, int n) =>
        new(new Dim3((n + TcTile - 1) / TcTile, (m + TcTile - 1) / TcTile), TcThreads);

    private static void RunTensorCore(Accelerator acc, bool transA, bool transB, int m, int n, int k, float alpha,
        View<float> a, int lda, View<float> b, int ldb, float beta, View<float> c, int ldc) =>
        GemmTensorCore1Kernel.Launch(acc, TensorCoreConfig(m, n), acc.Precision == MatmulPrecision.Bf16,
            m, n, k, alpha, a, lda, transA, b, ldb, transB, beta, c, ldc);

    [LaunchShapes]
    private static IEnumerable<LaunchShape> TensorCoreLaunchShapes()
    {
        var fc = ResNet18Shapes.Fc;
        foreach (var (name, m, n) in new (string, int, int)[] { ("fc forward", fc.N, fc.Out), ("fc backward weight", fc.Out, fc.In), ("bench 1024^3", 1024, 1024) })
        {
            yield return new LaunchShape(GemmTensorCore1Kernel.Definition, name, TensorCoreConfig(m, n));
        }
    }

    [SelfTests]
    private static IEnumerable<SelfTestCase> TensorCoreSelfTests()
    {
        foreach (var precision in new[] { MatmulPrecision.Tf32, MatmulPrecision.Bf16 })
        {
            foreach (var (m, n, k) in new[] { (1, 1, 1), (67, 45, 33), (130, 70, 97) })
            {
                foreach (bool transA in new[] { false, true })
                {
                    foreach (bool transB in new[] { false, true })
                    {
                        string shape = $"{(transA ? "T" : "N")}{(transB ? "T" : "N")} m={m} n={n} k={k}";
                        yield return new SelfTestCase($"GemmTensorCore1.{Accelerator.PrecisionName(precision)}", shape,
                            (acc, seed) => TensorCoreSelfCheck(acc, seed, precision, transA, transB, m, n, k));
                    }
                }
            }
        }
    }

    /// <summary>
    /// Tolerance of a reduced-precision product against the FP32 reference, for operands of magnitude at
    /// most <paramref name="scale"/>: rounding each input costs a relative u (2^-11 TF32, 2^-8 BF16), so a
    /// product a b is off by at most 2u |a b|; summed over k terms with random signs the errors grow like
    /// sqrt(k), bounded by k. The bound used is 2u scale^2 k (worst case, no cancellation assumed) plus
    /// FP32 accumulation differences.
    /// </summary>
    public static double TensorCoreTolerance(MatmulPrecision precision, int k, double scale)
    {
        double u = precision switch { MatmulPrecision.Tf32 => Math.Pow(2, -11), MatmulPrecision.Bf16 => Math.Pow(2, -8), _ => 0 };
        return 2 * u * scale * scale * Math.Max(k, 1) + 1e-5 + 1e-6 * k * scale * scale;
    }

    internal static SelfTestResult TensorCoreSelfCheck(Accelerator acc, int seed, MatmulPrecision precision, bool transA, bool transB, int m, int n, int k) =>
        OperatorSelfTest.WithPrecision(acc, precision, () =>
        {
            var result = SelfCheck(acc, seed, GemmVariant.Auto, transA, transB, m, n, k);
            // SelfCheck computes 1.5 A B - 0.5 C with entries in [-1, 1).
            return new SelfTestResult(result.MaxAbsError, 1.5 * TensorCoreTolerance(precision, k, 1));
        });
}
