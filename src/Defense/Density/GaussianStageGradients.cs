using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Operators;
using IlgpuOct.Kernels.Profiling;
using IlgpuOct.Nn;

namespace IlgpuOct.Defense.Density;

/// <summary>
/// The gradients of the adaptive attacks' feature scores with respect to the pooled stage features, on
/// the device. Two kinds of class density:
/// <list type="bullet">
/// <item>Gaussian-mixture scores (<see cref="GmmNearestComponent"/>, HFC; <see cref="GmmLogDensity"/>, UAD-PGD;
/// <see cref="GaussianQuadraticDensity"/>, Mahalanobis, as a one-component mixture). Per component k:
/// y_ck = (X - mu_ck) M_ck and log pi_k + log N_k with <see cref="MixtureKernels.LogGaussian"/> (its GEMM);
/// each row's component weights (one-hot at the most likely component, or the responsibilities from
/// <see cref="MixtureKernels.Responsibilities"/>); then d score / dX = scale sum_k w_k y_ck M_ck^T over the
/// rows whose density class is c, one GEMM per (c, k).</item>
/// <item>Gaussian kernel densities (<see cref="KernelDensity"/>, KDE-PGD) over M centres P with bandwidth h:
/// d log kde / dx = sum_p w_p (p - x) / h^2 with w = softmax_p(-||x - p||^2 / 2h^2) = softmax_p(x.p / h^2 - ||p||^2 / 2h^2)
/// (||x||^2 is the same for every p; rows and centres are taken relative to the centres' mean). X P^T / h^2 is a GEMM, the softmax is
/// <see cref="MixtureKernels.Responsibilities"/> with log weights -||p||^2 / 2h^2, and sum_p w_p p a second GEMM.</item>
/// </list>
/// Each class adds its rows' gradient into the stage gradient (rows of other classes enter as zeros). The host
/// <see cref="IFeatureDensity.ScoreAndGradient"/> (float64) is the reference and the cpu engine's path.
/// </summary>
public sealed partial class GaussianStageGradients : IDisposable
{
    private const int ThreadsPerBlock = 128;

    private readonly Accelerator _accelerator;
    private readonly Stage?[] _stages; // [stage], null where unused
    private readonly Tensor?[] _gradients; // [stage] (N, D_s)
    private DeviceBuffer<float>? _diff; // (N, D) centred rows, scratch of LogGaussian
    private DeviceBuffer<float>? _y; // (K, N, D) whitened rows of one class's components
    private DeviceBuffer<float>? _logProb; // (N, K) log pi_k + log N_k, or (N, M) x.p / h^2 of a kernel density
    private DeviceBuffer<float>? _weights; // (N, K) one-hot or responsibilities, or (N, M) kernel softmax weights
    private DeviceBuffer<float>? _logNorm; // (N) logsumexp (unused by the gradient)
    private DeviceBuffer<float>? _rowWeights; // (N) scale / h^2 on the rows of the kernel density's class, zero elsewhere
    private DeviceBuffer<float>? _scaled; // (N, D) w_k y_ck (or -w x) on the rows of class c, zero elsewhere
    private int _rows; // N the scratch holds

    private GaussianStageGradients(Accelerator accelerator, Stage?[] stages)
    {
        _accelerator = accelerator;
        _stages = stages;
        _gradients = new Tensor?[stages.Length];
    }

