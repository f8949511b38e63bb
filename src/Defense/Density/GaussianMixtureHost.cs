using System.Numerics.Tensors;
using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Cpu;
using IlgpuOct.Kernels.Operators;
using IlgpuOct.Kernels.Profiling;

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
    /// <summary>A profiler scope on <paramref name="accelerator"/> (none without one): the host steps show in <c>profile gmm --device cpu</c>.</summary>
    public static OperatorScope Scope(Accelerator? accelerator, string op, OperatorCost? cost) =>
        accelerator is null ? default : OperatorScope.Enter(accelerator, op, cost);

    /// <summary>
    /// Useful FLOPs and bytes of the E-step: X M_c - mu_c M_c with triangular M (D (D + 1) per point and
    /// factor) and the squared norms; full and tied covariances only (the others are a few passes over X).
    /// </summary>
    public static OperatorCost? EStepCost(int n, int d, int k, CovarianceType type) => type switch
    {
        CovarianceType.Full => new((double)k * n * d * (d + 1) + 3.0 * n * d * k, 8.0 * ((double)n * d + (double)k * d * d + 2.0 * n * k)),
        CovarianceType.Tied => new((double)n * d * (d + 1) + 3.0 * n * d * k, 8.0 * ((double)n * d + (double)d * d + 2.0 * n * k)),
        _ => null,
    };

    /// <summary>Useful FLOPs and bytes of the M-step: per component the upper triangle of the weighted Gram matrix (N D (D + 1)) and the centring.</summary>
    public static OperatorCost? MStepCost(int n, int d, int k, CovarianceType type) => type switch
    {
        CovarianceType.Full => new((double)k * n * d * (d + 1) + 5.0 * n * d * k, 8.0 * ((double)n * d * (1 + 3.0 * k) + (double)k * d * d)),
        CovarianceType.Tied => new((double)n * d * (d + 1) + 2.0 * n * d * k, 8.0 * ((double)n * d + (double)d * d)),
        _ => null,
    };

    /// <summary>FLOPs of the precision factors: Cholesky (D^3 / 3 multiply-adds) and triangular inverse (D^3 / 6) per factor.</summary>
    public static OperatorCost? PrecisionCholeskyCost(int d, int k, CovarianceType type) => type switch
    {
        CovarianceType.Full => new(k * (double)d * d * d, 16.0 * k * d * d),
        CovarianceType.Tied => new((double)d * d * d, 16.0 * d * d),
        _ => null,
    };

    /// <summary>log N(x_n | mu_k, Sigma_k) for every point and component, via precision Cholesky factors.</summary>
    public static void EstimateLogGaussianProb(
        double[] x, // (N, D)
        int n,
        int d,
        int k,
        ReadOnlySpan<double> means, // (K, D)
        ReadOnlySpan<double> precisionCholesky, // shape by covariance type
        CovarianceType type,
        Span<double> logProb) // (N, K)
    {
        double[] logDet = LogDetCholesky(precisionCholesky, type, k, d);
        double[] xa = x;
        double[] mu = means.ToArray();
        double[] pc = precisionCholesky.ToArray();
        double[] lp = new double[n * k];
        switch (type)
        {
            case CovarianceType.Full:
            case CovarianceType.Tied:
                MahalanobisSquared(xa, n, d, k, mu, pc, type == CovarianceType.Full ? k : 1, lp);
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

    // scikit-learn's y = X M_c - mu_c M_c and ||y||^2 for every point n and component c into lp (N, K),
    // with M_c = factors[f(c)] (D, D): f(c) = c for full covariances, 0 for tied (one shared factor).
    // One packed GEMM against the factors side by side, B = [M_0 | M_1 | ...] (D, F D), row block by row
    // block: X is packed once per block for every component and the block of y stays in cache. M is
    // triangular in practice (upper from covariances, lower from precisions_init), and the zero rows at
    // either end of each B micro-panel are skipped, so that costs half a dense product.
    private static void MahalanobisSquared(double[] x, int n, int d, int k, double[] means, double[] factors, int factorCount, double[] lp)
    {
        int width = factorCount * d;
        var stacked = new double[d * width]; // (D, F D)
        for (int f = 0; f < factorCount; f++)
        {
            for (int i = 0; i < d; i++)
            {
                Array.Copy(factors, f * d * d + i * d, stacked, i * width + f * d, d);
            }
        }
        var packed = DgemmEngine.Pack(transB: false, stacked, width, d, width, skipZeroRows: true);
        var meanProducts = new double[k * width]; // (K, F D): row c holds mu_c M_f for every f
        DgemmEngine.Multiply(transA: false, k, means, d, packed, 1.0, 0.0, meanProducts, width);
        // Rows per task: one MC block of the GEMM (the result does not depend on the split).
        const int block = DgemmEngine.Mc;
        int blocks = (n + block - 1) / block;
        var options = new ParallelOptions { MaxDegreeOfParallelism = Gemm.CpuMaxThreads };
        Parallel.For(0, blocks, options, () => (new double[block * width], new double[d]), (b, _, buffers) =>
        {
            var (y, centred) = buffers; // (block, F D), (D)
            int r0 = b * block;
            int rows = Math.Min(block, n - r0);
            DgemmEngine.Multiply(transA: false, rows, x.AsSpan(r0 * d, rows * d), d, packed, 1.0, 0.0, y, width);
            for (int r = 0; r < rows; r++)
            {
                for (int c = 0; c < k; c++)
                {
                    int f = factorCount == 1 ? 0 : c;
                    TensorPrimitives.Subtract(y.AsSpan(r * width + f * d, d), meanProducts.AsSpan(c * width + f * d, d), centred);
                    lp[(r0 + r) * k + c] = TensorPrimitives.SumOfSquares<double>(centred);
                }
            }
            return buffers;
        }, _ => { });
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
        double[] x, // (N, D)
        double[] resp, // (N, K)
        int n,
        int d,
        int k,
        double regCovar,
        CovarianceType type)
    {
        double[] xa = x;
        double[] ra = resp;
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
        var means = WeightedColumnSums(xa, ra, n, d, k);
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

    // resp^T X (K, D).
    private static double[] WeightedColumnSums(double[] x, double[] resp, int n, int d, int k)
    {
        var result = new double[k * d];
        DgemmEngine.Multiply(transA: true, transB: false, k, d, n, 1.0, resp, k, x, d, 0.0, result, d, Gemm.CpuMaxThreads);
        return result;
    }

    // resp^T (X * X) (K, D) with numpy's float32 square; parallel over components.
    private static double[] WeightedSquareSums(double[] x, double[] resp, int n, int d, int k)
    {
        var result = new double[k * d];
        Parallel.For(0, k, new ParallelOptions { MaxDegreeOfParallelism = Gemm.CpuMaxThreads }, c =>
        {
            var acc = result.AsSpan(c * d, d);
            for (int i = 0; i < n; i++)
            {
                double r = resp[i * k + c];
                for (int j = 0; j < d; j++)
                {
                    acc[j] += r * SquareAsFloat(x[i * d + j]);
                }
            }
        });
        return result;
    }

    // Sigma_k = sum_n r_nk (x_n - mu_k)(x_n - mu_k)^T / nk + reg I, the upper triangle then mirrored.
    // The points are split into chunks that depend on N and D only, never on the thread count: one task
    // centres and weights its chunk's rows (they stay in cache for the GEMM that packs them right after)
    // and forms the chunk's Gram matrix on its own thread; the partial Gram matrices are added in chunk
    // order. One Parallel.For per component instead of a barrier per KC slice.
    private static double[] FullCovariances(double[] x, double[] resp, int n, int d, int k, double[] nk, double[] means, double regCovar)
    {
        var cov = new double[k * d * d];
        int chunks = GramChunks(n, d);
        int chunkRows = (n + chunks - 1) / chunks;
        var partial = new double[chunks][];
        int threads = Gemm.CpuMaxThreads;
        var options = new ParallelOptions { MaxDegreeOfParallelism = threads };
        for (int c = 0; c < k; c++)
        {
            int component = c;
            Parallel.For(0, chunks, options, () => (new double[chunkRows * d], new double[chunkRows * d]), (q, _, buffers) =>
            {
                var (diff, weighted) = buffers; // (chunkRows, D) each
                int p0 = q * chunkRows;
                int rows = Math.Min(chunkRows, n - p0);
                var mu = means.AsSpan(component * d, d);
                for (int i = 0; i < rows; i++)
                {
                    var centred = diff.AsSpan(i * d, d);
                    TensorPrimitives.Subtract(x.AsSpan((p0 + i) * d, d), mu, centred);
                    TensorPrimitives.Multiply(centred, resp[(p0 + i) * k + component], weighted.AsSpan(i * d, d));
                }
                partial[q] ??= new double[d * d];
                // sum_n (r_n diff_n) diff_n^T: only the upper triangle (it is symmetric).
                DgemmEngine.Multiply(transA: true, transB: false, d, d, rows, 1.0, weighted, d, diff, d, 0.0, partial[q], d,
                    chunks == 1 ? threads : 1, DgemmOptions.UpperTriangleOfC);
                return buffers;
            }, _ => { });
            for (int i = 0; i < d; i++)
            {
                // Row i from the diagonal on: the chunks' sums in chunk order, over nk.
                var row = cov.AsSpan(c * d * d + i * d + i, d - i);
                partial[0].AsSpan(i * d + i, d - i).CopyTo(row);
                for (int q = 1; q < chunks; q++)
                {
                    TensorPrimitives.Add(row, partial[q].AsSpan(i * d + i, d - i), row);
                }
                TensorPrimitives.Divide(row, nk[c], row);
                for (int j = i + 1; j < d; j++)
                {
                    cov[c * d * d + j * d + i] = row[j - i];
                }
                row[0] += regCovar;
            }
        }
        return cov;
    }

    // Chunks of the Gram's sum over points: about 512 points each (two KC slices), at most 8, and at most
    // 64 MiB of partial D x D matrices in all.
    private static int GramChunks(int n, int d)
    {
        long budget = Math.Max(1, (64L << 20) / (8L * d * d));
        return (int)Math.Clamp(Math.Min((n + 511L) / 512, budget), 1, 8);
    }

    // scikit-learn: (X^T X - (nk * means^T) means) / sum(nk) + reg I.
    private static double[] TiedCovariance(double[] x, int n, int d, int k, double[] nk, double[] means, double regCovar)
    {
        var gram = new double[d * d];
        DgemmEngine.Multiply(transA: true, transB: false, d, d, n, 1.0, x, d, x, d, 0.0, gram, d, Gemm.CpuMaxThreads, DgemmOptions.UpperTriangleOfC);
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
        var avgX2 = WeightedSquareSums(x, resp, n, d, k);
        var avgX = WeightedColumnSums(x, resp, n, d, k);
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
                        InvertedCholeskyUpper(cov.AsSpan(c * d * d, d * d), d, result.AsSpan(c * d * d, d * d), count == 1 ? Gemm.CpuMaxThreads : 1);
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
    private static void InvertedCholeskyUpper(ReadOnlySpan<double> covariance, int d, Span<double> result, int maxThreads)
    {
        double[] lower = DenseMath.Cholesky(covariance, d, NotPositiveDefinite, maxThreads);
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
            DgemmEngine.Multiply(transA: false, transB: true, d, d, d, 1.0, m, d, m, d, 0.0, p, d, Gemm.CpuMaxThreads);
            var u = PrecisionCholeskyFromCovariances(p, CovarianceType.Tied, 1, d);
            DgemmEngine.Multiply(transA: false, transB: true, d, d, d, 1.0, u, d, u, d, 0.0, result.AsSpan(c * d * d, d * d), d, Gemm.CpuMaxThreads);
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
