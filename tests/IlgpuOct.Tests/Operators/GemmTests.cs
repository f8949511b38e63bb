using FluentAssertions;
using IlgpuOct.Kernels.Cpu;
using IlgpuOct.Kernels.Operators;
using IlgpuOct.Tests.Support;
using Xunit;

namespace IlgpuOct.Tests.Operators;

/// <summary>The CPU SGEMM against a double-precision triple loop: shapes, transposes, strides, alpha/beta, kernels, threads.</summary>
public sealed class GemmTests
{
    /// <summary>A stored matrix of op(X) with a padded row stride, filled with seeded values in [-1, 1).</summary>
    internal sealed record Operand(float[] Data, int Ld);

    internal static Operand Random(int rows, int cols, int pad, Random rng)
    {
        int ld = cols + pad;
        var data = new float[Math.Max(0, (rows - 1) * ld + cols) + pad];
        for (int i = 0; i < data.Length; i++)
        {
            data[i] = (float)(rng.NextDouble() * 2 - 1);
        }
        return new Operand(data, ld);
    }

    /// <summary>C = alpha * op(A) op(B) + beta * C in double, beta == 0 ignoring C.</summary>
    internal static float[] Reference(bool transA, bool transB, int m, int n, int k, float alpha,
        float[] a, int lda, float[] b, int ldb, float beta, float[] c, int ldc)
    {
        var result = (float[])c.Clone();
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < n; j++)
            {
                double sum = 0;
                for (int p = 0; p < k; p++)
                {
                    double av = transA ? a[p * lda + i] : a[i * lda + p];
                    double bv = transB ? b[j * ldb + p] : b[p * ldb + j];
                    sum += av * bv;
                }
                double old = beta == 0 ? 0 : (double)beta * c[i * ldc + j];
                result[i * ldc + j] = (float)(alpha * sum + old);
            }
        }
        return result;
    }

    /// <summary>fp32 accumulation over k terms of size <= 1: error grows with k.</summary>
    internal static double AbsTolerance(int k) => 1e-6 + 2.5e-7 * k;

    private static void CheckCase(bool transA, bool transB, int m, int n, int k, float alpha, float beta, int seed,
        SgemmMicroKernel kernel = SgemmMicroKernel.Auto, int threads = 2, int pad = 0)
    {
        var rng = new Random(seed);
        var a = transA ? Random(k, m, pad, rng) : Random(m, k, pad, rng);
        var b = transB ? Random(n, k, pad, rng) : Random(k, n, pad, rng);
        var c = Random(m, n, pad, rng);
        var expected = Reference(transA, transB, m, n, k, alpha, a.Data, a.Ld, b.Data, b.Ld, beta, c.Data, c.Ld);
        var actual = (float[])c.Data.Clone();
        Gemm.Cpu(transA, transB, m, n, k, alpha, a.Data, a.Ld, b.Data, b.Ld, beta, actual, c.Ld, kernel, threads);
        Tolerance.AssertClose(actual, expected, AbsTolerance(k), 1e-5,
            $"gemm {(transA ? "T" : "N")}{(transB ? "T" : "N")} m={m} n={n} k={k} alpha={alpha} beta={beta} {kernel} threads={threads} pad={pad}");
    }

    public static TheoryData<int, int, int> Shapes => new()
    {
        { 1, 1, 1 },
        { 1, 37, 5 },
        { 29, 1, 17 },
        { 6, 16, 8 },     // exactly one 6 x 16 tile
        { 7, 17, 3 },     // one past the tile in both directions
        { 13, 33, 29 },
        { 12, 32, 1 },    // exactly one 12 x 32 tile, k = 1
        { 50, 70, 257 },  // k one past a KC block
        { 145, 20, 40 },  // m one past an MC block
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void All_transposes_match_the_double_reference(int m, int n, int k)
    {
        int seed = 1000 * m + 10 * n + k;
        foreach (bool transA in new[] { false, true })
        {
            foreach (bool transB in new[] { false, true })
            {
                CheckCase(transA, transB, m, n, k, 1f, 0f, seed);
            }
        }
    }

    [Fact]
    public void Resnet_shaped_product_matches_in_every_transpose_multithreaded()
    {
        // layer1 conv of a 32x32 image: Cout 64, 32*32 output pixels, Cin*3*3 = 576; big enough to go parallel.
        foreach (bool transA in new[] { false, true })
        {
            foreach (bool transB in new[] { false, true })
            {
                CheckCase(transA, transB, 64, 1024, 576, 1f, 0f, seed: 7, threads: 2);
            }
        }
    }

    [Fact]
    public void Large_product_crossing_every_block_boundary_matches()
    {
        // k > KC, n > NC (4080 for the 6x16 kernel), m > MC: every loop of the blocked driver runs twice or more.
        CheckCase(false, false, 150, 4100, 260, 0.75f, 0.5f, seed: 11, threads: 3);
    }

    [Theory]
    [InlineData(SgemmMicroKernel.Vector512x12x32)]
    [InlineData(SgemmMicroKernel.Vector256x6x16)]
    [InlineData(SgemmMicroKernel.Vector128x6x8)]
    public void Every_micro_kernel_matches_whatever_the_hardware(SgemmMicroKernel kernel)
    {
        // A micro-kernel the CPU does not accelerate runs in .NET's software vectors: slow, so small shapes.
        foreach (var (m, n, k) in new[] { (1, 1, 1), (13, 35, 9), (25, 70, 200), (12, 32, 7) })
        {
            foreach (bool transA in new[] { false, true })
            {
                foreach (bool transB in new[] { false, true })
                {
                    CheckCase(transA, transB, m, n, k, 1.25f, -0.5f, seed: m + n + k, kernel: kernel, threads: 1, pad: 3);
                }
            }
        }
    }

    [Theory]
    [InlineData(1f, 0f)]
    [InlineData(1f, 1f)]
    [InlineData(-0.5f, 2f)]
    [InlineData(3f, -1f)]
    public void Alpha_and_beta_scale_product_and_old_C(float alpha, float beta)
    {
        CheckCase(false, true, 31, 45, 67, alpha, beta, seed: 3, pad: 2);
        CheckCase(true, false, 150, 160, 100, alpha, beta, seed: 4, threads: 2); // parallel path
    }

    [Fact]
    public void Row_strides_leave_padding_columns_untouched()
    {
        var rng = new Random(5);
        int m = 9, n = 21, k = 14, pad = 4;
        var a = Random(m, k, pad, rng);
        var b = Random(k, n, pad, rng);
        var c = Random(m, n, pad, rng);
        var before = (float[])c.Data.Clone();
        Gemm.Cpu(false, false, m, n, k, 1f, a.Data, a.Ld, b.Data, b.Ld, 0.5f, c.Data, c.Ld);
        for (int i = 0; i < m - 1; i++)
        {
            for (int j = n; j < c.Ld; j++)
            {
                c.Data[i * c.Ld + j].Should().Be(before[i * c.Ld + j], $"padding at row {i}, column {j} is not part of C");
            }
        }
        for (int j = (m - 1) * c.Ld + n; j < c.Data.Length; j++)
        {
            c.Data[j].Should().Be(before[j], "floats after the last row are not part of C");
        }
    }

    [Theory]
    [InlineData(5, 7, 3, 1)]
    [InlineData(100, 130, 200, 2)]
    public void Beta_zero_ignores_NaN_in_C(int m, int n, int k, int threads)
    {
        var rng = new Random(6);
        var a = Random(m, k, 0, rng);
        var b = Random(k, n, 0, rng);
        var c = new float[m * n];
        Array.Fill(c, float.NaN);
        Gemm.Cpu(false, false, m, n, k, 1f, a.Data, k, b.Data, n, 0f, c, n, SgemmMicroKernel.Auto, threads);
        var expected = Reference(false, false, m, n, k, 1f, a.Data, k, b.Data, n, 0f, new float[m * n], n);
        Tolerance.AssertClose(c, expected, AbsTolerance(k), 1e-5, "beta = 0 over a C full of NaN");
    }

    [Fact]
    public void Alpha_zero_or_k_zero_only_scale_C()
    {
        var a = new[] { float.NaN, float.NaN, float.NaN, float.NaN };
        var b = new[] { float.NaN, float.NaN, float.NaN, float.NaN };
        var c = new[] { 1f, 2f, 3f, 4f };
        Gemm.Cpu(false, false, 2, 2, 2, 0f, a, 2, b, 2, 3f, c, 2);
        c.Should().Equal(3f, 6f, 9f, 12f);

        var c0 = new[] { float.NaN, 2f, 3f, 4f };
        Gemm.Cpu(false, false, 2, 2, 0, 1f, [], 0, [], 2, 0f, c0, 2);
        c0.Should().Equal(0f, 0f, 0f, 0f);
    }

    [Fact]
    public void Threads_do_not_change_a_single_bit()
    {
        var rng = new Random(8);
        int m = 130, n = 300, k = 300;
        var a = Random(m, k, 0, rng);
        var b = Random(n, k, 0, rng);
        var one = new float[m * n];
        var three = new float[m * n];
        Gemm.Cpu(false, true, m, n, k, 1f, a.Data, k, b.Data, k, 0f, one, n, SgemmMicroKernel.Auto, 1);
        Gemm.Cpu(false, true, m, n, k, 1f, a.Data, k, b.Data, k, 0f, three, n, SgemmMicroKernel.Auto, 3);
        three.Should().Equal(one, "every element of C is summed in the same order whatever the thread split");
    }

    [Fact]
    public void Batched_products_match_one_by_one_with_a_shared_A()
    {
        var rng = new Random(9);
        int batch = 5, m = 16, n = 49, k = 27;
        var w = Random(m, k, 0, rng);          // shared weights (strideA = 0)
        var cols = Random(batch * k, n, 0, rng); // batch of (k, n) im2col matrices
        var c = Random(batch * m, n, 0, rng);
        var expected = (float[])c.Data.Clone();
        for (int i = 0; i < batch; i++)
        {
            Gemm.Cpu(false, false, m, n, k, 1f, w.Data, k, cols.Data.AsSpan(i * k * n), n, 0.5f, expected.AsSpan(i * m * n), n);
        }
        Gemm.CpuBatched(false, false, batch, m, n, k, 1f, w.Data, k, 0, cols.Data, n, (long)k * n, 0.5f, c.Data, n, (long)m * n);
        c.Data.Should().Equal(expected);
    }

    [Fact]
    public void Too_short_operands_and_bad_strides_are_rejected_with_a_fix()
    {
        var small = new float[5];
        var act = () => Gemm.Cpu(false, false, 2, 3, 4, 1f, small, 4, new float[12], 3, 0f, new float[6], 3);
        act.Should().Throw<ArgumentException>().WithMessage("*A holds 5 floats*needs 8*");
        var stride = () => Gemm.Cpu(true, false, 2, 3, 4, 1f, new float[8], 1, new float[12], 3, 0f, new float[6], 3);
        stride.Should().Throw<ArgumentOutOfRangeException>().WithMessage("*Row stride of A (1)*stride >= 2*");
        var negative = () => Gemm.Cpu(false, false, -1, 3, 4, 1f, small, 4, new float[12], 3, 0f, new float[6], 3);
        negative.Should().Throw<ArgumentOutOfRangeException>();
    }
}
