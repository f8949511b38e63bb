using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Operators;
using IlgpuOct.Kernels.Profiling;

namespace IlgpuOct.Defense.Density;

/// <summary>
/// The N-sized EM work for full covariances on an accelerator (cpu-kernels and cuda): the E-step's
/// Mahalanobis term ||(x_n - mu_k) M_k||^2 as a GEMM (N x D by D x D, <see cref="Gemm.Run(Accelerator, bool, bool, int, int, int, float, View{float}, int, View{float}, int, float, View{float}, int)"/>)
/// plus kernels for the centring, the row sums and log-density, the row-wise logsumexp and the
/// responsibilities; the M-step's nk and means as float64 kernel sums and each covariance as a
/// weighted X^T X GEMM. Points, responsibilities and GEMMs are float32. The D x D
/// Cholesky factorisations stay on the host (<see cref="GaussianMixtureHost"/>), which is also the
/// reference these kernels are tested against.
/// </summary>
internal static partial class MixtureKernels
{
    /// <summary>Threads per block of RowLogDensity; its shared array has exactly this size.</summary>
    public const int BlockSize = 64;

    private const int ThreadsPerBlock = 128;

    // ------------------------------------------------------------------ kernels

    /// <summary>diff[n, j] = x[n, j] - mu[j] (grid-stride over N * D).</summary>
    [Kernel]
    private static void CenterRows(KernelContext ctx, View<float> x, View<float> mu, View<float> diff, int n, int d)
    {
        for (int index = ctx.GlobalX; index < n * d; index += ctx.GridStrideX)
        {
            diff[index] = x[index] - mu[index % d];
        }
    }

    /// <summary>
    /// One block per point (grid-stride over points): the block sums y[n, j]^2 over j (y = (x - mu) M,
    /// from the GEMM) and thread 0 writes logProb[n, k] = -0.5 (D ln 2pi + sum) + logDet.
    /// </summary>
    [Kernel]
    private static void RowLogDensity(KernelContext ctx, View<float> y, View<float> logProb, int n, int d, int components, int k, float constant, float logDet)
    {
        var partial = ctx.Shared<float>(BlockSize);
        int t = ctx.ThreadIdx.X;
        for (int row = ctx.BlockIdx.X; row < n; row += ctx.GridDim.X)
        {
            float sum = 0f;
            for (int j = t; j < d; j += BlockSize)
            {
                float v = y[row * d + j];
                sum += v * v;
            }
            float total = BlockReduce.Sum(ctx, sum, partial);
            if (t == 0)
            {
                logProb[row * components + k] = -0.5f * (constant + total) + logDet;
            }
        }
    }

    /// <summary>Per point: logsumexp of logProb + logWeights (max-shifted, as scipy) and resp = exp(w - norm).</summary>
    [Kernel]
    private static void Responsibilities(KernelContext ctx, View<float> logProb, View<float> logWeights, View<float> resp, View<float> logNorm,
        int n, int components)
    {
        for (int row = ctx.GlobalX; row < n; row += ctx.GridStrideX)
        {
            float max = float.NegativeInfinity;
            for (int c = 0; c < components; c++)
            {
                max = MathF.Max(max, logProb[row * components + c] + logWeights[c]);
            }
            if (float.IsInfinity(max))
            {
                max = 0f;
            }
            float sum = 0f;
            for (int c = 0; c < components; c++)
            {
                sum += MathF.Exp(logProb[row * components + c] + logWeights[c] - max);
            }
            float norm = MathF.Log(sum) + max;
            logNorm[row] = norm;
            for (int c = 0; c < components; c++)
            {
                resp[row * components + c] = MathF.Exp(logProb[row * components + c] + logWeights[c] - norm);
            }
        }
    }

    /// <summary>nk[c] = sum_n resp[n, c] + 10 eps (float64), one thread per component.</summary>
    [Kernel]
    private static void ComponentSums(KernelContext ctx, View<float> resp, View<double> nk, int n, int components)
    {
        for (int c = ctx.GlobalX; c < components; c += ctx.GridStrideX)
        {
            double sum = 0.0;
            for (int i = 0; i < n; i++)
            {
                sum += resp[i * components + c];
            }
            nk[c] = sum + 10.0 * 2.220446049250313e-16;
        }
    }

