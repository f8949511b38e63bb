using System.Numerics;
using System.Runtime.InteropServices;

namespace IlgpuOct.Defense.Density;

/// <summary>Small dense linear algebra in float64 (row-major).</summary>
public static class DenseMath
{
    /// <summary>
    /// Lower Cholesky factor L of a symmetric positive-definite A (D, D), row-major
    /// (Cholesky-Banachiewicz, vectorised dot products); a non-positive pivot throws
    /// <paramref name="notPositiveDefinite"/>(pivot index, pivot value), which carries the caller's advice.
    /// </summary>
    public static double[] Cholesky(ReadOnlySpan<double> a, int d, Func<int, double, Exception> notPositiveDefinite)
    {
        ArgumentNullException.ThrowIfNull(notPositiveDefinite);
        var l = new double[d * d];
        for (int i = 0; i < d; i++)
        {
            for (int j = 0; j <= i; j++)
            {
                double s = a[i * d + j] - Dot(l.AsSpan(i * d, j), l.AsSpan(j * d, j));
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
        return l;
    }

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

    /// <summary>sum_i (x_i - y_i)^2, vectorised.</summary>
    internal static double SquaredDistance(ReadOnlySpan<double> x, ReadOnlySpan<double> y)
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
                var e = xv[v] - yv[v];
                acc = Vector.FusedMultiplyAdd(e, e, acc);
            }
            sum = Vector.Sum(acc);
            i = xv.Length * Vector<double>.Count;
        }
        for (; i < x.Length; i++)
        {
            double e = x[i] - y[i];
            sum += e * e;
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
