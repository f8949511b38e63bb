using System.Numerics;
using System.Runtime.InteropServices;
using IlgpuOct.Kernels.Cpu;

namespace IlgpuOct.Defense.Density;

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
    // (upper triangular when computed from covariances, lower from precisions_init), so each
    // column tile of M is summed only over the rows where it has non-zeros. The product is formed
    // tile by tile in registers (Rows x Tile) and only its squares are kept.
    private static void MahalanobisSquared(double[] x, int n, int d, double[] mu, double[] m, double[] lp, int column, int stride)
    {
        int vc = Vector<double>.Count;
        int tile = 4 * vc;
        int dPad = (d + tile - 1) / tile * tile;
        int tiles = dPad / tile;
        var mPad = new double[d * dPad]; // (D, DPad), zero columns beyond D
        for (int i = 0; i < d; i++)
        {
            Array.Copy(m, i * d, mPad, i * dPad, d);
        }
        var (rowStart, rowEnd) = TileRowRanges(mPad, d, dPad, tile);
        // Rows per task, a multiple of MicroRows: the task's differences (block x D) stay in L2 while
        // each column tile of M (D x Tile) is reused by all of its micro-rows before the next tile.
        const int block = 96;
        int blocks = (n + block - 1) / block;
        Parallel.For(0, blocks, () => new double[block * d], (b, _, diff) =>
        {
            int r0 = b * block;
            int rows = Math.Min(block, n - r0);
            for (int r = 0; r < rows; r++)
            {
                for (int j = 0; j < d; j++)
                {
                    diff[r * d + j] = x[(r0 + r) * d + j] - mu[j];
                }
            }
            Span<double> sums = stackalloc double[block];
            sums.Clear();
            // Tiles outer so one tile of M is read from memory once per task, not once per micro-row;
            // each row still sums its tiles in order t = 0, 1, ..., so the result does not change.
            for (int t = 0; t < tiles; t++)
            {
                for (int r = 0; r < rows; r += MicroRows)
                {
                    int count = Math.Min(MicroRows, rows - r);
                    ProductTileSquares(diff, r, count, d, mPad, dPad, t * tile, rowStart[t], rowEnd[t], sums[r..]);
                }
            }
            for (int r = 0; r < rows; r++)
            {
                lp[(r0 + r) * stride + column] = sums[r];
            }
            return diff;
        }, _ => { });
    }

    private const int MicroRows = 3;

    // sums[r] += sum_j (sum_{i in [i0, i1)} a[(row + r) * d + i] * b[i * ldb + j0 + j])^2 over a tile of 4 vectors.
    private static void ProductTileSquares(double[] a, int row, int count, int d, double[] b, int ldb, int j0, int i0, int i1, Span<double> sums)
    {
        int o0 = row * d;
        int o1 = count > 1 ? (row + 1) * d : o0;
        int o2 = count > 2 ? (row + 2) * d : o0;
        DgemmMicroKernel.MultiplyTile(a, o0, o1, o2, 1, b, ldb, j0, i0, i1, out var t);
        sums[0] += Vector.Sum(t.R00 * t.R00 + t.R01 * t.R01 + t.R02 * t.R02 + t.R03 * t.R03);
        if (count > 1)
        {
            sums[1] += Vector.Sum(t.R10 * t.R10 + t.R11 * t.R11 + t.R12 * t.R12 + t.R13 * t.R13);
        }
        if (count > 2)
        {
            sums[2] += Vector.Sum(t.R20 * t.R20 + t.R21 * t.R21 + t.R22 * t.R22 + t.R23 * t.R23);
        }
    }

    // For each column tile of m (D, ldm): the range of rows [start, end) that holds its non-zeros.
    private static (int[] Start, int[] End) TileRowRanges(double[] m, int d, int ldm, int tile)
    {
        int tiles = ldm / tile;
        var start = new int[tiles];
        var end = new int[tiles];
        for (int t = 0; t < tiles; t++)
        {
            int s = d;
            int e = 0;
            for (int i = 0; i < d; i++)
            {
                var row = m.AsSpan(i * ldm + t * tile, tile);
                if (row.ContainsAnyExcept(0.0))
                {
                    s = Math.Min(s, i);
                    e = i + 1;
                }
            }
            start[t] = s;
            end[t] = Math.Max(e, s);
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
            meanNorm[c] = DenseMath.SumOfSquares(mu.AsSpan(c * d, d));
        }
        Parallel.For(0, n, i =>
        {
            var row = x.AsSpan(i * d, d);
            double rowNorm = DenseMath.SumOfSquares(row);
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
                    DenseMath.Axpy(r, row, acc);
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

    // C[i, j>=i] = sum_n a[n, i] b[n, j] (upper triangle; the lower part of a tile may be filled
    // too). Tiles of MicroRows rows x 4 vectors accumulate in registers over all n; tasks own row bands.
    private static void WeightedGramUpper(double[] a, double[] b, int n, int d, double[] c)
    {
        int vc = Vector<double>.Count;
        int tile = 4 * vc;
        int dPad = (d + tile - 1) / tile * tile;
        var bPad = new double[n * dPad]; // (N, DPad)
        for (int p = 0; p < n; p++)
        {
            Array.Copy(b, p * d, bPad, p * dPad, d);
        }
        // Row bands of C are grouped per task; n is walked in chunks, and within a chunk one column
        // tile of b (chunk x Tile) serves every band of the group while it is in cache.
        const int bandsPerGroup = 8;
        const int chunk = 128;
        int bands = (d + MicroRows - 1) / MicroRows;
        int groups = (bands + bandsPerGroup - 1) / bandsPerGroup;
        Parallel.For(0, groups, group =>
        {
            int firstBand = group * bandsPerGroup;
            int lastBand = Math.Min(bands, firstBand + bandsPerGroup);
            int firstRow = firstBand * MicroRows;
            int tilesFrom = firstRow / tile * tile;
            int width = dPad - tilesFrom;
            var acc = new double[(lastBand - firstBand) * MicroRows * width]; // the group's rows of C from tilesFrom on
            int groupRows = (lastBand - firstBand) * MicroRows;
            int copied = Math.Min(groupRows, d - firstRow);
            // The group's columns of a for one chunk, packed (chunk, groupRows): read in place they
            // are D doubles apart, which for D = 512 is 4 KiB and maps every row to one L1 set.
            var aPack = new double[chunk * groupRows];
            for (int p0 = 0; p0 < n; p0 += chunk)
            {
                int p1 = Math.Min(n, p0 + chunk);
                for (int p = p0; p < p1; p++)
                {
                    Array.Copy(a, p * d + firstRow, aPack, (p - p0) * groupRows, copied);
                }
                // Each element of acc still adds the chunks in order p0 = 0, chunk, ..., so the
                // order of tiles and bands within a chunk does not change the result.
                for (int j0 = tilesFrom; j0 < dPad; j0 += tile)
                {
                    for (int band = firstBand; band < lastBand; band++)
                    {
                        int i0 = band * MicroRows;
                        if (i0 / tile * tile > j0)
                        {
                            break; // this band and the next ones start right of the tile
                        }
                        int count = Math.Min(MicroRows, d - i0);
                        int packedRow = i0 - firstRow - p0 * groupRows; // aPack[(p - p0) * groupRows + i0 - firstRow]
                        GramTile(aPack, packedRow, count, groupRows, bPad, dPad, j0, p0, p1, acc.AsSpan((band - firstBand) * MicroRows * width), width, j0 - tilesFrom);
                    }
                }
            }
            for (int i = firstRow; i < Math.Min(d, lastBand * MicroRows); i++)
            {
                for (int j = i; j < d; j++)
                {
                    c[i * d + j] = acc[(i - firstRow) * width + j - tilesFrom];
                }
            }
        });
    }

    // result[r * ldr + col + j] += sum_{p in [p0, p1)} a[i0 + p * lda + r] * b[p * ldb + j0 + j] for a tile of MicroRows x 4 vectors.
    private static void GramTile(double[] a, int i0, int count, int lda, double[] b, int ldb, int j0, int p0, int p1, Span<double> result, int ldr, int col)
    {
        DgemmMicroKernel.MultiplyTile(a, i0, i0 + (count > 1 ? 1 : 0), i0 + (count > 2 ? 2 : 0), lda, b, ldb, j0, p0, p1, out var t);
        AddRow(result.Slice(col, 4 * Vector<double>.Count), t.R00, t.R01, t.R02, t.R03);
        if (count > 1)
        {
            AddRow(result.Slice(ldr + col, 4 * Vector<double>.Count), t.R10, t.R11, t.R12, t.R13);
        }
        if (count > 2)
        {
            AddRow(result.Slice(2 * ldr + col, 4 * Vector<double>.Count), t.R20, t.R21, t.R22, t.R23);
        }
    }

    private static void AddRow(Span<double> target, Vector<double> v0, Vector<double> v1, Vector<double> v2, Vector<double> v3)
    {
        var t = MemoryMarshal.Cast<double, Vector<double>>(target);
        t[0] += v0;
        t[1] += v1;
        t[2] += v2;
        t[3] += v3;
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
                double[] cov = covariances.ToArray();
                // Components are independent (one task each, results do not depend on threads); the
                // first failing component's error is rethrown as is, not wrapped.
                var errors = new InvalidOperationException?[count];
                Parallel.For(0, count, c =>
                {
                    try
                    {
                        InvertedCholeskyUpper(cov.AsSpan(c * d * d, d * d), d, result.AsSpan(c * d * d, d * d));
                    }
                    catch (InvalidOperationException e)
                    {
                        errors[c] = e;
                    }
                });
                if (Array.Find(errors, e => e is not null) is { } error)
                {
                    throw error;
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

    // result (D, D) = (chol(covariance)^-1)^T, upper triangular.
    private static void InvertedCholeskyUpper(ReadOnlySpan<double> covariance, int d, Span<double> result)
    {
        double[] lower = DenseMath.Cholesky(covariance, d, NotPositiveDefinite);
        // Solve L Z = I column by column (forward substitution); store Z^T, which is upper.
        var z = new double[d];
        for (int col = 0; col < d; col++)
        {
            for (int i = col; i < d; i++)
            {
                double s = (i == col ? 1.0 : 0.0) - DenseMath.Dot(lower.AsSpan(i * d + col, i - col), z.AsSpan(col, i - col));
                z[i] = s / lower[i * d + i];
            }
            for (int i = 0; i < d; i++)
            {
                result[col * d + i] = i >= col ? z[i] : 0.0;
            }
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
                    DenseMath.Cholesky(precisions.Slice(c * d * d, d * d), d, NotPositiveDefinite).CopyTo(result, c * d * d);
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
            // P = M M^T; U with U U^T = P^-1 is what PrecisionCholeskyFromCovariances gives for P.
            var m = precisionCholesky.Slice(c * d * d, d * d).ToArray();
            var p = new double[d * d];
            for (int i = 0; i < d; i++)
            {
                for (int j = 0; j < d; j++)
                {
                    p[i * d + j] = DenseMath.Dot(m.AsSpan(i * d, d), m.AsSpan(j * d, d));
                }
            }
            var u = PrecisionCholeskyFromCovariances(p, CovarianceType.Tied, 1, d);
            for (int i = 0; i < d; i++)
            {
                for (int j = 0; j < d; j++)
                {
                    result[c * d * d + i * d + j] = DenseMath.Dot(u.AsSpan(i * d, d), u.AsSpan(j * d, d));
                }
            }
        }
        return result;
    }

    private const string IllDefined =
        "Fitting the mixture model failed because some components have ill-defined empirical covariance "
        + "(for instance caused by singleton or collapsed samples). Try to decrease the number of components, "
        + "or increase RegCovar.";

    // A non-positive pivot is reported with scikit-learn's advice.
    private static InvalidOperationException NotPositiveDefinite(int pivot, double value) => new(IllDefined);
}
