using System.Numerics;
using System.Runtime.InteropServices;
using IlgpuOct.Kernels.Cpu;

namespace IlgpuOct.Defense.Density;

/// <summary>Small dense linear algebra in float64 (row-major).</summary>
public static class DenseMath
{
    /// <summary>
    /// Lower Cholesky factor L of a symmetric positive-definite A (D, D), row-major, from A's lower triangle;
    /// a non-positive pivot throws <paramref name="notPositiveDefinite"/>(pivot index, pivot value), which
    /// carries the caller's advice. Right-looking and blocked: each block of <see cref="CholeskyBlock"/>
    /// columns is factored with vectorised dot products (Cholesky-Banachiewicz), then the trailing matrix
    /// is updated by one float64 GEMM (upper triangle of the symmetric update), where nearly all of the
    /// D^3 / 3 multiply-adds run. The result does not depend on <paramref name="maxThreads"/>.
    /// </summary>
    public static double[] Cholesky(ReadOnlySpan<double> a, int d, Func<int, double, Exception> notPositiveDefinite, int maxThreads = 1)
    {
        ArgumentNullException.ThrowIfNull(notPositiveDefinite);
        var l = new double[d * d];
        // w[j, i] (j <= i) = a[i, j] minus the updates of the blocks factored so far (the upper triangle, which the GEMM updates).
        var w = new double[d * d];
        for (int i = 0; i < d; i++)
        {
            for (int j = 0; j <= i; j++)
            {
                w[j * d + i] = a[i * d + j];
            }
        }
        for (int j0 = 0; j0 < d; j0 += CholeskyBlock)
        {
            int j1 = Math.Min(d, j0 + CholeskyBlock);
            for (int i = j0; i < d; i++)
            {
                int last = Math.Min(i, j1 - 1);
                for (int j = j0; j <= last; j++)
                {
                    double s = w[j * d + i] - Dot(l.AsSpan(i * d + j0, j - j0), l.AsSpan(j * d + j0, j - j0));
                    if (i == j)
                    {
                        if (!(s > 0))
                        {
                            throw notPositiveDefinite(i, s);
                        }
                        l[i * d + i] = Math.Sqrt(s);
                    }
                    else
                    {
                        l[i * d + j] = s / l[j * d + j];
                    }
                }
            }
            if (j1 < d)
            {
                // W22 -= L21 L21^T over the rows and columns after the block.
                int m = d - j1;
                var panel = l.AsSpan(j1 * d + j0);
                DgemmEngine.Multiply(transA: false, transB: true, m, m, j1 - j0, -1.0, panel, d, panel, d, 1.0, w.AsSpan(j1 * d + j1), d,
                    maxThreads, DgemmOptions.UpperTriangleOfC);
            }
        }
        return l;
    }

    /// <summary>Columns per block of <see cref="Cholesky"/>: the GEMM's depth.</summary>
    public const int CholeskyBlock = 64;

    /// <summary>y = L^-1 y in place.</summary>
    public static void SolveLower(double[] l, int d, Span<double> y)
    {
        for (int i = 0; i < d; i++)
        {
            double s = y[i];
            for (int k = 0; k < i; k++)
            {
                s -= l[i * d + k] * y[k];
            }
            y[i] = s / l[i * d + i];
        }
    }

    /// <summary>y = L^-T y in place.</summary>
    public static void SolveUpperTransposed(double[] l, int d, Span<double> y)
    {
        for (int i = d - 1; i >= 0; i--)
        {
            double s = y[i];
            for (int k = i + 1; k < d; k++)
            {
                s -= l[k * d + i] * y[k];
            }
            y[i] = s / l[i * d + i];
        }
    }

    /// <summary>y += a * x, vectorised.</summary>
    internal static void Axpy(double a, ReadOnlySpan<double> x, Span<double> y)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated && x.Length >= Vector<double>.Count)
        {
            var va = new Vector<double>(a);
            var xv = MemoryMarshal.Cast<double, Vector<double>>(x);
            var yv = MemoryMarshal.Cast<double, Vector<double>>(y);
            for (int v = 0; v < xv.Length; v++)
            {
                yv[v] += va * xv[v];
            }
            i = xv.Length * Vector<double>.Count;
        }
        for (; i < x.Length; i++)
        {
            y[i] += a * x[i];
        }
    }

    internal static double Dot(ReadOnlySpan<double> x, ReadOnlySpan<double> y)
    {
        int i = 0;
        double sum = 0;
        if (Vector.IsHardwareAccelerated && x.Length >= Vector<double>.Count)
        {
            var xv = MemoryMarshal.Cast<double, Vector<double>>(x);
            var yv = MemoryMarshal.Cast<double, Vector<double>>(y[..x.Length]);
            var acc = Vector<double>.Zero;
            for (int v = 0; v < xv.Length; v++)
            {
                acc = Vector.FusedMultiplyAdd(xv[v], yv[v], acc);
            }
            sum = Vector.Sum(acc);
            i = xv.Length * Vector<double>.Count;
        }
        for (; i < x.Length; i++)
        {
            sum += x[i] * y[i];
        }
        return sum;
    }

    internal static double SumOfSquares(ReadOnlySpan<double> x)
    {
        double sum = 0;
        for (int i = 0; i < x.Length; i++)
        {
            sum += x[i] * x[i];
        }
        return sum;
    }
}