    /// <summary>
    /// The device form of <paramref name="densities"/>, or null when a stage uses a density that is neither a
    /// Gaussian-mixture score nor a <see cref="KernelDensity"/>: those still run on the host.
    /// </summary>
    public static GaussianStageGradients? TryCreate(Accelerator accelerator, StageDensities densities)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        ArgumentNullException.ThrowIfNull(densities);
        if (densities.PerStage.Any(s => s is not null && s.Any(d => d is not IGaussianMixtureScore and not KernelDensity)))
        {
            return null;
        }
        var stages = new Stage?[densities.PerStage.Count];
        try
        {
            for (int s = 0; s < stages.Length; s++)
            {
                if (densities.PerStage[s] is { } perClass)
                {
                    stages[s] = new Stage(accelerator, perClass);
                }
            }
        }
        catch
        {
            foreach (var stage in stages)
            {
                stage?.Dispose();
            }
            throw;
        }
        return new GaussianStageGradients(accelerator, stages);
    }

    /// <summary>
    /// scale * d score / d feature of each stage's pooled features (N, D_s) under the density of class
    /// classes[n] (N, on the device); null for unused stages. The tensors are owned by this object and
    /// valid until its next call; nothing is copied between host and device.
    /// </summary>
    public IReadOnlyList<Tensor?> Gradient(IReadOnlyList<Tensor> stagePools, View<int> classes, float scale)
    {
        ArgumentNullException.ThrowIfNull(stagePools);
        if (stagePools.Count != _stages.Length)
        {
            throw new ArgumentException($"GaussianStageGradients: give the {_stages.Length} stage outputs; got {stagePools.Count}.", nameof(stagePools));
        }
        int n = classes.Length;
        EnsureScratch(n);
        for (int s = 0; s < _stages.Length; s++)
        {
            if (_stages[s] is not { } stage)
            {
                continue;
            }
            var pool = stagePools[s];
            int d = stage.D;
            if (pool.Rank != 2 || pool.Dim(0) != n || pool.Dim(1) != d)
            {
                throw new ArgumentException($"GaussianStageGradients: stage layer{s + 1} needs pooled features (N, D) = ({n}, {d}); got {Tensor.ShapeText(pool.Shape)}.", nameof(stagePools));
            }
            var gradient = Tensor.ReuseLargest(ref _gradients[s], _accelerator, n, d);
            bool first = true; // the first GEMM into the stage gradient overwrites it
            for (int c = 0; c < stage.Classes.Length; c++)
            {
                if (stage.Classes[c] is ClassMixture mixture)
                {
                    MixtureGradient(mixture, pool.View, classes, c, scale, gradient.View, n, d, ref first);
                }
                else
                {
                    KernelDensityGradient((ClassKernelDensity)stage.Classes[c], pool.View, classes, c, scale, gradient.View, n, d, ref first);
                }
            }
        }
        return _gradients.Select((g, s) => _stages[s] is null ? null : g).ToArray();
    }

    private void MixtureGradient(ClassMixture mixture, View<float> x, View<int> classes, int c, float scale, View<float> gradient, int n, int d, ref bool first)
    {
        var diff = _diff!.View.Slice(0, n * d);
        var scaled = _scaled!.View.Slice(0, n * d);
        int k = mixture.K;
        var logProb = _logProb!.View.Slice(0, n * k);
        var weights = _weights!.View.Slice(0, n * k);
        for (int j = 0; j < k; j++)
        {
            var y = _y!.View.Slice(j * n * d, n * d);
            MixtureKernels.LogGaussian(_accelerator, x, mixture.Means.View.Slice(j * d, d), mixture.Factors.View.Slice(j * d * d, d * d), diff, y, logProb,
                n, d, k, j, mixture.LogWeightedDet[j]);
        }
        float rowScale;
        if (mixture.Score == GaussianScore.NearestComponent)
        {
            NearestComponentWeights(_accelerator, logProb, weights, n, k);
            rowScale = -2f * scale;
        }
        else
        {
            MixtureKernels.Responsibilities(_accelerator, logProb, mixture.ZeroLogWeights.View, weights, _logNorm!.View.Slice(0, n), n, k);
            rowScale = -scale;
        }
        for (int j = 0; j < k; j++)
        {
            var y = _y!.View.Slice(j * n * d, n * d);
            WeightClassRows(_accelerator, y, weights, classes, scaled, n, d, k, c, j, rowScale);
            // d (-||y||^2 / 2) / dx = -y M^T in row form (y = (x - mu) M).
            Gemm.Run(_accelerator, false, true, n, d, d, 1f, scaled, d, mixture.Factors.View.Slice(j * d * d, d * d), d, first ? 0f : 1f, gradient, d);
            first = false;
        }
    }

    private void KernelDensityGradient(ClassKernelDensity density, View<float> x, View<int> classes, int c, float scale, View<float> gradient, int n, int d, ref bool first)
    {
        int m = density.M;
        var centred = _diff!.View.Slice(0, n * d);
        var logits = _logProb!.View.Slice(0, n * m);
        var weights = _weights!.View.Slice(0, n * m);
        var rowWeights = _rowWeights!.View.Slice(0, n);
        var scaled = _scaled!.View.Slice(0, n * d);
        // Rows and centres relative to the centres' mean: the softmax and p - x do not change, and the float32 dot products lose less.
        MixtureKernels.Center(_accelerator, x, density.Mean.View, centred, n, d);
        Gemm.Run(_accelerator, false, true, n, m, d, density.InverseSquaredBandwidth, centred, d, density.Points.View, d, 0f, logits, m);
        MixtureKernels.Responsibilities(_accelerator, logits, density.LogWeights.View, weights, _logNorm!.View.Slice(0, n), n, m);
        float rowScale = scale * density.InverseSquaredBandwidth;
        ClassRowWeights(_accelerator, classes, rowWeights, n, c, rowScale);
        // rowScale sum_p w_p p - rowScale x on the rows of class c (the softmax weights sum to 1).
        WeightClassRows(_accelerator, weights, rowWeights, classes, logits, n, m, 1, c, 0, 1f);
        Gemm.Run(_accelerator, false, false, n, d, m, 1f, logits, m, density.Points.View, d, first ? 0f : 1f, gradient, d);
        WeightClassRows(_accelerator, centred, rowWeights, classes, scaled, n, d, 1, c, 0, -1f);
        Elementwise.AddInPlace(_accelerator, scaled, gradient);
        first = false;
    }

    private void EnsureScratch(int n)
    {
        if (n <= _rows)
        {
            return;
        }
        DisposeScratch();
        var used = _stages.Where(s => s is not null).Select(s => s!).ToArray();
        var classes = used.SelectMany(s => s.Classes.Select(c => (s.D, c))).ToArray();
        int maxD = used.Max(s => s.D);
        int maxY = checked(classes.Max(e => e.c is ClassMixture mixture ? mixture.K * n * e.D : 0));
        int maxProb = checked(classes.Max(e => e.c is ClassMixture mixture ? mixture.K : ((ClassKernelDensity)e.c).M) * n);
        _diff = _accelerator.Allocate<float>(checked(n * maxD));
        _scaled = _accelerator.Allocate<float>(checked(n * maxD));
        _y = _accelerator.Allocate<float>(Math.Max(1, maxY));
        _logProb = _accelerator.Allocate<float>(maxProb);
        _weights = _accelerator.Allocate<float>(maxProb);
        _logNorm = _accelerator.Allocate<float>(n);
        _rowWeights = _accelerator.Allocate<float>(n);
        _rows = n;
    }

    private void DisposeScratch()
    {
        _diff?.Dispose();
        _scaled?.Dispose();
        _y?.Dispose();
        _logProb?.Dispose();
        _weights?.Dispose();
        _logNorm?.Dispose();
        _rowWeights?.Dispose();
        _rows = 0;
    }

    public void Dispose()
    {
        DisposeScratch();
        foreach (var stage in _stages)
        {
            stage?.Dispose();
        }
        foreach (var gradient in _gradients)
        {
            gradient?.Dispose();
        }
    }

    // ------------------------------------------------------------------ kernels

    /// <summary>One thread per row: weights[n, k] = 1 at the most likely component (the first of equals, as the host), else 0.</summary>
    [Kernel]
    private static void NearestComponent(KernelContext ctx, View<float> logProb, View<float> weights, int n, int components)
    {
        for (int row = ctx.GlobalX; row < n; row += ctx.GridStrideX)
        {
            int best = 0;
            float bestValue = logProb[row * components];
            for (int k = 1; k < components; k++)
            {
                float v = logProb[row * components + k];
                if (v > bestValue)
                {
                    bestValue = v;
                    best = k;
                }
            }
            for (int k = 0; k < components; k++)
            {
                weights[row * components + k] = k == best ? 1f : 0f;
            }
        }
    }

    /// <summary>scaled[n, j] = scale weights[n, k] y[n, j] where classes[n] == c, else 0 (grid-stride over N * D).</summary>
    [Kernel]
    private static void WeightRows(KernelContext ctx, View<float> y, View<float> weights, View<int> classes, View<float> scaled,
        int n, int d, int components, int c, int k, float scale)
    {
        for (int index = ctx.GlobalX; index < n * d; index += ctx.GridStrideX)
        {
            int row = index / d;
            scaled[index] = classes[row] == c ? scale * weights[row * components + k] * y[index] : 0f;
        }
    }

    /// <summary>rowWeights[n] = value where classes[n] == c, else 0 (grid-stride over N).</summary>
    [Kernel]
    private static void ClassRows(KernelContext ctx, View<int> classes, View<float> rowWeights, int n, int c, float value)
    {
        for (int row = ctx.GlobalX; row < n; row += ctx.GridStrideX)
        {
            rowWeights[row] = classes[row] == c ? value : 0f;
        }
    }

    // ------------------------------------------------------------------ dispatchers and CPU implementations

    /// <summary>rowWeights (N) = value on the rows whose class (N) is c, zero on the others.</summary>
    public static void ClassRowWeights(Accelerator accelerator, View<int> classes, View<float> rowWeights, int n, int c, float value)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        RequireLength(classes.Length, n, nameof(classes), "ClassRowWeights");
        RequireLength(rowWeights.Length, n, nameof(rowWeights), "ClassRowWeights");
        OperatorDispatch.Run(accelerator, "GaussianStageGradients.ClassRowWeights", OperatorCost.Elementwise(n, 1, reads: 1, writes: 1),
            () => ClassRowWeightsCpu(classes.AsSpan(), rowWeights.AsSpan(), n, c, value),
            () => ClassRowsKernel.Launch(accelerator, Config(n), classes, rowWeights, n, c, value));
    }

    public static void ClassRowWeightsCpu(ReadOnlySpan<int> classes, Span<float> rowWeights, int n, int c, float value)
    {
        for (int row = 0; row < n; row++)
        {
            rowWeights[row] = classes[row] == c ? value : 0f;
        }
    }

    /// <summary>weights (N, K) one-hot at each row's largest logProb (N, K), the first of equals.</summary>
    public static void NearestComponentWeights(Accelerator accelerator, View<float> logProb, View<float> weights, int n, int components)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        RequireLength(logProb.Length, (long)n * components, nameof(logProb), "NearestComponentWeights");
        RequireLength(weights.Length, (long)n * components, nameof(weights), "NearestComponentWeights");
        OperatorDispatch.Run(accelerator, "GaussianStageGradients.NearestComponentWeights", OperatorCost.Elementwise((long)n * components, 1, reads: 1, writes: 1),
            () => NearestComponentWeightsCpu(logProb.AsSpan(), weights.AsSpan(), n, components),
            () => NearestComponentKernel.Launch(accelerator, Config(n), logProb, weights, n, components));
    }

    /// <summary>scaled (N, D) = scale weights[:, k] y (N, D) on the rows whose class (N) is c, zero on the others.</summary>
    public static void WeightClassRows(Accelerator accelerator, View<float> y, View<float> weights, View<int> classes, View<float> scaled,
        int n, int d, int components, int c, int k, float scale)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        RequireLength(y.Length, (long)n * d, nameof(y), "WeightClassRows");
        RequireLength(scaled.Length, (long)n * d, nameof(scaled), "WeightClassRows");
        RequireLength(weights.Length, (long)n * components, nameof(weights), "WeightClassRows");
        RequireLength(classes.Length, n, nameof(classes), "WeightClassRows");
        OperatorDispatch.Run(accelerator, "GaussianStageGradients.WeightClassRows", OperatorCost.Elementwise((long)n * d, 2, reads: 1, writes: 1),
            () => WeightClassRowsCpu(y.AsSpan(), weights.AsSpan(), classes.AsSpan(), scaled.AsSpan(), n, d, components, c, k, scale),
            () => WeightRowsKernel.Launch(accelerator, Config(n * d), y, weights, classes, scaled, n, d, components, c, k, scale));
    }

    public static void NearestComponentWeightsCpu(ReadOnlySpan<float> logProb, Span<float> weights, int n, int components)
    {
        for (int row = 0; row < n; row++)
        {
            var p = logProb.Slice(row * components, components);
            int best = 0;
            for (int k = 1; k < components; k++)
            {
                if (p[k] > p[best])
                {
                    best = k;
                }
            }
            var w = weights.Slice(row * components, components);
            w.Clear();
            w[best] = 1f;
        }
    }

    public static void WeightClassRowsCpu(ReadOnlySpan<float> y, ReadOnlySpan<float> weights, ReadOnlySpan<int> classes, Span<float> scaled,
        int n, int d, int components, int c, int k, float scale)
    {
        for (int row = 0; row < n; row++)
        {
            bool of = classes[row] == c;
            for (int j = 0; j < d; j++)
            {
                scaled[row * d + j] = of ? scale * weights[row * components + k] * y[row * d + j] : 0f;
            }
        }
    }

    private static void RequireLength(long actual, long expected, string name, string what)
    {
        if (actual != expected)
        {
            throw new ArgumentException($"GaussianStageGradients.{what}: {name} holds {actual} elements where {expected} are needed.", name);
        }
    }

    private static LaunchConfig Config(int count) => LaunchConfig.For1D(Math.Max(1, Math.Min(count, 65535 * ThreadsPerBlock)), ThreadsPerBlock);

    /// <summary>HFC on a batch of 64 at layer4 (512 features), 2 classes of 4 components.</summary>
    [LaunchShapes]
    private static IEnumerable<LaunchShape> LaunchShapes()
    {
        const int n = 64, d = 512;
        const string hfc = "HFC batch 64 d=512 k=4";
        yield return new LaunchShape(NearestComponentKernel.Definition, hfc, Config(n));
        yield return new LaunchShape(WeightRowsKernel.Definition, hfc, Config(n * d));
        yield return new LaunchShape(ClassRowsKernel.Definition, "KDE batch 64", Config(n));
    }

    /// <summary>One stage's class densities on the device.</summary>
    private sealed class Stage : IDisposable
    {
        public Stage(Accelerator accelerator, IReadOnlyList<IFeatureDensity> perClass)
        {
            D = perClass[0].Features;
            Classes = new IDisposable[perClass.Count];
            try
            {
                for (int c = 0; c < perClass.Count; c++)
                {
                    Classes[c] = perClass[c] is KernelDensity kernelDensity
                        ? new ClassKernelDensity(accelerator, kernelDensity)
                        : new ClassMixture(accelerator, (IGaussianMixtureScore)perClass[c]);
                }
            }
            catch
            {
                Dispose();
                throw;
            }
        }

        public int D { get; }

        public IDisposable[] Classes { get; } // ClassMixture or ClassKernelDensity

        public void Dispose()
        {
            foreach (var density in Classes)
            {
                density?.Dispose();
            }
        }
    }

    /// <summary>
    /// One class's kernel density in float32: centres P - mean(P) (M, D), their mean (D), log weights
    /// -||p - mean||^2 / 2h^2 (M) and 1 / h^2 (the centres are centred in float64 on the host).
    /// </summary>
    private sealed class ClassKernelDensity : IDisposable
    {
        public ClassKernelDensity(Accelerator accelerator, KernelDensity density)
        {
            M = density.Count;
            int d = density.Features;
            var points = density.Points;
            double inverseSquared = 1.0 / (density.Bandwidth * density.Bandwidth);
            InverseSquaredBandwidth = (float)inverseSquared;
            var mean = new double[d];
            for (int p = 0; p < M; p++)
            {
                for (int j = 0; j < d; j++)
                {
                    mean[j] += points[p * d + j];
                }
            }
            for (int j = 0; j < d; j++)
            {
                mean[j] = (float)(mean[j] / M); // the rows are centred by this float32 value too
            }
            var centred = new float[M * d];
            var logWeights = new float[M];
            for (int p = 0; p < M; p++)
            {
                double squared = 0;
                for (int j = 0; j < d; j++)
                {
                    double v = points[p * d + j] - mean[j];
                    centred[p * d + j] = (float)v;
                    squared += v * v;
                }
                logWeights[p] = (float)(-0.5 * squared * inverseSquared);
            }
            Points = accelerator.Allocate<float>(centred.Length);
            Mean = accelerator.Allocate<float>(d);
            LogWeights = accelerator.Allocate<float>(M);
            accelerator.CopyFromHost<float>(centred, Points.View);
            accelerator.CopyFromHost<float>(mean.Select(v => (float)v).ToArray(), Mean.View);
            accelerator.CopyFromHost<float>(logWeights, LogWeights.View);
        }

        public int M { get; }

        public float InverseSquaredBandwidth { get; }

        public DeviceBuffer<float> Points { get; } // (M, D) centred

        public DeviceBuffer<float> Mean { get; } // (D)

        public DeviceBuffer<float> LogWeights { get; } // (M)

        public void Dispose()
        {
            Points.Dispose();
            Mean.Dispose();
            LogWeights.Dispose();
        }
    }

    /// <summary>One class's mixture: means (K, D) and dense factors (K, D, D) in float32, log pi_k + log det M_k on the host.</summary>
    private sealed class ClassMixture : IDisposable
    {
        public ClassMixture(Accelerator accelerator, IGaussianMixtureScore density)
        {
            var components = density.Components;
            Score = density.Score;
            K = components.K;
            int d = components.D;
            var means = new float[K * d];
            var factors = new float[K * d * d];
            LogWeightedDet = new float[K];
            for (int k = 0; k < K; k++)
            {
                var mean = components.Mean(k);
                for (int j = 0; j < d; j++)
                {
                    means[k * d + j] = (float)mean[j];
                }
                components.DenseFactor(k).CopyTo(factors, k * d * d);
                LogWeightedDet[k] = (float)components.LogWeightedDet(k);
            }
            Means = accelerator.Allocate<float>(means.Length);
            Factors = accelerator.Allocate<float>(factors.Length);
            ZeroLogWeights = accelerator.Allocate<float>(K);
            accelerator.CopyFromHost<float>(means, Means.View);
            accelerator.CopyFromHost<float>(factors, Factors.View);
            accelerator.CopyFromHost<float>(new float[K], ZeroLogWeights.View);
        }

        public GaussianScore Score { get; }

        public int K { get; }

        public DeviceBuffer<float> Means { get; } // (K, D)

        public DeviceBuffer<float> Factors { get; } // (K, D, D)

        public DeviceBuffer<float> ZeroLogWeights { get; } // (K) zeros: the weights are already in LogWeightedDet

        public float[] LogWeightedDet { get; } // (K)

        public void Dispose()
        {
            Means.Dispose();
            Factors.Dispose();
            ZeroLogWeights.Dispose();
        }
    }
}
