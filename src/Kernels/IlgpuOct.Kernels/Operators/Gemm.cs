using IlgpuOct.Kernels.Cpu;

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
    internal static void CheckShapes(bool transA, bool transB, int m, int n, int k, int aLength, int lda, int bLength, int ldb, int cLength, int ldc)
    {
        if (m < 0 || n < 0 || k < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(m), $"GEMM sizes must be non-negative (m={m}, n={n}, k={k}).");
        }
        CheckMatrix("A", transA ? k : m, transA ? m : k, aLength, lda, transA ? "k x m (transA)" : "m x k");
        CheckMatrix("B", transB ? n : k, transB ? k : n, bLength, ldb, transB ? "n x k (transB)" : "k x n");
        CheckMatrix("C", m, n, cLength, ldc, "m x n");
    }

    private static void CheckMatrix(string name, int rows, int cols, int length, int ld, string layout)
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
                $"{name} holds {length} floats but a {rows} x {cols} matrix with row stride {ld} needs {need}; check m/n/k, the transpose flags and the stride.",
                name.ToLowerInvariant());
        }
    }
}
