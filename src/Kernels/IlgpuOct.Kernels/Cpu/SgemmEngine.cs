using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace IlgpuOct.Kernels.Cpu;

/// <summary>Which register-blocked micro-kernel the CPU SGEMM runs.</summary>
public enum SgemmMicroKernel
{
    /// <summary>The widest one the hardware accelerates (512, else 256, else 128 bits).</summary>
    Auto,

    /// <summary>12 x 32 tile, Vector512 (AVX-512F).</summary>
    Vector512x12x32,

    /// <summary>6 x 16 tile, Vector256 with FMA (AVX2+FMA).</summary>
    Vector256x6x16,

    /// <summary>6 x 8 tile, Vector128 (SSE, NEON).</summary>
    Vector128x6x8,
}

/// <summary>
/// Register tile (<paramref name="Mr"/> x <paramref name="Nr"/>) and cache blocks of one micro-kernel:
/// a <paramref name="Kc"/> x <paramref name="Nr"/> micro-panel of B stays in L1, an
/// <paramref name="Mc"/> x <paramref name="Kc"/> block of A in L2, a <paramref name="Kc"/> x
/// <paramref name="Nc"/> panel of B in L3.
/// </summary>
public readonly record struct SgemmBlocking(int Mr, int Nr, int Kc, int Mc, int Nc);

/// <summary>
/// An SGEMM operand that packs itself instead of being read from a strided matrix: a convolution's
/// im2col matrix gathered straight from the image, so the matrix is never written out. Packing
/// layouts are those of <see cref="SgemmPacking.PackA"/> and <see cref="SgemmPacking.PackB"/>;
/// entries past the matrix edge are written as zeros.
/// </summary>
internal abstract unsafe class SgemmOperand
{
    /// <summary>
    /// As an A operand: ceil(rows / width) panels of kc x width floats, panel q holding
    /// op[row0 + q * width + i, p0 + p] at dst[q * width * kc + p * width + i].
    /// </summary>
    public abstract void PackRows(int row0, int rows, int p0, int kc, int width, float* dst);

    /// <summary>
    /// As a B operand: ceil(cols / width) panels of kc x width floats, panel q holding
    /// op[p0 + p, col0 + q * width + i] at dst[q * width * kc + p * width + i].
    /// </summary>
    public abstract void PackColumns(int p0, int kc, int col0, int cols, int width, float* dst);
}

/// <summary>
/// Where C lives: row-major with leading dimension <paramref name="Ldc"/>, or, with
/// <paramref name="BatchColumns"/> &gt; 0, split into column groups of that width stored
/// <paramref name="BatchStride"/> floats apart (C[i, j] at c[(j / BatchColumns) * BatchStride + i * Ldc + j % BatchColumns]):
/// the (N, C, H, W) layout of a convolution's output seen as a (C, N*H*W) matrix.
/// <see cref="Epilogue"/> is applied to each tile of C once its whole sum is stored.
/// </summary>
internal readonly record struct SgemmOutput(nint Ldc, int BatchColumns = 0, nint BatchStride = 0)
{
    public SgemmEpilogue Epilogue { get; init; }
}

