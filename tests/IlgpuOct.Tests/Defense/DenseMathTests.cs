using FluentAssertions;
using IlgpuOct.Defense.Density;
using IlgpuOct.Tests.Support;
using Xunit;

namespace IlgpuOct.Tests.Defense;

/// <summary>The blocked Cholesky factorisation: L L^T against A across several blocks, only A's lower triangle read, pivot errors, thread counts.</summary>
public sealed class DenseMathTests
{
    // A = B B^T + D I: symmetric positive definite, seeded.
    private static double[] SpdMatrix(int d, int seed)
    {
        var rng = new Random(seed);
        var b = new double[d * d];
        for (int i = 0; i < b.Length; i++)
        {
            b[i] = rng.NextDouble() * 2 - 1;
        }
        var a = new double[d * d];
        for (int i = 0; i < d; i++)
        {
            for (int j = 0; j < d; j++)
            {
                double sum = i == j ? d : 0;
                for (int p = 0; p < d; p++)
                {
                    sum += b[i * d + p] * b[j * d + p];
                }
                a[i * d + j] = sum;
            }
        }
        return a;
    }

    private static Exception Fail(int pivot, double value) => new InvalidOperationException($"pivot {pivot}");

    [Theory]
    [InlineData(1, 1)]
    [InlineData(63, 1)]
    [InlineData(64, 2)]
    [InlineData(150, 1)]
    [InlineData(150, 2)]
    public void Cholesky_ReconstructsA_AndIsLowerTriangular(int d, int threads)
    {
        var a = SpdMatrix(d, d);
        var l = DenseMath.Cholesky(a, d, Fail, threads);
        var product = new double[d * d];
        for (int i = 0; i < d; i++)
        {
            for (int j = 0; j < d; j++)
            {
                l[i * d + j].Should().Match(v => j <= i || v == 0, $"L is lower triangular at ({i}, {j})");
                double sum = 0;
                for (int p = 0; p <= Math.Min(i, j); p++)
                {
                    sum += l[i * d + p] * l[j * d + p];
                }
                product[i * d + j] = sum;
            }
        }
        Tolerance.AssertClose(product, a, 1e-12 * d * d, 1e-12, $"L L^T against A, D = {d}, {threads} threads");
    }

    [Fact]
    public void Cholesky_ReadsOnlyTheLowerTriangle_AndDoesNotDependOnThreads()
    {
        const int d = 130;
        var a = SpdMatrix(d, 7);
        var lowerOnly = (double[])a.Clone();
        for (int i = 0; i < d; i++)
        {
            for (int j = i + 1; j < d; j++)
            {
                lowerOnly[i * d + j] = double.NaN;
            }
        }
        var one = DenseMath.Cholesky(a, d, Fail, 1);
        DenseMath.Cholesky(lowerOnly, d, Fail, 1).Should().Equal(one, "the upper triangle of A is not read");
        DenseMath.Cholesky(a, d, Fail, 2).Should().Equal(one, "1 and 2 threads");
    }

    [Fact]
    public void Cholesky_ReportsTheFirstNonPositivePivot()
    {
        // Identity except a zero pivot at 100 (second block): rows before it factor, 100 fails.
        const int d = 120;
        var a = new double[d * d];
        for (int i = 0; i < d; i++)
        {
            a[i * d + i] = i == 100 ? 0 : 1;
        }
        var act = () => DenseMath.Cholesky(a, d, Fail);
        act.Should().Throw<InvalidOperationException>().WithMessage("pivot 100");
    }
}