    /// <summary>means[c, j] = sum_n resp[n, c] x[n, j] / nk[c], one thread per (c, j).</summary>
    [Kernel]
    private static void WeightedMeans(KernelContext ctx, View<float> resp, View<float> x, View<double> nk, View<double> means,
        int n, int d, int components)
    {
        for (int index = ctx.GlobalX; index < components * d; index += ctx.GridStrideX)
        {
            int c = index / d;
            int j = index - c * d;
            double sum = 0.0;
            for (int i = 0; i < n; i++)
            {
                sum += (double)resp[i * components + c] * x[i * d + j];
            }
            means[index] = sum / nk[c];
        }
    }

    /// <summary>diff[n, j] = x[n, j] - mu[j] and weighted[n, j] = resp[n, k] diff[n, j], the two GEMM operands of the covariance.</summary>
    [Kernel]
    private static void WeightCenteredRows(KernelContext ctx, View<float> x, View<float> resp, View<double> mu, View<float> diff, View<float> weighted,
        int n, int d, int components, int k)
    {
        for (int index = ctx.GlobalX; index < n * d; index += ctx.GridStrideX)
        {
            int row = index / d;
            float v = (float)(x[index] - mu[index - row * d]);
            diff[index] = v;
            weighted[index] = resp[row * components + k] * v;
        }
    }

    /// <summary>cov = gram / nk[k] + reg on the diagonal (float64), from the GEMM's weighted Gram (D, D).</summary>
    [Kernel]
    private static void FinishCovariance(KernelContext ctx, View<float> gram, View<double> nk, View<double> cov, int d, int k, double reg)
    {
        for (int index = ctx.GlobalX; index < d * d; index += ctx.GridStrideX)
        {
            int a = index / d;
            int b = index - a * d;
            cov[index] = gram[index] / nk[k] + (a == b ? reg : 0.0);
        }
    }

    // ------------------------------------------------------------------ dispatchers

    /// <summary>
    /// logProb[:, k] (N, K) for component k: diff = X - mu (kernel), y = diff M (GEMM, N x D by
    /// D x D), then the row sums of squares (kernel). mu (D), m (D, D); diff and y are (N, D) scratch.
    /// </summary>
    public static void LogGaussian(Accelerator accelerator, View<float> x, View<float> mu, View<float> m, View<float> diff, View<float> y, View<float> logProb,
        int n, int d, int components, int k, float logDet)
    {
        using var profile = OperatorScope.Enter(accelerator, "MixtureKernels.LogGaussian", LogGaussianCost(n, d));
        Center(accelerator, x, mu, diff, n, d);
        Gemm.Run(accelerator, false, false, n, d, d, 1f, diff, d, m, d, 0f, y, d);
        float constant = (float)(d * Math.Log(2 * Math.PI));
        RowLogDensityKernel.Launch(accelerator, RowConfig(n), y, logProb, n, d, components, k, constant, logDet);
    }

    /// <summary>diff (N, D) = x (N, D) - mu (D) on every row.</summary>
    public static void Center(Accelerator accelerator, View<float> x, View<float> mu, View<float> diff, int n, int d) =>
        CenterRowsKernel.Launch(accelerator, Config(n * d), x, mu, diff, n, d);

    /// <summary>resp (N, K) and logNorm (N) from logProb (N, K) and logWeights (K).</summary>
    public static void Responsibilities(Accelerator accelerator, View<float> logProb, View<float> logWeights, View<float> resp, View<float> logNorm, int n, int components)
    {
        using var profile = OperatorScope.Enter(accelerator, "MixtureKernels.Responsibilities", OperatorCost.Elementwise((long)n * components, 6, reads: 1, writes: 1));
        ResponsibilitiesKernel.Launch(accelerator, Config(n), logProb, logWeights, resp, logNorm, n, components);
    }