/// <summary>
/// What happens to C after C = alpha op(A) op(B) + beta C, element by element, in this order:
/// C[i, j] += <see cref="RowBias"/>[i]; C[i, j] += <see cref="Residual"/> at C[i, j]'s own offset (same layout as C);
/// C[i, j] = max(C[i, j], 0) (as MathF.Max: NaN passes). Null pointers and false skip a step.
/// Run on each tile right after its last K slice is stored, while the tile is still in L1:
/// a convolution's bias, a residual connection and a ReLU without another pass over memory.
/// </summary>
internal readonly unsafe struct SgemmEpilogue(float* rowBias, float* residual, bool relu)
{
    public float* RowBias { get; } = rowBias; // (M) or null

    public float* Residual { get; } = residual; // laid out as C, or null

    public bool Relu { get; } = relu;

    public bool IsNone => RowBias == null && Residual == null && !Relu;

    /// <summary>max(v, 0) lane by lane as MathF.Max does (a NaN passes): the ReLU of every CPU epilogue.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> ReluKeepingNaN(Vector256<float> v) =>
        Vector256.ConditionalSelect(Vector256.GreaterThan(v, Vector256<float>.Zero) | ~Vector256.Equals(v, v), v, Vector256<float>.Zero);

    /// <summary>Applies the steps to rows [row, row + rows) x <paramref name="cols"/> columns of C stored at <paramref name="c"/> (C's base <paramref name="cBase"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Apply(float* cBase, float* c, nint ldc, int row, int rows, int cols)
    {
        for (int r = 0; r < rows; r++)
        {
            float* dst = c + r * ldc;
            float bias = RowBias == null ? 0f : RowBias[row + r];
            float* res = Residual == null ? null : Residual + (dst - cBase);
            int q = 0;
            if (Vector256.IsHardwareAccelerated)
            {
                var vb = Vector256.Create(bias);
                for (; q <= cols - Vector256<float>.Count; q += Vector256<float>.Count)
                {
                    var v = Vector256.Load(dst + q) + vb;
                    if (res != null)
                    {
                        v += Vector256.Load(res + q);
                    }
                    if (Relu)
                    {
                        v = ReluKeepingNaN(v);
                    }
                    v.Store(dst + q);
                }
            }
            for (; q < cols; q++)
            {
                float v = dst[q] + bias;
                if (res != null)
                {
                    v += res[q];
                }
                dst[q] = Relu ? MathF.Max(v, 0f) : v;
            }
        }
    }
}

/// <summary>
/// The CPU SGEMM in the BLIS/GotoBLAS structure: for each NC-wide column panel and KC-deep slice,
/// op(B) is packed into NR-wide micro-panels and op(A) into MR-tall micro-panels (transposes are
/// absorbed by the packing, edges are zero-padded), then a macro-kernel sweeps MC x NR blocks of C
/// with the register-blocked micro-kernel. With several threads, C is cut into one row (or column)
/// block per thread, each run whole with its own packing buffers; small products stay on the calling thread.
/// Row-major: C[i, j] at c[i * ldc + j].
/// </summary>
internal static unsafe class SgemmEngine
{
    /// <summary>Products with fewer multiply-adds than this run single-threaded (a parallel region costs ~10-30 us).</summary>
    public const long ParallelThreshold = 1L << 21;

    /// <summary>Floats of packed A per row group: rows are packed this / KC at a time (rounded to MC), so the buffer stays ~4 MB whatever m is.</summary>
    private const int MaxPackedFloats = 1 << 20;

    private const int LargestTile = 12 * 32;

    /// <summary>
    /// When C has a single MC block of rows, each B micro-panel is used by one task only: that task
    /// packs its panels this many at a time just before using them, while they are still in L2.
    /// </summary>
    private const int FusedBPanels = 16;

    public static SgemmMicroKernel Resolve(SgemmMicroKernel kernel) => kernel != SgemmMicroKernel.Auto
        ? kernel
        : Vector512.IsHardwareAccelerated ? SgemmMicroKernel.Vector512x12x32
        : Vector256.IsHardwareAccelerated ? SgemmMicroKernel.Vector256x6x16
        : SgemmMicroKernel.Vector128x6x8;

    // Zen 3 / Skylake-class caches: 32-48 KB L1d, 512 KB-2 MB L2 per core, a shared L3.
    public static SgemmBlocking Blocking(SgemmMicroKernel kernel) => Resolve(kernel) switch
    {
        SgemmMicroKernel.Vector512x12x32 => new SgemmBlocking(12, 32, 192, 192, 3072),
        SgemmMicroKernel.Vector256x6x16 => new SgemmBlocking(6, 16, 256, 144, 4080),
        _ => new SgemmBlocking(6, 8, 256, 144, 4080),
    };

