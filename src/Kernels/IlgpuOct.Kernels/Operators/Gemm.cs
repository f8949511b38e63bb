namespace IlgpuOct.Kernels.Operators;

/// <summary>
/// Single-precision GEMM, row-major: C = alpha * op(A) * op(B) + beta * C, where op(A) is m x k
/// (A stored k x m when transA) and op(B) is k x n (B stored n x k when transB); lda/ldb/ldc are
/// row strides. The CPU implementation is the fast engine's workhorse; the kernels are tiled.
/// </summary>
public static partial class Gemm
{
    // PLACEHOLDER body: a plain triple loop so that callers can be written now; the CPU-GEMM work
    // package replaces it with packed panels and a register-blocked SIMD micro-kernel.
    public static void Cpu(bool transA, bool transB, int m, int n, int k, float alpha,
        ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, float beta, Span<float> c, int ldc)
    {
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < n; j++)
            {
                float sum = 0;
                for (int p = 0; p < k; p++)
                {
                    float av = transA ? a[p * lda + i] : a[i * lda + p];
                    float bv = transB ? b[j * ldb + p] : b[p * ldb + j];
                    sum += av * bv;
                }
                c[i * ldc + j] = alpha * sum + (beta == 0 ? 0 : beta * c[i * ldc + j]);
            }
        }
    }
}