    /// <summary>
    /// nk (K) and means (K, D) in float64 (kernels), then per component the covariance (K, D, D):
    /// weighted = resp_k * (X - mu_k) (kernel), gram = weighted^T (X - mu_k) (GEMM, D x N by N x D),
    /// cov = gram / nk + reg I (kernel). diff and weighted are (N, D) scratch, gram (D, D).
    /// </summary>
    public static void WeightedStatistics(Accelerator accelerator, View<float> resp, View<float> x, View<double> nk, View<double> means, View<double> covariances,
        View<float> diff, View<float> weighted, View<float> gram, int n, int d, int components, double reg)
    {
        using var profile = OperatorScope.Enter(accelerator, "MixtureKernels.WeightedStatistics", WeightedStatisticsCost(n, d, components));
        ComponentSumsKernel.Launch(accelerator, Config(components), resp, nk, n, components);
        WeightedMeansKernel.Launch(accelerator, Config(components * d), resp, x, nk, means, n, d, components);
        for (int k = 0; k < components; k++)
        {
            WeightCenteredRowsKernel.Launch(accelerator, Config(n * d), x, resp, means.Slice(k * d, d), diff, weighted, n, d, components, k);
            Gemm.Run(accelerator, true, false, d, d, n, 1f, weighted, d, diff, d, 0f, gram, d);
            FinishCovarianceKernel.Launch(accelerator, Config(d * d), gram, nk, covariances.Slice(k * d * d, d * d), d, k, reg);
        }
    }

    /// <summary>Cost model of LogGaussian's own kernels (its GEMM has its own): centring n d subtractions (reads x, writes diff), row sums of squares 2 n d (reads y).</summary>
    public static OperatorCost LogGaussianCost(int n, int d) => new(3.0 * n * d, 4.0 * 3 * n * d);

    /// <summary>Cost model of WeightedStatistics' own kernels: nk and means (2 n d K), weighting rows per component (2 n d K, reads x and resp, writes diff and weighted), finishing D x D per component.</summary>
    public static OperatorCost WeightedStatisticsCost(int n, int d, int components) =>
        new(4.0 * n * d * components + 2.0 * d * d * components, 4.0 * ((double)n * components + (double)n * d + 3.0 * n * d * components + 2.0 * d * d * components));

    private static LaunchConfig Config(int count) => LaunchConfig.For1D(Math.Min(count, 65535 * ThreadsPerBlock), ThreadsPerBlock);

    /// <summary>One block per row (grid-strided past 65535 rows).</summary>
    private static LaunchConfig RowConfig(int n) => new(new Dim3(Math.Min(n, 65535)), new Dim3(BlockSize));

    /// <summary>UAD's mixtures: 4000 penultimate features of 512 dimensions, 4 components.</summary>
    [LaunchShapes]
    private static IEnumerable<LaunchShape> LaunchShapes()
    {
        const int n = 4000, d = 512, k = 4;
        const string fit = "EM n=4000 d=512 k=4";
        yield return new LaunchShape(CenterRowsKernel.Definition, fit, Config(n * d));
        yield return new LaunchShape(RowLogDensityKernel.Definition, fit, RowConfig(n));
        yield return new LaunchShape(ResponsibilitiesKernel.Definition, fit, Config(n));
        yield return new LaunchShape(ComponentSumsKernel.Definition, fit, Config(k));
        yield return new LaunchShape(WeightedMeansKernel.Definition, fit, Config(k * d));
        yield return new LaunchShape(WeightCenteredRowsKernel.Definition, fit, Config(n * d));
        yield return new LaunchShape(FinishCovarianceKernel.Definition, fit, Config(d * d));
    }

    // ------------------------------------------------------------------ self-tests

    [SelfTests]
    private static IEnumerable<SelfTestCase> SelfTests()
    {
        foreach (var (n, d, k) in new[] { (37, 5, 3), (200, 24, 4) })
        {
            string shape = $"n={n} d={d} k={k}";
            yield return new SelfTestCase("MixtureKernels.RowLogDensity", shape, (acc, seed) => CheckEStep(acc, seed, n, d, k).LogProb);
            yield return new SelfTestCase("MixtureKernels.Responsibilities", shape, (acc, seed) => CheckEStep(acc, seed, n, d, k).Resp);
            yield return new SelfTestCase("MixtureKernels.FinishCovariance", shape, (acc, seed) => CheckMStep(acc, seed, n, d, k));
        }
    }

