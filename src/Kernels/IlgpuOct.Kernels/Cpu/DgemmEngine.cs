using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using IlgpuOct.Kernels.Operators;

namespace IlgpuOct.Kernels.Cpu;

/// <summary>Structure the float64 GEMM may exploit.</summary>
[Flags]
public enum DgemmOptions
{
    None = 0,

    /// <summary>
    /// Only the register tiles of C that hold an element on or above the diagonal are computed and written
    /// (BLAS dsyrk / dgemmt with uplo = upper); C below them is not touched. For symmetric products.
    /// </summary>
    UpperTriangleOfC = 1,

    /// <summary>
    /// Rows of op(B) that are exactly zero at the start or at the end of a micro-panel's k range are skipped,
    /// so a triangular B (or a row of triangular blocks) costs half. Exact zeros add nothing, except that an
    /// Inf or NaN of op(A) facing them does not propagate as it would in BLAS.
    /// </summary>
    SkipZeroRowsOfB = 2,
}

/// <summary>
/// The float64 GEMM of the host engines (the Gaussian mixture's Gram matrices and Mahalanobis products), in
/// the BLIS/GotoBLAS structure of <see cref="SgemmEngine"/>: op(B) is packed into KC x NR micro-panels and
/// op(A) into MC x KC blocks of MR-tall micro-panels (transposes absorbed by the packing, edges zero-padded),
/// and <see cref="DgemmMicroKernel"/> sweeps the MR x NR tiles. Row-major: C[i, j] at c[i * ldc + j].
/// Every element of C adds its KC slices in order and each slice in k order, whichever task computes it,
/// so results are bit-identical for any thread count and from run to run.
/// </summary>
public static unsafe class DgemmEngine
{
    /// <summary>Depth of a slice: a KC x NR micro-panel of B (16 KiB) stays in L1, an MC x KC block of A (144 KiB) in L2.</summary>
    public const int Kc = 256;

    /// <summary>Rows of C per block (a multiple of MR).</summary>
    public const int Mc = 72;

    /// <summary>Columns of C per packed B panel (a multiple of NR); a KC x NC slice of B stays in L3.</summary>
    public const int Nc = 4080;

    /// <summary>Products with fewer multiply-adds than this run on the calling thread (a Parallel.For costs ~10-30 us).</summary>
    public const long ParallelThreshold = 1L << 20;

    /// <summary>Rows of the micro-kernel's register tile.</summary>
    public const int Mr = DgemmMicroKernel.Mr;

    /// <summary>Columns of the micro-kernel's register tile.</summary>
    public const int Nr = DgemmMicroKernel.Nr;

    /// <summary>
    /// C = alpha * op(A) * op(B) + beta * C, row-major; op(A) is m x k (A stored k x m when
    /// <paramref name="transA"/>), op(B) is k x n (B stored n x k when <paramref name="transB"/>). beta == 0
    /// overwrites C without reading it; k == 0 or alpha == 0 only scales C. Uses up to
    /// <paramref name="maxThreads"/> threads; the result does not depend on how many.
    /// </summary>
    public static void Multiply(bool transA, bool transB, int m, int n, int k, double alpha,
        ReadOnlySpan<double> a, int lda, ReadOnlySpan<double> b, int ldb, double beta, Span<double> c, int ldc,
        int maxThreads, DgemmOptions options = DgemmOptions.None)
    {
        Gemm.CheckShapes(transA, transB, m, n, k, a.Length, lda, b.Length, ldb, c.Length, ldc, "doubles");
        ArgumentOutOfRangeException.ThrowIfLessThan(maxThreads, 1);
        if (m == 0 || n == 0)
        {
            return;
        }
        fixed (double* pa = a, pb = b, pc = c)
        {
            if (k == 0 || alpha == 0)
            {
                ScaleC(m, n, beta, pc, ldc, (options & DgemmOptions.UpperTriangleOfC) != 0);
                return;
            }
            int threads = (long)m * n * k < ParallelThreshold ? 1 : maxThreads;
            new Product(transA, transB, m, n, k, alpha, pa, lda, pb, ldb, beta, pc, ldc, options).Run(threads);
        }
    }