    private static delegate*<int, float*, float*, float*, nint, float, float, void> MicroKernel(SgemmMicroKernel kernel) => kernel switch
    {
        SgemmMicroKernel.Vector512x12x32 => &SgemmMicroKernels.Vector512x12x32,
        SgemmMicroKernel.Vector256x6x16 => &SgemmMicroKernels.Vector256x6x2<float>,
        _ => &SgemmMicroKernels.Vector128x6x8,
    };

    /// <summary>C = alpha * op(A) * op(B) + beta * C on raw row-major memory; arguments already checked.</summary>
    public static void Run(SgemmMicroKernel kernel, int maxThreads, bool transA, bool transB, int m, int n, int k,
        float alpha, float* a, nint lda, float* b, nint ldb, float beta, float* c, nint ldc) =>
        Run(kernel, maxThreads, transA, transB, m, n, k, alpha, a, lda, null, b, ldb, null, beta, c, new SgemmOutput(ldc));

    /// <summary>
    /// C = alpha * op(A) * op(B) + beta * C where A and/or B may be self-packing operands
    /// (<paramref name="aSource"/>, <paramref name="bSource"/>: then the pointer, stride and transpose
    /// flag of that operand are ignored) and C may be column-batched (<paramref name="output"/>).
    /// </summary>
    public static void Run(SgemmMicroKernel kernel, int maxThreads, bool transA, bool transB, int m, int n, int k,
        float alpha, float* a, nint lda, SgemmOperand? aSource, float* b, nint ldb, SgemmOperand? bSource,
        float beta, float* c, SgemmOutput output)
    {
        nint ldc = output.Ldc;
        if (m == 0 || n == 0)
        {
            return;
        }
        if (k == 0 || alpha == 0)
        {
            if (output.BatchColumns > 0 || !output.Epilogue.IsNone)
            {
                throw new ArgumentException($"SGEMM {m}x{n}x{k}: a column-batched C or an epilogue needs k >= 1 and alpha != 0; scale C in its own layout instead.", nameof(output));
            }
            // BLAS semantics: A and B are not read, C only scaled (beta == 0 clears it, NaN included).
            ScaleC(m, n, beta, c, ldc);
            return;
        }
        kernel = Resolve(kernel);
        var blocking = Blocking(kernel);
        // Equal K slices (a multiple of the micro-kernel's unroll of 4): 576 = 3 x 192, not 256 + 256 + 64,
        // whose shallow last slice would load and store C for little work.
        int kSlices = (k + blocking.Kc - 1) / blocking.Kc;
        // Likewise equal column panels (whole NR panels): 8192 = 3 x 2736, not 4080 + 4080 + 32.
        int nPanels = (n + blocking.Nc - 1) / blocking.Nc;
        blocking = blocking with
        {
            Kc = Math.Min(blocking.Kc, RoundUp((k + kSlices - 1) / kSlices, 4)),
            Nc = Math.Min(blocking.Nc, RoundUp((n + nPanels - 1) / nPanels, blocking.Nr)),
        };
        int threads = (long)m * n * k < ParallelThreshold ? 1 : Math.Max(1, maxThreads);

        int kcMax = Math.Min(blocking.Kc, k);
        int ncMax = Math.Min(blocking.Nc, RoundUp(n, blocking.Nr));
        int groupRows = Math.Max(blocking.Mc, MaxPackedFloats / blocking.Kc / blocking.Mc * blocking.Mc);
        int mgMax = Math.Min(groupRows, RoundUp(m, blocking.Mr));
        bool splitRows = false;

        var plan = new SgemmPlan
        {
            Kernel = MicroKernel(kernel),
            Blocking = blocking,
            TransA = transA,
            TransB = transB,
            M = m,
            N = n,
            K = k,
            Alpha = alpha,
            A = a,
            Lda = lda,
            ASource = aSource,
            B = b,
            Ldb = ldb,
            BSource = bSource,
            C = c,
            Ldc = ldc,
            CBatchColumns = output.BatchColumns,
            CBatchStride = output.BatchStride,
            Epilogue = output.Epilogue,
        };
        int packedLength = kcMax * ncMax + kcMax * mgMax;
        int parts = threads == 1 ? 1 : SplitParts(m, n, blocking, threads, out splitRows);
        if (parts == 1)
        {
            RunPart(plan, k, beta, groupRows, packedLength);
            return;
        }
        // One parallel region per product: the rows (or columns) of C are cut into one block per
        // thread and each thread runs the whole K loop on its block with its own packing buffers, so
        // there is no fork-join per K slice. The cut is across the operand that costs less to pack twice
        // (B is packed by every row block, A by every column block). Every element still adds its KC
        // slices in order, so the bits do not depend on the split.
        bool byRows = splitRows;
        int unit = byRows ? blocking.Mr : blocking.Nr, extent = byRows ? m : n;
        int step = RoundUp((extent + parts - 1) / parts, unit);
        Parallel.For(0, parts, new ParallelOptions { MaxDegreeOfParallelism = threads }, part =>
        {
            var own = plan;
            int begin = part * step, end = Math.Min(extent, begin + step);
            if (begin >= end)
            {
                return;
            }
            if (byRows)
            {
                own.RowBegin = begin;
                own.M = end;
            }
            else
            {
                own.ColBegin = begin;
                own.N = end;
            }
            RunPart(own, k, beta, groupRows, packedLength);
        });
    }