    /// <summary>A seeded random problem: points (N, D), means (K, D), upper-triangular factors (K, D, D), weights (K).</summary>
    internal static (float[] X, double[] Means, double[] Factors, double[] Weights) RandomProblem(int seed, int n, int d, int k)
    {
        var random = new Random(seed);
        var x = new float[n * d];
        for (int i = 0; i < x.Length; i++)
        {
            x[i] = (float)(random.NextDouble() * 4 - 2);
        }
        var means = new double[k * d];
        for (int i = 0; i < means.Length; i++)
        {
            means[i] = (float)(random.NextDouble() * 2 - 1);
        }
        var factors = new double[k * d * d];
        for (int c = 0; c < k; c++)
        {
            for (int i = 0; i < d; i++)
            {
                factors[c * d * d + i * d + i] = (float)(0.5 + random.NextDouble());
                for (int j = i + 1; j < d; j++)
                {
                    factors[c * d * d + i * d + j] = (float)(0.3 * (random.NextDouble() - 0.5));
                }
            }
        }
        var weights = new double[k];
        for (int c = 0; c < k; c++)
        {
            weights[c] = 1.0 + c;
        }
        double total = weights.Sum();
        return (x, means, factors, Array.ConvertAll(weights, w => w / total));
    }

    internal static (SelfTestResult LogProb, SelfTestResult Resp) CheckEStep(Accelerator accelerator, int seed, int n, int d, int k)
    {
        var (x, means, factors, weights) = RandomProblem(seed, n, d, k);
        var xd = Array.ConvertAll(x, v => (double)v);
        var expectedLogProb = new double[n * k];
        GaussianMixtureHost.EstimateLogGaussianProb(xd, n, d, k, means, factors, CovarianceType.Full, expectedLogProb);
        var expectedNorm = new double[n];
        var expectedLogResp = new double[n * k];
        GaussianMixtureHost.LogResponsibilities(expectedLogProb, Array.ConvertAll(weights, Math.Log), n, k, expectedNorm, expectedLogResp);

        using var engine = new KernelEmEngine(accelerator, x, n, d, k, 0.0);
        engine.EStep(weights, means, factors);
        var (logProb, resp) = engine.DownloadEStep();
        double logProbError = MaxRelative(logProb, expectedLogProb);
        double respError = 0;
        for (int i = 0; i < resp.Length; i++)
        {
            respError = Math.Max(respError, Math.Abs(resp[i] - Math.Exp(expectedLogResp[i])));
        }
        // float32 sums of d products: relative error ~ d * 2^-24 of the log-density's scale
        return (new SelfTestResult(logProbError, 1e-6 * (4 + d)), new SelfTestResult(respError, 1e-5 * (4 + d)));
    }

    internal static SelfTestResult CheckMStep(Accelerator accelerator, int seed, int n, int d, int k)
    {
        var (x, means, factors, weights) = RandomProblem(seed, n, d, k);
        using var engine = new KernelEmEngine(accelerator, x, n, d, k, 1e-6);
        engine.EStep(weights, means, factors);
        var (_, resp) = engine.DownloadEStep();
        var (nk, mu, cov) = engine.MStep();
        // The reference gets the kernel's own float32 responsibilities, so only the sums are compared.
        var (expectedNk, expectedMu, expectedCov) = GaussianMixtureHost.EstimateParameters(
            Array.ConvertAll(x, v => (double)v), Array.ConvertAll(resp, v => (double)v), n, d, k, 1e-6, CovarianceType.Full);
        double error = Math.Max(MaxRelative(nk, expectedNk), Math.Max(MaxRelative(mu, expectedMu), MaxRelative(cov, expectedCov)));
        // nk and means are float64 sums; the covariance is a float32 GEMM over n points.
        return new SelfTestResult(error, 1e-6 * Math.Sqrt(n));
    }

    // max |a - e| / (1 + |e|)
    private static double MaxRelative<TA>(TA[] actual, double[] expected) where TA : unmanaged, IConvertible
    {
        if (actual.Length != expected.Length)
        {
            return double.PositiveInfinity;
        }
        double max = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            double a = actual[i].ToDouble(System.Globalization.CultureInfo.InvariantCulture);
            double diff = Math.Abs(a - expected[i]) / (1 + Math.Abs(expected[i]));
            if (double.IsNaN(diff))
            {
                return double.PositiveInfinity;
            }
            max = Math.Max(max, diff);
        }
        return max;
    }
}