    /// <summary>
    /// Packs op(B) (k x n; B stored n x k when <paramref name="transB"/>) once for many
    /// <see cref="Multiply(bool, int, ReadOnlySpan{double}, int, DgemmPackedB, double, double, Span{double}, int)"/>
    /// calls on different rows of A (row blocks on different threads).
    /// </summary>
    public static DgemmPackedB Pack(bool transB, ReadOnlySpan<double> b, int ldb, int k, int n, bool skipZeroRows)
    {
        if (k < 0 || n < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(k), $"DGEMM pack sizes must be non-negative (k={k}, n={n}).");
        }
        Gemm.CheckMatrix("B", transB ? n : k, transB ? k : n, b.Length, ldb, transB ? "n x k (transB)" : "k x n", "doubles");
        var packed = new DgemmPackedB(k, n, skipZeroRows);
        fixed (double* pb = b)
        {
            for (int jc = 0; jc < n; jc += Nc)
            {
                int ncur = Math.Min(Nc, n - jc);
                for (int pc = 0; pc < k; pc += Kc)
                {
                    int kc = Math.Min(Kc, k - pc);
                    var (panels, ranges) = packed.Slice(jc, pc);
                    fixed (double* pp = panels)
                    {
                        PackB(transB, pb, ldb, pc, jc, kc, ncur, Align64(pp), ranges, skipZeroRows);
                    }
                }
            }
        }
        return packed;
    }

    /// <summary>
    /// C = alpha * op(A) * B + beta * C with B packed by <see cref="Pack"/>; op(A) is m x B.K (A stored
    /// B.K x m when <paramref name="transA"/>). Runs on the calling thread: callers split rows across threads.
    /// </summary>
    public static void Multiply(bool transA, int m, ReadOnlySpan<double> a, int lda, DgemmPackedB b, double alpha, double beta, Span<double> c, int ldc)
    {
        ArgumentNullException.ThrowIfNull(b);
        if (m < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(m), $"DGEMM rows must be non-negative (m={m}).");
        }
        Gemm.CheckMatrix("A", transA ? b.K : m, transA ? m : b.K, a.Length, lda, transA ? "k x m (transA)" : "m x k", "doubles");
        Gemm.CheckMatrix("C", m, b.N, c.Length, ldc, "m x n", "doubles");
        if (m == 0 || b.N == 0)
        {
            return;
        }
        fixed (double* pa = a, pc = c)
        {
            if (b.K == 0 || alpha == 0)
            {
                ScaleC(m, b.N, beta, pc, ldc, upper: false);
                return;
            }
            var product = new Product(transA, false, m, b.N, b.K, alpha, pa, lda, null, 0, beta, pc, ldc, DgemmOptions.None);
            double* ap = PackedABuffer();
            {
                for (int i0 = 0; i0 < m; i0 += Mc)
                {
                    int i1 = Math.Min(m, i0 + Mc);
                    for (int pc0 = 0; pc0 < b.K; pc0 += Kc)
                    {
                        int kc = Math.Min(Kc, b.K - pc0);
                        PackA(transA, pa, lda, i0, pc0, kc, i1 - i0, ap);
                        for (int jc = 0; jc < b.N; jc += Nc)
                        {
                            var (panels, ranges) = b.Slice(jc, pc0);
                            fixed (double* bp = panels)
                            {
                                product.MacroKernel(i0, i1, jc, pc0, kc, 0, (Math.Min(Nc, b.N - jc) + Nr - 1) / Nr, Align64(bp), ap, ranges, pc0 == 0 ? beta : 1.0);
                            }
                        }
                    }
                }
            }
        }
    }

    [ThreadStatic]
    private static double[]? _packedA;

    /// <summary>This thread's buffer for an MC x KC block of packed A (pinned, 64-byte aligned).</summary>
    private static double* PackedABuffer()
    {
        _packedA ??= GC.AllocateUninitializedArray<double>(Mc * Kc + 8, pinned: true);
        return Align64((double*)Unsafe.AsPointer(ref _packedA[0]));
    }

    /// <summary>One product's arguments and its BLIS loops.</summary>
    private sealed class Product(bool transA, bool transB, int m, int n, int k, double alpha,
        double* a, nint lda, double* b, nint ldb, double beta, double* c, nint ldc, DgemmOptions options)
    {
        private readonly bool _upper = (options & DgemmOptions.UpperTriangleOfC) != 0;
        private readonly bool _skipZeros = (options & DgemmOptions.SkipZeroRowsOfB) != 0;

        public void Run(int threads)
        {
            int ncMax = Math.Min(Nc, RoundUp(n, Nr));
            int kcMax = Math.Min(Kc, k);
            double[] packedB = GC.AllocateUninitializedArray<double>(ncMax * kcMax + 8, pinned: true);
            var ranges = new int[2 * (ncMax / Nr)];
            double* bp = Align64((double*)Unsafe.AsPointer(ref packedB[0]));
            int rowBlocks = (m + Mc - 1) / Mc;
            for (int jc = 0; jc < n; jc += Nc)
            {
                int ncur = Math.Min(Nc, n - jc);
                int panels = (ncur + Nr - 1) / Nr;
                // A few tasks per thread so a core slowed by other work does not hold up the rest.
                int chunks = threads == 1 ? 1 : Math.Clamp((4 * threads + rowBlocks - 1) / rowBlocks, 1, panels);
                int panelsPerChunk = (panels + chunks - 1) / chunks;
                chunks = (panels + panelsPerChunk - 1) / panelsPerChunk;
                for (int pc = 0; pc < k; pc += Kc)
                {
                    int kc = Math.Min(Kc, k - pc);
                    double sliceBeta = pc == 0 ? beta : 1.0;
                    if (threads == 1)
                    {
                        PackB(transB, b, ldb, pc, jc, kc, ncur, bp, ranges, _skipZeros);
                        for (int block = 0; block < rowBlocks; block++)
                        {
                            RunTask(block, 0, panels, jc, pc, kc, bp, ranges, sliceBeta);
                        }
                        continue;
                    }
                    var options = new ParallelOptions { MaxDegreeOfParallelism = threads };
                    nint bAddress = (nint)bp;
                    int packItems = Math.Min(panels, 2 * threads);
                    int panelsPerItem = (panels + packItems - 1) / packItems;
                    Parallel.For(0, (panels + panelsPerItem - 1) / panelsPerItem, options, item =>
                    {
                        int first = item * panelsPerItem;
                        int cols = Math.Min(panelsPerItem * Nr, ncur - first * Nr);
                        PackB(transB, b, ldb, pc, jc + first * Nr, kc, cols, (double*)bAddress + (nint)first * Nr * kc,
                            ranges.AsSpan(2 * first), _skipZeros);
                    });
                    Parallel.For(0, rowBlocks * chunks, options, task =>
                    {
                        int first = task % chunks * panelsPerChunk;
                        RunTask(task / chunks, first, Math.Min(panels, first + panelsPerChunk), jc, pc, kc, (double*)bAddress, ranges, sliceBeta);
                    });
                }
            }
            GC.KeepAlive(packedB);
        }

        // Rows [block * MC, ...) of C against B panels [panel0, panel1) of the current slice.
        private void RunTask(int block, int panel0, int panel1, int jc, int pc, int kc, double* bp, ReadOnlySpan<int> ranges, double sliceBeta)
        {
            double* ap = PackedABuffer();
            int i0 = block * Mc;
            int i1 = Math.Min(m, i0 + Mc);
            if (_upper)
            {
                // Panels left of this block's first row hold only elements below the diagonal.
                panel0 = Math.Max(panel0, (i0 - jc) / Nr);
                if (panel0 >= panel1)
                {
                    return;
                }
            }
            PackA(transA, a, lda, i0, pc, kc, i1 - i0, ap);
            MacroKernel(i0, i1, jc, pc, kc, panel0, panel1, bp, ap, ranges, sliceBeta);
        }

        /// <summary>Rows [i0, i1) of C (A packed from row i0) against panels [panel0, panel1) of the (jc, pc) slice of B.</summary>
        [SkipLocalsInit]
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void MacroKernel(int i0, int i1, int jc, int pc, int kc, int panel0, int panel1, double* bp, double* ap, ReadOnlySpan<int> ranges, double sliceBeta)
        {
            double* scratch = stackalloc double[Mr * Nr];
            for (int jp = panel0; jp < panel1; jp++)
            {
                int col = jc + jp * Nr;
                int cols = Math.Min(Nr, n - col);
                int lo = ranges[2 * jp];
                int hi = ranges[2 * jp + 1];
                double* bpp = bp + (nint)jp * Nr * kc + lo * Nr;
                for (int i = i0; i < i1; i += Mr)
                {
                    if (_upper && i > col + cols - 1)
                    {
                        break; // this tile and the ones below hold only elements below the diagonal
                    }
                    int rows = Math.Min(Mr, i1 - i);
                    double* app = ap + (nint)(i - i0) * kc + lo * Mr;
                    double* cp = c + i * ldc + col;
                    if (rows == Mr && cols == Nr)
                    {
                        SgemmMicroKernels.Vector256x6x2<double>(hi - lo, app, bpp, cp, ldc, alpha, sliceBeta);
                    }
                    else
                    {
                        SgemmMicroKernels.Vector256x6x2<double>(hi - lo, app, bpp, scratch, Nr, 1.0, 0.0);
                        StoreEdge(scratch, rows, cols, cp, ldc, alpha, sliceBeta);
                    }
                }
            }
        }
    }

    // op(A) panels of MR doubles: the float32 packing's body, specialised for double.
    private static void PackA(bool transA, double* a, nint lda, int row0, int p0, int kc, int rows, double* dst) =>
        SgemmPacking.PackA(transA, a, lda, row0, p0, kc, rows, Mr, dst);

    /// <summary>
    /// Packs op(B)[p0 .. p0+kc, col0 .. col0+cols] (op(B) = B, or B^T when B is stored (N, K)) into
    /// ceil(cols / NR) consecutive panels of kc x NR doubles (the float32 packing's body, specialised for
    /// double); columns past the edge are zeros. ranges[2q], ranges[2q + 1] receive the k range [lo, hi) of
    /// panel q the micro-kernel runs over: [0, kc), or with <paramref name="skipZeroRows"/> the span between
    /// the first and last row that is not all zeros.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PackB(bool transB, double* b, nint ldb, int p0, int col0, int kc, int cols, double* dst, Span<int> ranges, bool skipZeroRows)
    {
        SgemmPacking.PackB(transB, b, ldb, p0, col0, kc, cols, Nr, dst);
        int panels = (cols + Nr - 1) / Nr;
        nint panelSize = (nint)Nr * kc;
        for (int q = 0; q < panels; q++)
        {
            double* panel = dst + q * panelSize;
            int lo = 0;
            int hi = kc;
            if (skipZeroRows)
            {
                while (lo < hi && IsZeroRow(panel + lo * Nr))
                {
                    lo++;
                }
                while (hi > lo && IsZeroRow(panel + (hi - 1) * Nr))
                {
                    hi--;
                }
            }
            ranges[2 * q] = lo;
            ranges[2 * q + 1] = hi;
        }
    }

    private static bool IsZeroRow(double* row) =>
        Vector256.EqualsAll(Vector256.Load(row), Vector256<double>.Zero) && Vector256.EqualsAll(Vector256.Load(row + 4), Vector256<double>.Zero);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void StoreEdge(double* tile, int rows, int cols, double* c, nint ldc, double alpha, double beta)
    {
        for (int r = 0; r < rows; r++)
        {
            double* src = tile + r * Nr;
            double* dst = c + r * ldc;
            for (int q = 0; q < cols; q++)
            {
                dst[q] = beta == 0 ? alpha * src[q] : Math.FusedMultiplyAdd(beta, dst[q], alpha * src[q]);
            }
        }
    }

    private static void ScaleC(int m, int n, double beta, double* c, nint ldc, bool upper)
    {
        if (beta == 1)
        {
            return;
        }
        for (int i = 0; i < m; i++)
        {
            // With the upper triangle only, whole register tiles are touched as the product would.
            int from = upper ? Math.Min(n, i / Mr * Mr / Nr * Nr) : 0;
            var row = new Span<double>(c + i * ldc + from, n - from);
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

    private static double* Align64(double* p) => (double*)(((nint)p + 63) & ~(nint)63);
}

/// <summary>
/// op(B) (K x N) packed by <see cref="DgemmEngine.Pack"/>: for each NC-wide column panel and KC-deep slice,
/// the NR-wide micro-panels and the k range each one is multiplied over.
/// </summary>
public sealed class DgemmPackedB
{
    private readonly double[][] _panels; // per (column panel, slice): micro-panels of (kc, NR), 8 spare doubles for alignment
    private readonly int[][] _ranges; // per (column panel, slice): [lo, hi) per micro-panel
    private readonly int _slices;

    internal DgemmPackedB(int k, int n, bool skipZeroRows)
    {
        K = k;
        N = n;
        SkipZeroRows = skipZeroRows;
        _slices = (k + DgemmEngine.Kc - 1) / DgemmEngine.Kc;
        int columnPanels = (n + DgemmEngine.Nc - 1) / DgemmEngine.Nc;
        _panels = new double[columnPanels * _slices][];
        _ranges = new int[columnPanels * _slices][];
        for (int jc = 0; jc < columnPanels; jc++)
        {
            int micro = (Math.Min(DgemmEngine.Nc, n - jc * DgemmEngine.Nc) + DgemmMicroKernel.Nr - 1) / DgemmMicroKernel.Nr;
            for (int s = 0; s < _slices; s++)
            {
                int kc = Math.Min(DgemmEngine.Kc, k - s * DgemmEngine.Kc);
                _panels[jc * _slices + s] = GC.AllocateUninitializedArray<double>(micro * DgemmMicroKernel.Nr * kc + 8, pinned: true);
                _ranges[jc * _slices + s] = new int[2 * micro];
            }
        }
    }

    /// <summary>Rows of op(B) (the inner dimension).</summary>
    public int K { get; }

    /// <summary>Columns of op(B).</summary>
    public int N { get; }

    /// <summary>Whether all-zero rows at the ends of each micro-panel are skipped (<see cref="DgemmOptions.SkipZeroRowsOfB"/>).</summary>
    public bool SkipZeroRows { get; }

    internal (double[] Panels, int[] Ranges) Slice(int jc, int pc)
    {
        int index = jc / DgemmEngine.Nc * _slices + pc / DgemmEngine.Kc;
        return (_panels[index], _ranges[index]);
    }
}