    /// <summary>Blocks of C to run in parallel (1: serial), and whether they are row blocks.</summary>
    private static int SplitParts(int m, int n, SgemmBlocking blocking, int threads, out bool byRows)
    {
        // Packing B again per row block costs K x N floats, A again per column block K x M.
        byRows = n < m;
        int tiles = byRows ? (m + blocking.Mr - 1) / blocking.Mr : (n + blocking.Nr - 1) / blocking.Nr;
        return Math.Min(threads, tiles);
    }

    /// <summary>Rows [RowBegin, M) by columns [ColBegin, N) of C on the calling thread, with its own packing buffers.</summary>
    private static void RunPart(SgemmPlan plan, int k, float beta, int groupRows, int packedLength)
    {
        var blk = plan.Blocking;
        int kcMax = Math.Min(blk.Kc, k);
        int packedBLength = kcMax * Math.Min(blk.Nc, RoundUp(plan.N - plan.ColBegin, blk.Nr));
        // 32 spare floats to align both buffers at 64 bytes (whole cache lines, aligned vector loads).
        float[] packed = ArrayPool<float>.Shared.Rent(packedLength + 32);
        try
        {
            fixed (float* p = packed)
            {
                plan.PackedB = Align64(p);
                plan.PackedA = Align64(plan.PackedB + packedBLength);
                RunSerial(ref plan, k, beta, groupRows);
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(packed);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RunSerial(ref SgemmPlan plan, int k, float beta, int groupRows)
    {
        var blk = plan.Blocking;
        for (int jc = plan.ColBegin; jc < plan.N; jc += blk.Nc)
        {
            for (int pc = 0; pc < k; pc += blk.Kc)
            {
                for (int ig = plan.RowBegin; ig < plan.M; ig += groupRows)
                {
                    plan.SetSlice(jc, pc, Math.Min(blk.Kc, k - pc), ig, groupRows, pc == 0 ? beta : 1f);
                    plan.Pack();
                    int blocks = plan.RowBlocks;
                    for (int block = 0; block < blocks; block++)
                    {
                        plan.Compute(block);
                    }
                }
            }
        }
    }

    /// <summary>
    /// One block of a product's C. SetSlice selects the (jc, pc, ig) slice; Pack packs its A panels (and
    /// its B panels unless the compute step packs them as it goes); Compute(block) runs the macro-kernel on one MC block.
    /// </summary>
    private struct SgemmPlan
    {
        public delegate*<int, float*, float*, float*, nint, float, float, void> Kernel;
        public SgemmBlocking Blocking;
        public bool TransA;
        public bool TransB;
        public int RowBegin; // C rows [RowBegin, M) ...
        public int ColBegin; // ... by columns [ColBegin, N): this plan's block
        public int M;
        public int N;
        public int K;
        public float Alpha;
        public float* A; // op(A) is (M, K); stored (K, M) when TransA
        public nint Lda;
        public SgemmOperand? ASource; // packs op(A) itself when set
        public float* B; // op(B) is (K, N); stored (N, K) when TransB
        public nint Ldb;
        public SgemmOperand? BSource; // packs op(B) itself when set
        public float* C; // (M, N)
        public nint Ldc;
        public int CBatchColumns; // > 0: C's columns in groups of this width ...
        public nint CBatchStride; // ... stored this many floats apart
        public SgemmEpilogue Epilogue; // applied to each tile after its last K slice
        public float* PackedA; // (groupRows / MR) panels of (KC, MR)
        public float* PackedB; // (NC / NR) panels of (KC, NR)

        // current slice
        private int _jc;
        private int _pc;
        private int _kc;
        private int _ig;
        private int _mg;
        private int _ncur;
        private float _beta;
        private int _bPanels;
        private int _mBlocks;
        private bool _packB;        // B needs packing in this slice (first row group)
        private bool _fuseB;        // ... and the compute step does it itself

        public readonly int RowBlocks => _mBlocks;

        public void SetSlice(int jc, int pc, int kc, int ig, int groupRows, float beta)
        {
            var blk = Blocking;
            _jc = jc;
            _pc = pc;
            _kc = kc;
            _ig = ig;
            _mg = Math.Min(groupRows, M - ig);
            _ncur = Math.Min(blk.Nc, N - jc);
            _beta = beta;
            _bPanels = (_ncur + blk.Nr - 1) / blk.Nr;
            _mBlocks = (_mg + blk.Mc - 1) / blk.Mc;
            _packB = ig == RowBegin; // B's slice is packed once and reused by every row group
            _fuseB = _mBlocks == 1;
        }

        public readonly void Pack()
        {
            if (_packB && !_fuseB)
            {
                PackBPanels(0, _bPanels);
            }
            var blk = Blocking;
            if (ASource is not null)
            {
                ASource.PackRows(_ig, _mg, _pc, _kc, blk.Mr, PackedA);
            }
            else
            {
                SgemmPacking.PackA(TransA, A, Lda, _ig, _pc, _kc, _mg, blk.Mr, PackedA);
            }
        }

        private readonly void PackBPanels(int firstPanel, int endPanel)
        {
            var blk = Blocking;
            int col0 = _jc + firstPanel * blk.Nr;
            int cols = Math.Min((endPanel - firstPanel) * blk.Nr, _jc + _ncur - col0);
            float* dst = PackedB + (nint)firstPanel * blk.Nr * _kc;
            if (BSource is not null)
            {
                BSource.PackColumns(_pc, _kc, col0, cols, blk.Nr, dst);
            }
            else
            {
                SgemmPacking.PackB(TransB, B, Ldb, _pc, col0, _kc, cols, blk.Nr, dst);
            }
        }

        // Hot code runs optimized from the first call: tiering would leave it at tier 0 for short runs.
        [SkipLocalsInit]
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public readonly void Compute(int block)
        {
            var blk = Blocking;
            int i0 = block * blk.Mc;
            int i1 = Math.Min(i0 + blk.Mc, _mg);
            int j0 = 0, j1 = _bPanels;
            float* scratch = stackalloc float[LargestTile];
            if (!_fuseB)
            {
                MacroKernel(i0, i1, j0, j1, scratch);
                return;
            }
            for (int js = j0; js < j1; js += FusedBPanels)
            {
                int je = Math.Min(js + FusedBPanels, j1);
                if (_packB)
                {
                    PackBPanels(js, je);
                }
                MacroKernel(i0, i1, js, je, scratch);
            }
        }

        /// <summary>Rows [i0, i1) of the row group against B panels [j0, j1), one MR x NR tile at a time.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private readonly void MacroKernel(int i0, int i1, int j0, int j1, float* scratch)
        {
            var blk = Blocking;
            int mr = blk.Mr;
            int nr = blk.Nr;
            var kernel = Kernel;
            bool epilogue = _pc + _kc == K && !Epilogue.IsNone; // the tile's whole sum is stored in this slice
            for (int jp = j0; jp < j1; jp++)
            {
                float* bp = PackedB + (nint)jp * nr * _kc;
                int col = _jc + jp * nr;
                int cols = Math.Min(nr, N - col);
                for (int i = i0; i < i1; i += mr)
                {
                    float* ap = PackedA + (nint)(i / mr) * mr * _kc;
                    int rows = Math.Min(mr, i1 - i);
                    int row = _ig + i;
                    if (CBatchColumns > 0)
                    {
                        StoreBatched(kernel, ap, bp, row, rows, col, cols, scratch, epilogue);
                        continue;
                    }
                    float* cp = C + row * Ldc + col;
                    if (rows == mr && cols == nr)
                    {
                        kernel(_kc, ap, bp, cp, Ldc, Alpha, _beta);
                    }
                    else
                    {
                        kernel(_kc, ap, bp, scratch, nr, 1f, 0f);
                        StoreEdge(scratch, nr, rows, cols, cp, Ldc, Alpha, _beta);
                    }
                    if (epilogue)
                    {
                        Epilogue.Apply(C, cp, Ldc, row, rows, cols);
                    }
                }
            }
        }

        /// <summary>One tile into a column-batched C: straight when it lies inside one column group, else split at the group edges.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private readonly void StoreBatched(delegate*<int, float*, float*, float*, nint, float, float, void> kernel,
            float* ap, float* bp, int row, int rows, int col, int cols, float* scratch, bool epilogue)
        {
            int nr = Blocking.Nr;
            int group = col / CBatchColumns;
            int offset = col - group * CBatchColumns;
            float* cp = C + group * CBatchStride + row * Ldc + offset;
            if (rows == Blocking.Mr && cols == nr && offset + nr <= CBatchColumns)
            {
                kernel(_kc, ap, bp, cp, Ldc, Alpha, _beta);
                if (epilogue)
                {
                    Epilogue.Apply(C, cp, Ldc, row, rows, cols);
                }
                return;
            }
            kernel(_kc, ap, bp, scratch, nr, 1f, 0f);
            for (int q = 0; q < cols;)
            {
                int run = Math.Min(cols - q, CBatchColumns - offset);
                StoreEdge(scratch + q, nr, rows, run, cp, Ldc, Alpha, _beta);
                if (epilogue)
                {
                    Epilogue.Apply(C, cp, Ldc, row, rows, run);
                }
                q += run;
                group++;
                offset = 0;
                cp = C + group * CBatchStride + row * Ldc;
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void StoreEdge(float* tile, int nr, int rows, int cols, float* c, nint ldc, float alpha, float beta)
    {
        for (int r = 0; r < rows; r++)
        {
            float* src = tile + r * nr;
            float* dst = c + r * ldc;
            if (beta == 0)
            {
                for (int q = 0; q < cols; q++)
                {
                    dst[q] = alpha * src[q];
                }
            }
            else
            {
                for (int q = 0; q < cols; q++)
                {
                    dst[q] = MathF.FusedMultiplyAdd(beta, dst[q], alpha * src[q]);
                }
            }
        }
    }

    private static void ScaleC(int m, int n, float beta, float* c, nint ldc)
    {
        if (beta == 1)
        {
            return;
        }
        for (int i = 0; i < m; i++)
        {
            var row = new Span<float>(c + i * ldc, n);
            if (beta == 0)
            {
                row.Clear();
            }
            else
            {
                System.Numerics.Tensors.TensorPrimitives.Multiply(row, beta, row);
            }
        }
    }

    private static int RoundUp(int value, int multiple) => (value + multiple - 1) / multiple * multiple;

    private static float* Align64(float* p) => (float*)(((nint)p + 63) & ~(nint)63);
}
