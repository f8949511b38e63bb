using FluentAssertions;
using IlgpuOct.Kernels.Cpu;
using IlgpuOct.Tests.Support;
using Xunit;

namespace IlgpuOct.Tests.Kernels;

/// <summary>
/// The float64 packed GEMM against a naive triple loop: odd sizes across the MR/NR/MC/KC edges, transposes,
/// strides, alpha/beta, 1 and 2 threads, the upper-triangle and zero-row options, the pre-packed B path,
/// and bit-identical results across thread counts and runs.
/// </summary>
public sealed class DgemmEngineTests
{
    private sealed record Operand(double[] Data, int Ld);

    private static Operand Random(int rows, int cols, int pad, Random rng)
    {
        int ld = Math.Max(1, cols + pad);
        var data = new double[Math.Max(0, (rows - 1) * ld + cols) + pad];
        for (int i = 0; i < data.Length; i++)
        {
            data[i] = rng.NextDouble() * 2 - 1;
        }
        return new Operand(data, ld);
    }

    /// <summary>C = alpha * op(A) op(B) + beta * C by the textbook triple loop, beta == 0 ignoring C.</summary>
    private static double[] Naive(bool transA, bool transB, int m, int n, int k, double alpha,
        double[] a, int lda, double[] b, int ldb, double beta, double[] c, int ldc)
    {
        var result = (double[])c.Clone();
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < n; j++)
            {
                double sum = 0;
                for (int p = 0; p < k; p++)
                {
                    sum += (transA ? a[p * lda + i] : a[i * lda + p]) * (transB ? b[j * ldb + p] : b[p * ldb + j]);
                }
                result[i * ldc + j] = alpha * sum + (beta == 0 ? 0 : beta * c[i * ldc + j]);
            }
        }
        return result;
    }

    // float64 accumulation of k products of size <= 1 in a different order than the loop above.
    private static double Atol(int k) => 1e-14 * (k + 1);

    public static TheoryData<bool, bool, int, int, int, double, double, int, int> Cases() => new()
    {
        // transA, transB, m, n, k, alpha, beta, threads, pad
        { false, false, 1, 1, 1, 1.0, 0.0, 1, 0 },
        { false, false, 7, 9, 5, 1.0, 0.0, 1, 0 },
        { true, false, 13, 17, 29, 0.5, 0.0, 2, 3 },
        { false, true, 6, 8, 256, 1.0, 1.0, 2, 0 },
        { true, true, 73, 41, 257, -1.5, 0.25, 2, 1 },
        { false, false, 145, 203, 531, 1.0, 0.0, 2, 2 },
        { true, false, 150, 97, 600, 1.0, -2.0, 1, 0 },
        { false, true, 80, 4089, 3, 2.0, 0.0, 2, 0 },
        { true, true, 5, 3, 1000, 1.0, 1.0, 2, 5 },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Multiply_MatchesTheTripleLoop(bool transA, bool transB, int m, int n, int k, double alpha, double beta, int threads, int pad)
    {
        var rng = new Random(m * 7919 + n * 104729 + k);
        var a = transA ? Random(k, m, pad, rng) : Random(m, k, pad, rng);
        var b = transB ? Random(n, k, pad, rng) : Random(k, n, pad, rng);
        var c = Random(m, n, pad, rng);
        var expected = Naive(transA, transB, m, n, k, alpha, a.Data, a.Ld, b.Data, b.Ld, beta, c.Data, c.Ld);
        var actual = (double[])c.Data.Clone();
        DgemmEngine.Multiply(transA, transB, m, n, k, alpha, a.Data, a.Ld, b.Data, b.Ld, beta, actual, c.Ld, threads);
        Tolerance.AssertClose(actual, expected, Atol(k), 1e-13,
            $"dgemm {(transA ? "T" : "N")}{(transB ? "T" : "N")} m={m} n={n} k={k} alpha={alpha} beta={beta} threads={threads} pad={pad}");
    }

    [Fact]
    public void Multiply_IsBitIdenticalAcrossThreadCountsAndRuns()
    {
        // Large enough to run in parallel (m n k above the threshold), with edges in every dimension.
        const int m = 151, n = 133, k = 517;
        var rng = new Random(5);
        var a = Random(k, m, 0, rng);
        var b = Random(k, n, 0, rng);
        ((long)m * n * k).Should().BeGreaterThan(DgemmEngine.ParallelThreshold);
        double[] Run(int threads)
        {
            var c = new double[m * n];
            DgemmEngine.Multiply(true, false, m, n, k, 1.0, a.Data, a.Ld, b.Data, b.Ld, 0.0, c, n, threads);
            return c;
        }
        var one = Run(1);
        var two = Run(2);
        var again = Run(2);
        two.Should().Equal(one, "the same product on 1 and 2 threads");
        again.Should().Equal(two, "the same product run twice on 2 threads");
        Tolerance.AssertClose(one, Naive(true, false, m, n, k, 1.0, a.Data, a.Ld, b.Data, b.Ld, 0.0, new double[m * n], n), Atol(k), 1e-13, "dgemm TN 151x133x517");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void UpperTriangleOfC_ComputesTheUpperTilesAndLeavesTheRest(int threads)
    {
        // A Gram matrix X^T X as the mixture forms it; sentinel values show which elements were written.
        const int n = 301, d = 157;
        var rng = new Random(11);
        var x = Random(n, d, 0, rng);
        const double sentinel = 12345.0;
        var c = Enumerable.Repeat(sentinel, d * d).ToArray();
        DgemmEngine.Multiply(true, false, d, d, n, 1.0, x.Data, d, x.Data, d, 0.0, c, d, threads, DgemmOptions.UpperTriangleOfC);
        var expected = Naive(true, false, d, d, n, 1.0, x.Data, d, x.Data, d, 0.0, new double[d * d], d);
        for (int i = 0; i < d; i++)
        {
            for (int j = 0; j < d; j++)
            {
                int tileRow = i / DgemmMicroKernel.Mr * DgemmMicroKernel.Mr;
                int tileLastColumn = Math.Min(d - 1, j / DgemmMicroKernel.Nr * DgemmMicroKernel.Nr + DgemmMicroKernel.Nr - 1);
                if (j >= i)
                {
                    Math.Abs(c[i * d + j] - expected[i * d + j]).Should().BeLessThanOrEqualTo(Atol(n) + 1e-13 * Math.Abs(expected[i * d + j]), $"upper element ({i}, {j})");
                }
                else if (tileRow > tileLastColumn)
                {
                    c[i * d + j].Should().Be(sentinel, $"element ({i}, {j}) lies in a tile wholly below the diagonal");
                }
            }
        }
    }

    [Theory]
    [InlineData(true, 1)]
    [InlineData(false, 2)]
    public void SkipZeroRowsOfB_OnTriangularFactors_MatchesTheTripleLoop(bool upper, int threads)
    {
        // (X - mu) M with M triangular, as the mixture's E-step multiplies; D spans two KC slices.
        const int n = 97, d = 300;
        var rng = new Random(upper ? 3 : 4);
        var x = Random(n, d, 0, rng);
        var factor = Random(d, d, 0, rng);
        for (int i = 0; i < d; i++)
        {
            for (int j = 0; j < d; j++)
            {
                if (upper ? i > j : i < j)
                {
                    factor.Data[i * d + j] = 0;
                }
            }
        }
        var expected = Naive(false, false, n, d, d, 1.0, x.Data, d, factor.Data, d, 0.0, new double[n * d], d);
        var actual = new double[n * d];
        DgemmEngine.Multiply(false, false, n, d, d, 1.0, x.Data, d, factor.Data, d, 0.0, actual, d, threads, DgemmOptions.SkipZeroRowsOfB);
        Tolerance.AssertClose(actual, expected, Atol(d), 1e-13, $"dgemm with a {(upper ? "upper" : "lower")} triangular B, zero rows skipped");
        var dense = new double[n * d];
        DgemmEngine.Multiply(false, false, n, d, d, 1.0, x.Data, d, factor.Data, d, 0.0, dense, d, threads);
        Tolerance.AssertClose(actual, dense, Atol(d), 1e-13, "skipping exact zeros against the dense product");
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, true)]
    public void PackedB_RowBlocks_EqualTheWholeProductBitForBit(bool transA, bool skipZeroRows)
    {
        // The E-step's pattern: B packed once, rows of A multiplied block by block (blocks of any size).
        const int m = 211, n = 83, k = 270;
        var rng = new Random(transA ? 21 : 22);
        var a = transA ? Random(k, m, 2, rng) : Random(m, k, 2, rng);
        var b = Random(k, n, 1, rng);
        var whole = new double[m * n];
        var options = skipZeroRows ? DgemmOptions.SkipZeroRowsOfB : DgemmOptions.None;
        DgemmEngine.Multiply(transA, false, m, n, k, 0.75, a.Data, a.Ld, b.Data, b.Ld, 0.0, whole, n, 2, options);
        Tolerance.AssertClose(whole, Naive(transA, false, m, n, k, 0.75, a.Data, a.Ld, b.Data, b.Ld, 0.0, new double[m * n], n), Atol(k), 1e-13, "dgemm whole");
        var packed = DgemmEngine.Pack(false, b.Data, b.Ld, k, n, skipZeroRows);
        var blocked = new double[m * n];
        foreach (var (r0, rows) in new[] { (0, 50), (50, 1), (51, 100), (151, 60) })
        {
            var aBlock = transA ? a.Data.AsSpan(r0) : a.Data.AsSpan(r0 * a.Ld);
            DgemmEngine.Multiply(transA, rows, aBlock, a.Ld, packed, 0.75, 0.0, blocked.AsSpan(r0 * n), n);
        }
        blocked.Should().Equal(whole, "each element adds the same products in the same order");
    }

    [Fact]
    public void BetaZero_OverwritesNaNInC_AndKZero_OnlyScales()
    {
        var a = new double[] { 1, 2, 3, 4 };
        var b = new double[] { 5, 6, 7, 8 };
        var c = new[] { double.NaN, double.NaN, double.NaN, double.NaN };
        DgemmEngine.Multiply(false, false, 2, 2, 2, 1.0, a, 2, b, 2, 0.0, c, 2, 1);
        c.Should().Equal(19, 22, 43, 50);
        DgemmEngine.Multiply(false, false, 2, 2, 0, 1.0, a, 2, b, 2, 0.5, c, 2, 1);
        c.Should().Equal(9.5, 11, 21.5, 25);
    }

    [Fact]
    public void ShortOperand_IsAClearError()
    {
        var act = () => DgemmEngine.Multiply(false, false, 3, 3, 3, 1.0, new double[8], 3, new double[9], 3, 0.0, new double[9], 3, 1);
        act.Should().Throw<ArgumentException>().WithMessage("*A holds 8 doubles but a 3 x 3 matrix*");
    }
}
