using System.Numerics;
using System.Runtime.InteropServices;
using DenseMatrix = MathNet.Numerics.LinearAlgebra.Double.DenseMatrix;

namespace IlgpuOct.Defense.Mixture;

/// <summary>
/// The host (cpu) implementation of the EM steps in float64, formula for formula as scikit-learn's
/// GaussianMixture. scikit-learn keeps float32 input as float32, but its responsibilities and
/// precisions are float64, so every product with them is float64; the one float32 operation is
/// <c>X * X</c> in the diagonal formulas, reproduced here by squaring in float. This is the
/// reference the kernels are tested against. Work is split by output rows, so results do not
/// depend on the thread count.
/// </summary>
internal static class GaussianMixtureHost
{
    private const int RowBlock = 16;

    /// <summary>log N(x_n | mu_k, Sigma_k) for every point and component, via precision Cholesky factors.</summary>
    public static void EstimateLogGaussianProb(
        ReadOnlySpan<double> x, // (N, D)
        int n,
        int d,
        int k,
        ReadOnlySpan<double> means, // (K, D)
        ReadOnlySpan<double> precisionCholesky, // shape by covariance type
        CovarianceType type,
        Span<double> logProb) // (N, K)
    {
        double[] logDet = LogDetCholesky(precisionCholesky, type, k, d);
        double[] xa = x.ToArray();
        double[] mu = means.ToArray();
        double[] pc = precisionCholesky.ToArray();
        double[] lp = new double[n * k];
        switch (type)
        {
            case CovarianceType.Full:
            case CovarianceType.Tied:
                for (int c = 0; c < k; c++)
                {
                    int offset = type == CovarianceType.Full ? c * d * d : 0;
                    MahalanobisSquared(xa, n, d, mu.AsSpan(c * d, d).ToArray(), pc.AsSpan(offset, d * d).ToArray(), lp, c, k);
                }
                break;
            case CovarianceType.Diagonal:
                DiagonalQuadratic(xa, n, d, k, mu, pc, lp);
                break;
            case CovarianceType.Spherical:
                SphericalQuadratic(xa, n, d, k, mu, pc, lp);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(type));
        }
        double log2Pi = d * Math.Log(2 * Math.PI);
        for (int i = 0; i < n; i++)
        {
            for (int c = 0; c < k; c++)
            {
                logProb[i * k + c] = -0.5 * (log2Pi + lp[i * k + c]) + logDet[c];
            }
        }
    }

    /// <summary>sum_j log diag(L_k): the log-determinant of each precision Cholesky factor.</summary>
    public static double[] LogDetCholesky(ReadOnlySpan<double> precisionCholesky, CovarianceType type, int k, int d)
    {
        var logDet = new double[k];
        for (int c = 0; c < k; c++)
        {
            double sum = 0;
            switch (type)
            {
                case CovarianceType.Full:
                    for (int j = 0; j < d; j++)
                    {
                        sum += Math.Log(precisionCholesky[c * d * d + j * d + j]);
                    }
                    break;
                case CovarianceType.Tied:
                    for (int j = 0; j < d; j++)
                    {
                        sum += Math.Log(precisionCholesky[j * d + j]);
                    }
                    break;
                case CovarianceType.Diagonal:
                    for (int j = 0; j < d; j++)
                    {
                        sum += Math.Log(precisionCholesky[c * d + j]);
                    }
                    break;
                case CovarianceType.Spherical:
                    sum = d * Math.Log(precisionCholesky[c]);
                    break;
            }
            logDet[c] = sum;
        }
        return logDet;
    }

    // ||(x_n - mu) M||^2 for every n into lp[n * stride + column]. M (D, D) is dense in general
    // (upper triangular when computed from covariances, lower from precisions_init), so each row of
    // M is scanned only over its non-zero range.
    private static void MahalanobisSquared(double[] x, int n, int d, double[] mu, double[] m, double[] lp, int column, int stride)
    {
        var (start, end) = NonZeroRanges(m, d);
        int blocks = (n + RowBlock - 1) / RowBlock;
        Parallel.For(0, blocks, () => (new double[RowBlock * d], new double[RowBlock * d]), (b, _, buffers) =>
        {
            var (diff, y) = buffers;
            int r0 = b * RowBlock;
            int rows = Math.Min(RowBlock, n - r0);
            Array.Clear(y);
            for (int r = 0; r < rows; r++)
            {
                for (int j = 0; j < d; j++)
                {
                    diff[r * d + j] = x[(r0 + r) * d + j] - mu[j];
                }
            }
            for (int i = 0; i < d; i++)
            {
                int s = start[i];
                int e = end[i];
                if (e <= s)
                {
                    continue;
                }
                var mRow = m.AsSpan(i * d + s, e - s);
                for (int r = 0; r < rows; r++)
                {
                    Axpy(diff[r * d + i], mRow, y.AsSpan(r * d + s, e - s));
                }
            }
            for (int r = 0; r < rows; r++)
            {
                lp[(r0 + r) * stride + column] = SumOfSquares(y.AsSpan(r * d, d));
            }
            return buffers;
        }, _ => { });
    }

    private static (int[] Start, int[] End) NonZeroRanges(double[] m, int d)
    {
        var start = new int[d];
        var end = new int[d];
        for (int i = 0; i < d; i++)
        {
            int s = 0;
            while (s < d && m[i * d + s] == 0)
            {
                s++;
            }
            int e = d;
            while (e > s && m[i * d + e - 1] == 0)
            {
                e--;
            }
            start[i] = s;
            end[i] = e;
        }
        return (start, end);
    }

    // scikit-learn: sum(means^2 * prec) - 2 X (means * prec)^T + (X * X) prec^T, prec = L^2.
    private static void DiagonalQuadratic(double[] x, int n, int d, int k, double[] mu, double[] pc, double[] lp)
    {
        var prec = new double[k * d];
        var meanPrec = new double[k * d];
        var constant = new double[k];
        for (int c = 0; c < k; c++)
        {
            double sum = 0;
            for (int j = 0; j < d; j++)
            {
                double p = pc[c * d + j] * pc[c * d + j];
                prec[c * d + j] = p;
                meanPrec[c * d + j] = mu[c * d + j] * p;
                sum += mu[c * d + j] * mu[c * d + j] * p;
            }
            constant[c] = sum;
        }
        Parallel.For(0, n, i =>
        {
            var row = x.AsSpan(i * d, d);
            for (int c = 0; c < k; c++)
            {
                double cross = 0;
                double square = 0;
                for (int j = 0; j < d; j++)
                {
                    cross += row[j] * meanPrec[c * d + j];
                    square += SquareAsFloat(row[j]) * prec[c * d + j];
                }
                lp[i * k + c] = constant[c] - 2.0 * cross + square;
            }
        });
    }

    private static void SphericalQuadratic(double[] x, int n, int d, int k, double[] mu, double[] pc, double[] lp)
    {
        var meanNorm = new double[k];
        for (int c = 0; c < k; c++)
        {
            meanNorm[c] = SumOfSquares(mu.AsSpan(c * d, d));
        }
        Parallel.For(0, n, i =>
        {
            var row = x.AsSpan(i * d, d);
            double rowNorm = SumOfSquares(row);
            for (int c = 0; c < k; c++)
            {
                double p = pc[c] * pc[c];
                double cross = 0;
                for (int j = 0; j < d; j++)
                {
                    cross += row[j] * mu[c * d + j];
                }
                lp[i * k + c] = meanNorm[c] * p - 2.0 * cross * p + rowNorm * p;
            }
        });
    }

    // numpy squares float32 input in float32 before the float64 product.
    private static double SquareAsFloat(double value)
    {
        float f = (float)value;
        return f * f;
    }

    /// <summary>
    /// Row-wise logsumexp of the weighted log-probabilities (scipy's: max-shifted) and the log
    /// responsibilities; returns the mean of the per-point log-likelihood (the lower bound).
    /// </summary>
    public static double LogResponsibilities(
        ReadOnlySpan<double> logProb, // (N, K)
        ReadOnlySpan<double> logWeights, // (K)
        int n,
        int k,
        Span<double> logProbNorm, // (N)
        Span<double> logResp) // (N, K)
    {
        double total = 0;
        for (int i = 0; i < n; i++)
        {
            double max = double.NegativeInfinity;
            for (int c = 0; c < k; c++)
            {
                double w = logProb[i * k + c] + logWeights[c];
                logResp[i * k + c] = w;
                max = Math.Max(max, w);
            }
            if (double.IsInfinity(max))
            {
                max = 0; // scipy: a non-finite maximum shifts by zero
            }
            double sum = 0;
            for (int c = 0; c < k; c++)
            {
                sum += Math.Exp(logResp[i * k + c] - max);
            }
            double norm = Math.Log(sum) + max;
            logProbNorm[i] = norm;
            for (int c = 0; c < k; c++)
            {
                logResp[i * k + c] -= norm;
            }
            total += norm;
        }
        return total / n;
    }

    /// <summary>
    /// The M-step: nk = sum of responsibilities + 10 eps, means, covariances with reg_covar on the
    /// diagonal; weights are nk normalised to sum to one.
    /// </summary>
    public static (double[] Weights, double[] Means, double[] Covariances) EstimateParameters(
        ReadOnlySpan<double> x, // (N, D)
        ReadOnlySpan<double> resp, // (N, K)
        int n,
        int d,
        int k,
        double regCovar,
        CovarianceType type)
    {
        double[] xa = x.ToArray();
        double[] ra = resp.ToArray();
        var nk = new double[k];
        for (int i = 0; i < n; i++)
        {
            for (int c = 0; c < k; c++)
            {
                nk[c] += ra[i * k + c];
            }
        }
        for (int c = 0; c < k; c++)
        {
            nk[c] += 10 * Float64Epsilon;
        }
        var means = WeightedColumnSums(xa, ra, n, d, k, square: false);
        for (int c = 0; c < k; c++)
        {
            for (int j = 0; j < d; j++)
            {
                means[c * d + j] /= nk[c];
            }
        }
        double[] covariances = type switch
        {
            CovarianceType.Full => FullCovariances(xa, ra, n, d, k, nk, means, regCovar),
            CovarianceType.Tied => TiedCovariance(xa, n, d, k, nk, means, regCovar),
            CovarianceType.Diagonal => DiagonalCovariances(xa, ra, n, d, k, nk, means, regCovar),
            CovarianceType.Spherical => SphericalVariances(DiagonalCovariances(xa, ra, n, d, k, nk, means, regCovar), d, k),
            _ => throw new ArgumentOutOfRangeException(nameof(type)),
        };
        return (nk, means, covariances);
    }

    // numpy's finfo(float64).eps (not .NET's double.Epsilon, the smallest subnormal).
    private const double Float64Epsilon = 2.220446049250313e-16;

    // resp^T X (K, D) or resp^T (X * X) with the float32 square; parallel over columns.
    private static double[] WeightedColumnSums(double[] x, double[] resp, int n, int d, int k, bool square)
    {
        var result = new double[k * d];
        Parallel.For(0, k, c =>
        {
            var acc = result.AsSpan(c * d, d);
            for (int i = 0; i < n; i++)
            {
                double r = resp[i * k + c];
                var row = x.AsSpan(i * d, d);
                if (square)
                {
                    for (int j = 0; j < d; j++)
                    {
                        acc[j] += r * SquareAsFloat(row[j]);
                    }
                }
                else
                {
                    Axpy(r, row, acc);
                }
            }
        });
        return result;
    }

    // Sigma_k = sum_n r_nk (x_n - mu_k)(x_n - mu_k)^T / nk + reg I, the upper triangle then mirrored.
    private static double[] FullCovariances(double[] x, double[] resp, int n, int d, int k, double[] nk, double[] means, double regCovar)
    {
        var cov = new double[k * d * d];
        var diff = new double[n * d];
        var weighted = new double[n * d];
        for (int c = 0; c < k; c++)
        {
            var mu = means.AsSpan(c * d, d).ToArray();
            Parallel.For(0, n, i =>
            {
                double r = resp[i * k + c];
                for (int j = 0; j < d; j++)
                {
                    double v = x[i * d + j] - mu[j];
                    diff[i * d + j] = v;
                    weighted[i * d + j] = r * v;
                }
            });
            var sigma = new double[d * d];
            WeightedGramUpper(weighted, diff, n, d, sigma);
            for (int i = 0; i < d; i++)
            {
                for (int j = i; j < d; j++)
                {
                    double v = sigma[i * d + j] / nk[c];
                    cov[c * d * d + i * d + j] = v;
                    cov[c * d * d + j * d + i] = v;
                }
                cov[c * d * d + i * d + i] += regCovar;
            }
        }
        return cov;
    }

    // C[i, j>=i] = sum_n a[n, i] b[n, j]; each task owns a band of rows of C and streams all n.
    private static void WeightedGramUpper(double[] a, double[] b, int n, int d, double[] c)
    {
        const int band = 8;
        int bands = (d + band - 1) / band;
        Parallel.For(0, bands, bi =>
        {
            int i0 = bi * band;
            int i1 = Math.Min(d, i0 + band);
            for (int p = 0; p < n; p++)
            {
                var bRow = b.AsSpan(p * d, d);
                for (int i = i0; i < i1; i++)
                {
                    Axpy(a[p * d + i], bRow[i..], c.AsSpan(i * d + i, d - i));
                }
            }
        });
    }

    // scikit-learn: (X^T X - (nk * means^T) means) / sum(nk) + reg I.
    private static double[] TiedCovariance(double[] x, int n, int d, int k, double[] nk, double[] means, double regCovar)
    {
        var gram = new double[d * d];
        WeightedGramUpper(x, x, n, d, gram);
        double total = nk.Sum();
        var cov = new double[d * d];
        for (int i = 0; i < d; i++)
        {
            for (int j = i; j < d; j++)
            {
                double m2 = 0;
                for (int c = 0; c < k; c++)
                {
                    m2 += nk[c] * means[c * d + i] * means[c * d + j];
                }
                double v = (gram[i * d + j] - m2) / total;
                cov[i * d + j] = v;
                cov[j * d + i] = v;
            }
            cov[i * d + i] += regCovar;
        }
        return cov;
    }

    // scikit-learn: resp^T (X * X) / nk - 2 means * (resp^T X / nk) + means^2 + reg.
    private static double[] DiagonalCovariances(double[] x, double[] resp, int n, int d, int k, double[] nk, double[] means, double regCovar)
    {
        var avgX2 = WeightedColumnSums(x, resp, n, d, k, square: true);
        var avgX = WeightedColumnSums(x, resp, n, d, k, square: false);
        var cov = new double[k * d];
        for (int c = 0; c < k; c++)
        {
            for (int j = 0; j < d; j++)
            {
                double m = means[c * d + j];
                cov[c * d + j] = avgX2[c * d + j] / nk[c] - 2 * (m * avgX[c * d + j] / nk[c]) + m * m + regCovar;
            }
        }
        return cov;
    }

    private static double[] SphericalVariances(double[] diagonal, int d, int k)
    {
        var result = new double[k];
        for (int c = 0; c < k; c++)
        {
            result[c] = diagonal.AsSpan(c * d, d).ToArray().Average();
        }
        return result;
    }

    /// <summary>
    /// Precision Cholesky factors from covariances: (chol(Sigma)^-1)^T for full/tied, 1/sqrt for
    /// diagonal/spherical. Fails with scikit-learn's advice when a covariance is not positive definite.
    /// </summary>
    public static double[] PrecisionCholeskyFromCovariances(ReadOnlySpan<double> covariances, CovarianceType type, int k, int d)
    {
        switch (type)
        {
            case CovarianceType.Full:
            case CovarianceType.Tied:
            {
                int count = type == CovarianceType.Full ? k : 1;
                var result = new double[count * d * d];
                for (int c = 0; c < count; c++)
                {
                    double[] lower = CholeskyLower(covariances.Slice(c * d * d, d * d), d);
                    // Solve L Z = I column by column (forward substitution); store Z^T, which is upper.
                    var z = new double[d];
                    for (int col = 0; col < d; col++)
                    {
                        for (int i = col; i < d; i++)
                        {
                            double s = i == col ? 1.0 : 0.0;
                            for (int p = col; p < i; p++)
                            {
                                s -= lower[i * d + p] * z[p];
                            }
                            z[i] = s / lower[i * d + i];
                        }
                        for (int i = 0; i < d; i++)
                        {
                            result[c * d * d + col * d + i] = i >= col ? z[i] : 0.0;
                        }
                    }
                }
                return result;
            }
            case CovarianceType.Diagonal:
            case CovarianceType.Spherical:
            {
                var result = new double[covariances.Length];
                for (int i = 0; i < result.Length; i++)
                {
                    if (!(covariances[i] > 0))
                    {
                        throw new InvalidOperationException(IllDefined);
                    }
                    result[i] = 1.0 / Math.Sqrt(covariances[i]);
                }
                return result;
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(type));
        }
    }

    /// <summary>Precision Cholesky factors from precision matrices (scikit-learn's precisions_init): lower chol(P), or sqrt(P).</summary>
    public static double[] PrecisionCholeskyFromPrecisions(ReadOnlySpan<double> precisions, CovarianceType type, int k, int d)
    {
        switch (type)
        {
            case CovarianceType.Full:
            case CovarianceType.Tied:
            {
                int count = type == CovarianceType.Full ? k : 1;
                var result = new double[count * d * d];
                for (int c = 0; c < count; c++)
                {
                    CholeskyLower(precisions.Slice(c * d * d, d * d), d).CopyTo(result, c * d * d);
                }
                return result;
            }
            default:
            {
                var result = new double[precisions.Length];
                for (int i = 0; i < result.Length; i++)
                {
                    if (!(precisions[i] > 0))
                    {
                        throw new ArgumentException("Start.Precisions must be positive.");
                    }
                    result[i] = Math.Sqrt(precisions[i]);
                }
                return result;
            }
        }
    }

    /// <summary>Covariances (the inverse of P = M M^T) from precision Cholesky factors, for the explicit start.</summary>
    public static double[] CovariancesFromPrecisionCholesky(ReadOnlySpan<double> precisionCholesky, CovarianceType type, int k, int d)
    {
        if (type is CovarianceType.Diagonal or CovarianceType.Spherical)
        {
            var r = new double[precisionCholesky.Length];
            for (int i = 0; i < r.Length; i++)
            {
                r[i] = 1.0 / (precisionCholesky[i] * precisionCholesky[i]);
            }
            return r;
        }
        int count = type == CovarianceType.Full ? k : 1;
        var result = new double[count * d * d];
        for (int c = 0; c < count; c++)
        {
            var m = DenseMatrix.OfArray(To2d(precisionCholesky.Slice(c * d * d, d * d), d));
            var cov = (m * m.Transpose()).Inverse();
            for (int i = 0; i < d; i++)
            {
                for (int j = 0; j < d; j++)
                {
                    result[c * d * d + i * d + j] = cov[i, j];
                }
            }
        }
        return result;
    }

    private static double[,] To2d(ReadOnlySpan<double> flat, int d)
    {
        var result = new double[d, d];
        for (int i = 0; i < d; i++)
        {
            for (int j = 0; j < d; j++)
            {
                result[i, j] = flat[i * d + j];
            }
        }
        return result;
    }

    private const string IllDefined =
        "Fitting the mixture model failed because some components have ill-defined empirical covariance "
        + "(for instance caused by singleton or collapsed samples). Try to decrease the number of components, "
        + "or increase RegCovar.";

    // Cholesky-Banachiewicz on a row-major array (lower factor), so that a non-positive pivot is
    // reported with scikit-learn's advice.
    private static double[] CholeskyLower(ReadOnlySpan<double> a, int d)
    {
        var l = new double[d * d];
        for (int i = 0; i < d; i++)
        {
            for (int j = 0; j <= i; j++)
            {
                double s = a[i * d + j];
                var li = l.AsSpan(i * d, j);
                var lj = l.AsSpan(j * d, j);
                for (int p = 0; p < j; p++)
                {
                    s -= li[p] * lj[p];
                }
                if (i == j)
                {
                    if (!(s > 0))
                    {
                        throw new InvalidOperationException(IllDefined);
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
