using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using IlgpuOct.Kernels.Profiling;

namespace IlgpuOct.Kernels.Operators;

/// <summary>The geometry of a 2-d batch norm: x and y (N, C, H, W), parameters and statistics (C).</summary>
public readonly record struct BatchNorm2dShape(int N, int C, int H, int W)
{
    public int HW => H * W;

    /// <summary>Values per channel: N * H * W.</summary>
    public int CountPerChannel => N * H * W;

    /// <summary>Elements of x: N * C * H * W.</summary>
    public int Length => N * C * H * W;

    public void Validate()
    {
        if (N < 1 || C < 1 || H < 1 || W < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(BatchNorm2dShape), $"{this}: every extent must be >= 1.");
        }
        if ((long)N * C * H * W > int.MaxValue)
        {
            throw new ArgumentOutOfRangeException(nameof(BatchNorm2dShape), $"{this}: more than 2^31-1 elements; split the batch.");
        }
    }
}

/// <summary>
/// 2-d batch normalisation as PyTorch's BatchNorm2d: training mode normalises with the batch mean
/// and biased variance and moves the running mean and the UNBIASED running variance by
/// <c>momentum</c>; evaluation mode normalises with the running statistics.
/// CPU: channels in parallel, statistics accumulated in double (two passes: mean, then squared
/// deviations), SIMD over each H*W plane.
/// </summary>
public static unsafe partial class BatchNorm2d
{
    public const float DefaultMomentum = 0.1f;

    public const float DefaultEpsilon = 1e-5f;

    private const long ParallelWorkThreshold = 1L << 15;

    // ---- Dispatchers ----

    /// <summary>
    /// Cost model: FLOPs per element (training forward: sum and sum of squares 3, normalise 4; backward:
    /// two sums 4, dx 6) and full passes over N x C x H x W floats (training forward reads x twice and
    /// writes y; backward reads x and dy twice and writes dx).
    /// </summary>
    public static OperatorCost Cost(in BatchNorm2dShape s, double flopsPerElement, int passes) => new((double)s.Length * flopsPerElement, 4.0 * s.Length * passes);

    /// <summary>Training forward on the accelerator. Shapes as <see cref="ForwardTrainingCpu"/>.</summary>
    public static void ForwardTraining(Accelerator accelerator, BatchNorm2dShape s, View<float> x, View<float> gamma, View<float> beta,
        View<float> runningMean, View<float> runningVar, View<float> y, View<float> saveMean, View<float> saveInvStd,
        float momentum = DefaultMomentum, float epsilon = DefaultEpsilon)
    {
        OperatorDispatch.Run(accelerator, "BatchNorm2d.ForwardTraining", Cost(s, flopsPerElement: 7, passes: 3),
            () => ForwardTrainingCpu(s, x.AsSpan(), gamma.AsSpan(), beta.AsSpan(), runningMean.AsSpan(), runningVar.AsSpan(), y.AsSpan(), saveMean.AsSpan(), saveInvStd.AsSpan(), momentum, epsilon),
            () => ForwardTrainingKernels(accelerator, s, x, gamma, beta, runningMean, runningVar, y, saveMean, saveInvStd, momentum, epsilon, relu: false));
    }

    /// <summary>
    /// Training forward followed by ReLU (y = max(BN(x), 0)) as one operator: on <c>cpu</c> each plane is
    /// rectified while it is still in cache; on kernel accelerators one fused kernel (statistics, normalise
    /// and rectify per channel block). On cpu bit-identical to <see cref="ForwardTraining"/> then
    /// Elementwise.ReluForward. Shapes as <see cref="ForwardReluCpu"/>.
    /// </summary>
    public static void ForwardRelu(Accelerator accelerator, BatchNorm2dShape s, View<float> x, View<float> gamma, View<float> beta,
        View<float> runningMean, View<float> runningVar, View<float> y, View<float> saveMean, View<float> saveInvStd,
        float momentum = DefaultMomentum, float epsilon = DefaultEpsilon)
    {
        OperatorDispatch.Run(accelerator, "BatchNorm2d.ForwardRelu", Cost(s, flopsPerElement: 8, passes: 3),
            () => ForwardReluCpu(s, x.AsSpan(), gamma.AsSpan(), beta.AsSpan(), runningMean.AsSpan(), runningVar.AsSpan(), y.AsSpan(), saveMean.AsSpan(), saveInvStd.AsSpan(), momentum, epsilon),
            () => ForwardTrainingKernels(accelerator, s, x, gamma, beta, runningMean, runningVar, y, saveMean, saveInvStd, momentum, epsilon, relu: true));
    }

    /// <summary>
    /// Backward of <see cref="ForwardRelu"/>: the ReLU's mask is read from its output y (y &gt; 0), then as
    /// <see cref="BackwardTraining"/>. On kernel accelerators one fused kernel masks dy by y while it reduces
    /// and again while it writes dx. Shapes as <see cref="BackwardReluCpu"/>.
    /// </summary>
    public static void BackwardRelu(Accelerator accelerator, BatchNorm2dShape s, View<float> x, View<float> y, View<float> dy, View<float> gamma,
        View<float> saveMean, View<float> saveInvStd, View<float> dx, View<float> dgamma, View<float> dbeta)
    {
        OperatorDispatch.Run(accelerator, "BatchNorm2d.BackwardRelu", Cost(s, flopsPerElement: 11, passes: 6),
            () => BackwardReluCpu(s, x.AsSpan(), y.AsSpan(), dy.AsSpan(), gamma.AsSpan(), saveMean.AsSpan(), saveInvStd.AsSpan(), dx.AsSpan(), dgamma.AsSpan(), dbeta.AsSpan()),
            () => BackwardTrainingKernels(accelerator, s, x, y, dy, gamma, saveMean, saveInvStd, dx, dgamma, dbeta, relu: true));
    }

    /// <summary>
    /// Folds evaluation-mode batch norm into the convolution before it (what ONNX Runtime does):
    /// w' = w s and b' = beta - mean s per output channel, s = gamma / sqrt(running var + eps), so that
    /// BN(conv(x, w)) = conv(x, w') + b'. On the accelerator (no copy to the host). Shapes as <see cref="FoldIntoConvolutionCpu"/>.
    /// </summary>
    public static void FoldIntoConvolution(Accelerator accelerator, int channels, View<float> weight, View<float> gamma, View<float> beta,
        View<float> runningMean, View<float> runningVar, View<float> foldedWeight, View<float> foldedBias, float epsilon = DefaultEpsilon)
    {
        int perChannel = RequireFoldShapes(channels, weight.Length, gamma.Length, beta.Length, runningMean.Length, runningVar.Length, foldedWeight.Length, foldedBias.Length);
        OperatorDispatch.Run(accelerator, "BatchNorm2d.FoldIntoConvolution", OperatorCost.Elementwise(weight.Length, 1, reads: 1, writes: 1),
            () => FoldIntoConvolutionCpu(channels, weight.AsSpan(), gamma.AsSpan(), beta.AsSpan(), runningMean.AsSpan(), runningVar.AsSpan(), foldedWeight.AsSpan(), foldedBias.AsSpan(), epsilon),
            () => BnFoldIntoConvolutionKernel.Launch(accelerator, ElementConfig(weight.Length), weight, gamma, beta, runningMean, runningVar, foldedWeight, foldedBias, perChannel, epsilon));
    }

    /// <summary>
    /// w' = w s, b' = beta - mean s with s = gamma / sqrt(var + eps) in float as the kernel: weight and foldedWeight (K, C, R, R)
    /// (any K rows of equal length), gamma, beta, runningMean, runningVar and foldedBias (K).
    /// </summary>
    public static void FoldIntoConvolutionCpu(int channels, ReadOnlySpan<float> weight, ReadOnlySpan<float> gamma, ReadOnlySpan<float> beta,
        ReadOnlySpan<float> runningMean, ReadOnlySpan<float> runningVar, Span<float> foldedWeight, Span<float> foldedBias, float epsilon = DefaultEpsilon)
    {
        int perChannel = RequireFoldShapes(channels, weight.Length, gamma.Length, beta.Length, runningMean.Length, runningVar.Length, foldedWeight.Length, foldedBias.Length);
        for (int k = 0; k < channels; k++)
        {
            float scale = gamma[k] / MathF.Sqrt(runningVar[k] + epsilon);
            foldedBias[k] = beta[k] - runningMean[k] * scale;
            TensorPrimitives.Multiply(weight.Slice(k * perChannel, perChannel), scale, foldedWeight.Slice(k * perChannel, perChannel));
        }
    }

    private static int RequireFoldShapes(int channels, int weight, int gamma, int beta, int mean, int variance, int foldedWeight, int foldedBias)
    {
        if (channels < 1 || weight % channels != 0 || weight == 0 || foldedWeight != weight
            || gamma != channels || beta != channels || mean != channels || variance != channels || foldedBias != channels)
        {
            throw new ArgumentException($"BatchNorm2d.FoldIntoConvolution: K = {channels} output channels needs gamma, beta, mean, variance and the folded bias of K entries " +
                $"(got {gamma}, {beta}, {mean}, {variance}, {foldedBias}) and weight and folded weight of the same length, a multiple of K (got {weight}, {foldedWeight}); pass the convolution's weight and the BN that follows it.");
        }
        return weight / channels;
    }

    /// <summary>Evaluation forward on the accelerator. Shapes as <see cref="ForwardInferenceCpu"/>.</summary>
    public static void ForwardInference(Accelerator accelerator, BatchNorm2dShape s, View<float> x, View<float> gamma, View<float> beta,
        View<float> runningMean, View<float> runningVar, View<float> y, float epsilon = DefaultEpsilon)
    {
        OperatorDispatch.Run(accelerator, "BatchNorm2d.ForwardInference", Cost(s, flopsPerElement: 4, passes: 2),
            () => ForwardInferenceCpu(s, x.AsSpan(), gamma.AsSpan(), beta.AsSpan(), runningMean.AsSpan(), runningVar.AsSpan(), y.AsSpan(), epsilon),
            () => ForwardInferenceKernels(accelerator, s, x, gamma, beta, runningMean, runningVar, y, epsilon));
    }

    /// <summary>
    /// Evaluation forward followed by ReLU (y = max(BN(x), 0)): on <c>cpu</c> one pass (bit-identical to
    /// <see cref="ForwardInference"/> then Elementwise.ReluForward); on kernel accelerators those two kernels.
    /// Shapes as <see cref="ForwardInferenceReluCpu"/>.
    /// </summary>
    public static void ForwardInferenceRelu(Accelerator accelerator, BatchNorm2dShape s, View<float> x, View<float> gamma, View<float> beta,
        View<float> runningMean, View<float> runningVar, View<float> y, float epsilon = DefaultEpsilon)
    {
        OperatorDispatch.Run(accelerator, "BatchNorm2d.ForwardInferenceRelu", Cost(s, flopsPerElement: 5, passes: 2),
            () => ForwardInferenceReluCpu(s, x.AsSpan(), gamma.AsSpan(), beta.AsSpan(), runningMean.AsSpan(), runningVar.AsSpan(), y.AsSpan(), epsilon),
            () =>
            {
                ForwardInferenceKernels(accelerator, s, x, gamma, beta, runningMean, runningVar, y, epsilon);
                Elementwise.ReluForwardKernel.Launch(accelerator, Elementwise.Config(y.Length), y, y);
            });
    }

    /// <summary>
    /// Evaluation-mode input gradient of <see cref="ForwardInferenceRelu"/>, masked by its output y: on <c>cpu</c> one pass
    /// (bit-identical to Elementwise.ReluBackward then <see cref="BackwardInference"/> in place); on kernel accelerators those
    /// two kernels. Shapes as <see cref="BackwardInferenceReluCpu"/>.
    /// </summary>
    public static void BackwardInferenceRelu(Accelerator accelerator, BatchNorm2dShape s, View<float> y, View<float> dy, View<float> gamma, View<float> runningVar,
        View<float> dx, float epsilon = DefaultEpsilon)
    {
        OperatorDispatch.Run(accelerator, "BatchNorm2d.BackwardInferenceRelu", Cost(s, flopsPerElement: 2, passes: 3),
            () => BackwardInferenceReluCpu(s, y.AsSpan(), dy.AsSpan(), gamma.AsSpan(), runningVar.AsSpan(), dx.AsSpan(), epsilon),
            () =>
            {
                RequireLength(y.Length, s.Length, nameof(y), "(N, C, H, W)");
                RequireLength(dy.Length, s.Length, nameof(dy), "(N, C, H, W)");
                RequireLength(dx.Length, s.Length, nameof(dx), "(N, C, H, W)");
                Elementwise.ReluBackwardKernel.Launch(accelerator, Elementwise.Config(dx.Length), y, dy, dx);
                BackwardInferenceKernels(accelerator, s, dx, gamma, runningVar, dx, epsilon);
            });
    }

    /// <summary>Training backward on the accelerator. Shapes as <see cref="BackwardTrainingCpu"/>.</summary>
    public static void BackwardTraining(Accelerator accelerator, BatchNorm2dShape s, View<float> x, View<float> dy, View<float> gamma,
        View<float> saveMean, View<float> saveInvStd, View<float> dx, View<float> dgamma, View<float> dbeta)
    {
        OperatorDispatch.Run(accelerator, "BatchNorm2d.BackwardTraining", Cost(s, flopsPerElement: 10, passes: 5),
            () => BackwardTrainingCpu(s, x.AsSpan(), dy.AsSpan(), gamma.AsSpan(), saveMean.AsSpan(), saveInvStd.AsSpan(), dx.AsSpan(), dgamma.AsSpan(), dbeta.AsSpan()),
            () => BackwardTrainingKernels(accelerator, s, x, dy, dy, gamma, saveMean, saveInvStd, dx, dgamma, dbeta, relu: false));
    }

    /// <summary>Evaluation-mode input gradient on the accelerator. Shapes as <see cref="BackwardInferenceCpu"/>.</summary>
    public static void BackwardInference(Accelerator accelerator, BatchNorm2dShape s, View<float> dy, View<float> gamma, View<float> runningVar,
        View<float> dx, float epsilon = DefaultEpsilon)
    {
        OperatorDispatch.Run(accelerator, "BatchNorm2d.BackwardInference", Cost(s, flopsPerElement: 2, passes: 2),
            () => BackwardInferenceCpu(s, dy.AsSpan(), gamma.AsSpan(), runningVar.AsSpan(), dx.AsSpan(), epsilon),
            () => BackwardInferenceKernels(accelerator, s, dy, gamma, runningVar, dx, epsilon));
    }

    // ---- CPU implementation ----

    /// <summary>
    /// Training forward. x, y (N, C, H, W); gamma, beta (C); runningMean, runningVar (C) updated in
    /// place: r = (1 - momentum) r + momentum * batch statistic (variance unbiased, n / (n - 1));
    /// saveMean, saveInvStd (C) receive the batch mean and 1/sqrt(biased var + eps) for the backward pass.
    /// </summary>
    public static void ForwardTrainingCpu(in BatchNorm2dShape s, ReadOnlySpan<float> x, ReadOnlySpan<float> gamma, ReadOnlySpan<float> beta,
        Span<float> runningMean, Span<float> runningVar, Span<float> y, Span<float> saveMean, Span<float> saveInvStd,
        float momentum = DefaultMomentum, float epsilon = DefaultEpsilon) =>
        ForwardTrainingCpu(s, x, gamma, beta, runningMean, runningVar, y, saveMean, saveInvStd, momentum, epsilon, relu: false);

    /// <summary>
    /// <see cref="ForwardTrainingCpu(in BatchNorm2dShape, ReadOnlySpan{float}, ReadOnlySpan{float}, ReadOnlySpan{float}, Span{float}, Span{float}, Span{float}, Span{float}, Span{float}, float, float)"/>
    /// then y = max(y, 0), each plane rectified right after it is normalised. Same shapes.
    /// </summary>
    public static void ForwardReluCpu(in BatchNorm2dShape s, ReadOnlySpan<float> x, ReadOnlySpan<float> gamma, ReadOnlySpan<float> beta,
        Span<float> runningMean, Span<float> runningVar, Span<float> y, Span<float> saveMean, Span<float> saveInvStd,
        float momentum = DefaultMomentum, float epsilon = DefaultEpsilon) =>
        ForwardTrainingCpu(s, x, gamma, beta, runningMean, runningVar, y, saveMean, saveInvStd, momentum, epsilon, relu: true);

    private static void ForwardTrainingCpu(in BatchNorm2dShape s, ReadOnlySpan<float> x, ReadOnlySpan<float> gamma, ReadOnlySpan<float> beta,
        Span<float> runningMean, Span<float> runningVar, Span<float> y, Span<float> saveMean, Span<float> saveInvStd,
        float momentum, float epsilon, bool relu)
    {
        s.Validate();
        if (s.CountPerChannel < 2)
        {
            throw new ArgumentException($"BatchNorm2d: training needs more than one value per channel ({s}); use a batch of at least 2 or evaluation mode.", nameof(s));
        }
        RequireLength(x.Length, s.Length, nameof(x), "(N, C, H, W)");
        RequireLength(y.Length, s.Length, nameof(y), "(N, C, H, W)");
        RequireLength(gamma.Length, s.C, nameof(gamma), "(C)");
        RequireLength(beta.Length, s.C, nameof(beta), "(C)");
        RequireLength(runningMean.Length, s.C, nameof(runningMean), "(C)");
        RequireLength(runningVar.Length, s.C, nameof(runningVar), "(C)");
        RequireLength(saveMean.Length, s.C, nameof(saveMean), "(C)");
        RequireLength(saveInvStd.Length, s.C, nameof(saveInvStd), "(C)");
        var shape = s;
        fixed (float* px = x, py = y, pg = gamma, pb = beta, prm = runningMean, prv = runningVar, psm = saveMean, psi = saveInvStd)
        {
            nint ax = (nint)px, ay = (nint)py, ag = (nint)pg, ab = (nint)pb, arm = (nint)prm, arv = (nint)prv, asm = (nint)psm, asi = (nint)psi;
            ForEachChannel(shape, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (c) =>
            {
                int hw = shape.HW;
                long count = shape.CountPerChannel;
                double sum = 0;
                for (int n = 0; n < shape.N; n++)
                {
                    sum += SumDouble((float*)ax + ((long)n * shape.C + c) * hw, hw);
                }
                double mean = sum / count;
                double squares = 0;
                for (int n = 0; n < shape.N; n++)
                {
                    squares += SumSquaredDeviations((float*)ax + ((long)n * shape.C + c) * hw, hw, mean);
                }
                double variance = squares / count;
                double invStd = 1.0 / Math.Sqrt(variance + epsilon);
                ((float*)asm)[c] = (float)mean;
                ((float*)asi)[c] = (float)invStd;
                float* rm = (float*)arm;
                float* rv = (float*)arv;
                rm[c] = (float)((1.0 - momentum) * rm[c] + momentum * mean);
                rv[c] = (float)((1.0 - momentum) * rv[c] + momentum * (variance * count / (count - 1)));
                float scale = (float)(((float*)ag)[c] * invStd);
                float shift = ((float*)ab)[c];
                float meanF = (float)mean;
                for (int n = 0; n < shape.N; n++)
                {
                    long offset = ((long)n * shape.C + c) * hw;
                    Normalize((float*)ax + offset, meanF, scale, shift, (float*)ay + offset, hw, relu);
                }
            });
        }
    }

    /// <summary>Evaluation forward: y = (x - runningMean) * gamma / sqrt(runningVar + eps) + beta. x, y (N, C, H, W); the rest (C).</summary>
    public static void ForwardInferenceCpu(in BatchNorm2dShape s, ReadOnlySpan<float> x, ReadOnlySpan<float> gamma, ReadOnlySpan<float> beta,
        ReadOnlySpan<float> runningMean, ReadOnlySpan<float> runningVar, Span<float> y, float epsilon = DefaultEpsilon) =>
        ForwardInferenceCpu(s, x, gamma, beta, runningMean, runningVar, y, epsilon, relu: false);

    /// <summary>
    /// Evaluation forward then y = max(y, 0), in one pass: bit-identical to <see cref="ForwardInferenceCpu(in BatchNorm2dShape, ReadOnlySpan{float}, ReadOnlySpan{float}, ReadOnlySpan{float}, ReadOnlySpan{float}, ReadOnlySpan{float}, Span{float}, float)"/>
    /// then Elementwise.ReluForwardCpu. Same shapes.
    /// </summary>
    public static void ForwardInferenceReluCpu(in BatchNorm2dShape s, ReadOnlySpan<float> x, ReadOnlySpan<float> gamma, ReadOnlySpan<float> beta,
        ReadOnlySpan<float> runningMean, ReadOnlySpan<float> runningVar, Span<float> y, float epsilon = DefaultEpsilon) =>
        ForwardInferenceCpu(s, x, gamma, beta, runningMean, runningVar, y, epsilon, relu: true);

    private static void ForwardInferenceCpu(in BatchNorm2dShape s, ReadOnlySpan<float> x, ReadOnlySpan<float> gamma, ReadOnlySpan<float> beta,
        ReadOnlySpan<float> runningMean, ReadOnlySpan<float> runningVar, Span<float> y, float epsilon, bool relu)
    {
        s.Validate();
        RequireLength(x.Length, s.Length, nameof(x), "(N, C, H, W)");
        RequireLength(y.Length, s.Length, nameof(y), "(N, C, H, W)");
        RequireLength(gamma.Length, s.C, nameof(gamma), "(C)");
        RequireLength(beta.Length, s.C, nameof(beta), "(C)");
        RequireLength(runningMean.Length, s.C, nameof(runningMean), "(C)");
        RequireLength(runningVar.Length, s.C, nameof(runningVar), "(C)");
        var shape = s;
        fixed (float* px = x, py = y, pg = gamma, pb = beta, prm = runningMean, prv = runningVar)
        {
            nint ax = (nint)px, ay = (nint)py, ag = (nint)pg, ab = (nint)pb, arm = (nint)prm, arv = (nint)prv;
            ForEachChannel(shape, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (c) =>
            {
                int hw = shape.HW;
                float scale = (float)(((float*)ag)[c] / Math.Sqrt(((float*)arv)[c] + (double)epsilon));
                float mean = ((float*)arm)[c];
                float shift = ((float*)ab)[c];
                for (int n = 0; n < shape.N; n++)
                {
                    long offset = ((long)n * shape.C + c) * hw;
                    Normalize((float*)ax + offset, mean, scale, shift, (float*)ay + offset, hw, relu);
                }
            });
        }
    }

    /// <summary>
    /// Training backward: dx (N, C, H, W) = gamma * invStd / M * (M dy - sum dy - xhat * sum(dy xhat)),
    /// dgamma = sum(dy xhat), dbeta = sum(dy) (C), all overwritten. x, dy (N, C, H, W); gamma, saveMean,
    /// saveInvStd (C) as the training forward left them.
    /// </summary>
    public static void BackwardTrainingCpu(in BatchNorm2dShape s, ReadOnlySpan<float> x, ReadOnlySpan<float> dy, ReadOnlySpan<float> gamma,
        ReadOnlySpan<float> saveMean, ReadOnlySpan<float> saveInvStd, Span<float> dx, Span<float> dgamma, Span<float> dbeta) =>
        BackwardTrainingCpu(s, x, default, relu: false, dy, gamma, saveMean, saveInvStd, dx, dgamma, dbeta);

    /// <summary>
    /// Backward of <see cref="ForwardReluCpu"/>: dy is zeroed where y (the fused output) is not positive,
    /// plane by plane as it is read, then as <see cref="BackwardTrainingCpu(in BatchNorm2dShape, ReadOnlySpan{float}, ReadOnlySpan{float}, ReadOnlySpan{float}, ReadOnlySpan{float}, ReadOnlySpan{float}, Span{float}, Span{float}, Span{float})"/>.
    /// x, y, dy, dx (N, C, H, W); the rest (C).
    /// </summary>
    public static void BackwardReluCpu(in BatchNorm2dShape s, ReadOnlySpan<float> x, ReadOnlySpan<float> y, ReadOnlySpan<float> dy, ReadOnlySpan<float> gamma,
        ReadOnlySpan<float> saveMean, ReadOnlySpan<float> saveInvStd, Span<float> dx, Span<float> dgamma, Span<float> dbeta)
    {
        RequireLength(y.Length, s.Length, nameof(y), "(N, C, H, W)");
        BackwardTrainingCpu(s, x, y, relu: true, dy, gamma, saveMean, saveInvStd, dx, dgamma, dbeta);
    }

    private static void BackwardTrainingCpu(in BatchNorm2dShape s, ReadOnlySpan<float> x, ReadOnlySpan<float> reluOutput, bool relu, ReadOnlySpan<float> dy,
        ReadOnlySpan<float> gamma, ReadOnlySpan<float> saveMean, ReadOnlySpan<float> saveInvStd, Span<float> dx, Span<float> dgamma, Span<float> dbeta)
    {
        s.Validate();
        RequireLength(x.Length, s.Length, nameof(x), "(N, C, H, W)");
        RequireLength(dy.Length, s.Length, nameof(dy), "(N, C, H, W)");
        RequireLength(dx.Length, s.Length, nameof(dx), "(N, C, H, W)");
        RequireLength(gamma.Length, s.C, nameof(gamma), "(C)");
        RequireLength(saveMean.Length, s.C, nameof(saveMean), "(C)");
        RequireLength(saveInvStd.Length, s.C, nameof(saveInvStd), "(C)");
        RequireLength(dgamma.Length, s.C, nameof(dgamma), "(C)");
        RequireLength(dbeta.Length, s.C, nameof(dbeta), "(C)");
        var shape = s;
        fixed (float* px = x, pyr = reluOutput, pdy = dy, pdx = dx, pg = gamma, psm = saveMean, psi = saveInvStd, pdg = dgamma, pdb = dbeta)
        {
            nint ax = (nint)px, ayr = (nint)pyr, ady = (nint)pdy, adx = (nint)pdx, ag = (nint)pg, asm = (nint)psm, asi = (nint)psi, adg = (nint)pdg, adb = (nint)pdb;
            ForEachChannel(shape, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (c) =>
            {
                int hw = shape.HW;
                float mean = ((float*)asm)[c];
                float invStd = ((float*)asi)[c];
                double sumDy = 0;
                double sumDyCentered = 0;
                // With the ReLU fused, dy is masked by y > 0 in registers as it is read (the values
                // Elementwise.ReluBackward would write), so the arithmetic below is the unfused pair's.
                float* mask = relu ? (float*)ayr : null;
                for (int n = 0; n < shape.N; n++)
                {
                    long offset = ((long)n * shape.C + c) * hw;
                    SumAndCenteredDot((float*)ady + offset, mask is null ? null : mask + offset, (float*)ax + offset, hw, mean, out double sd, out double sdc);
                    sumDy += sd;
                    sumDyCentered += sdc;
                }
                double m = shape.CountPerChannel;
                double sumDyXhat = sumDyCentered * invStd;
                ((float*)adg)[c] = (float)sumDyXhat;
                ((float*)adb)[c] = (float)sumDy;
                double g = ((float*)ag)[c];
                // dx = a dy + b (x - mean) + k
                float a = (float)(g * invStd);
                float b = (float)(-g * invStd * invStd * sumDyXhat / m);
                float k = (float)(-g * invStd * sumDy / m);
                for (int n = 0; n < shape.N; n++)
                {
                    long offset = ((long)n * shape.C + c) * hw;
                    AffineCombine((float*)ady + offset, mask is null ? null : mask + offset, (float*)ax + offset, hw, mean, a, b, k, (float*)adx + offset);
                }
            });
        }
    }

    /// <summary>Evaluation-mode input gradient: dx = dy * gamma / sqrt(runningVar + eps). dy, dx (N, C, H, W); gamma, runningVar (C).</summary>
    public static void BackwardInferenceCpu(in BatchNorm2dShape s, ReadOnlySpan<float> dy, ReadOnlySpan<float> gamma, ReadOnlySpan<float> runningVar,
        Span<float> dx, float epsilon = DefaultEpsilon) =>
        BackwardInferenceCpu(s, default, relu: false, dy, gamma, runningVar, dx, epsilon);

    /// <summary>
    /// Backward of <see cref="ForwardInferenceReluCpu"/> in one pass: dx = (y &gt; 0 ? dy : 0) * gamma / sqrt(runningVar + eps), y the
    /// rectified output; bit-identical to Elementwise.ReluBackwardCpu(y, dy, dx) then <see cref="BackwardInferenceCpu(in BatchNorm2dShape, ReadOnlySpan{float}, ReadOnlySpan{float}, ReadOnlySpan{float}, Span{float}, float)"/>
    /// in place. y, dy, dx (N, C, H, W); dx may be dy; gamma, runningVar (C).
    /// </summary>
    public static void BackwardInferenceReluCpu(in BatchNorm2dShape s, ReadOnlySpan<float> y, ReadOnlySpan<float> dy, ReadOnlySpan<float> gamma,
        ReadOnlySpan<float> runningVar, Span<float> dx, float epsilon = DefaultEpsilon)
    {
        RequireLength(y.Length, s.Length, nameof(y), "(N, C, H, W)");
        BackwardInferenceCpu(s, y, relu: true, dy, gamma, runningVar, dx, epsilon);
    }

    private static void BackwardInferenceCpu(in BatchNorm2dShape s, ReadOnlySpan<float> reluOutput, bool relu, ReadOnlySpan<float> dy, ReadOnlySpan<float> gamma,
        ReadOnlySpan<float> runningVar, Span<float> dx, float epsilon)
    {
        s.Validate();
        RequireLength(dy.Length, s.Length, nameof(dy), "(N, C, H, W)");
        RequireLength(dx.Length, s.Length, nameof(dx), "(N, C, H, W)");
        RequireLength(gamma.Length, s.C, nameof(gamma), "(C)");
        RequireLength(runningVar.Length, s.C, nameof(runningVar), "(C)");
        var shape = s;
        fixed (float* pyr = reluOutput, pdy = dy, pdx = dx, pg = gamma, prv = runningVar)
        {
            nint ayr = (nint)pyr, ady = (nint)pdy, adx = (nint)pdx, ag = (nint)pg, arv = (nint)prv;
            ForEachChannel(shape, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (c) =>
            {
                int hw = shape.HW;
                float scale = (float)(((float*)ag)[c] / Math.Sqrt(((float*)arv)[c] + (double)epsilon));
                float* mask = relu ? (float*)ayr : null;
                for (int n = 0; n < shape.N; n++)
                {
                    long offset = ((long)n * shape.C + c) * hw;
                    MaskedScale((float*)ady + offset, mask is null ? null : mask + offset, scale, (float*)adx + offset, hw);
                }
            });
        }
    }

    // ---- SIMD helpers ----
    //
    // All AggressiveOptimization: the operators run a handful of times in benchmarks and the first steps,
    // where tier-0 code would be several times slower. The reductions keep Vector<T> (8 floats widened to
    // two 4-double halves on AVX2) so their summation order, and thus their bits, stay as they were.
    // A mask (the output of a fused ReLU, or null) zeroes dy where it is not positive, as Elementwise.ReluBackwardCpu.

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static double SumDouble(float* values, int length)
    {
        int i = 0;
        double sum = 0;
        if (Vector.IsHardwareAccelerated && length >= Vector<float>.Count)
        {
            var acc = Vector<double>.Zero;
            for (; i <= length - Vector<float>.Count; i += Vector<float>.Count)
            {
                Vector.Widen(Vector.Load(values + i), out var lo, out var hi);
                acc += lo + hi;
            }
            sum = Vector.Sum(acc);
        }
        for (; i < length; i++)
        {
            sum += values[i];
        }
        return sum;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static double SumSquaredDeviations(float* values, int length, double mean)
    {
        int i = 0;
        double sum = 0;
        if (Vector.IsHardwareAccelerated && length >= Vector<float>.Count)
        {
            var meanVector = new Vector<double>(mean);
            var acc = Vector<double>.Zero;
            for (; i <= length - Vector<float>.Count; i += Vector<float>.Count)
            {
                Vector.Widen(Vector.Load(values + i), out var lo, out var hi);
                lo -= meanVector;
                hi -= meanVector;
                acc += lo * lo + hi * hi;
            }
            sum = Vector.Sum(acc);
        }
        for (; i < length; i++)
        {
            double d = values[i] - mean;
            sum += d * d;
        }
        return sum;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void SumAndCenteredDot(float* dy, float* mask, float* x, int length, float mean, out double sumDy, out double sumDyCentered)
    {
        int i = 0;
        sumDy = 0;
        sumDyCentered = 0;
        if (Vector.IsHardwareAccelerated && length >= Vector<float>.Count)
        {
            var meanVector = new Vector<double>(mean);
            var accDy = Vector<double>.Zero;
            var accDot = Vector<double>.Zero;
            for (; i <= length - Vector<float>.Count; i += Vector<float>.Count)
            {
                var g = Masked(dy, mask, i);
                Vector.Widen(g, out var dyLo, out var dyHi);
                Vector.Widen(Vector.Load(x + i), out var xLo, out var xHi);
                accDy += dyLo + dyHi;
                accDot += dyLo * (xLo - meanVector) + dyHi * (xHi - meanVector);
            }
            sumDy = Vector.Sum(accDy);
            sumDyCentered = Vector.Sum(accDot);
        }
        for (; i < length; i++)
        {
            float g = mask == null || mask[i] > 0f ? dy[i] : 0f;
            sumDy += g;
            sumDyCentered += g * ((double)x[i] - mean);
        }
    }

    // dy[i .. i + Vector<float>.Count), zero where the mask (when given) is not positive
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector<float> Masked(float* dy, float* mask, int i) =>
        mask == null ? Vector.Load(dy + i) : Vector.ConditionalSelect(Vector.GreaterThan(Vector.Load(mask + i), Vector<float>.Zero), Vector.Load(dy + i), Vector<float>.Zero);

    // y = (x - mean) * scale + shift, then max(y, 0) when relu (as Elementwise.ReluForwardCpu)
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Normalize(float* x, float mean, float scale, float shift, float* y, int length, bool relu)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated && length >= Vector<float>.Count)
        {
            var meanVector = new Vector<float>(mean);
            var scaleVector = new Vector<float>(scale);
            var shiftVector = new Vector<float>(shift);
            for (; i <= length - Vector<float>.Count; i += Vector<float>.Count)
            {
                var v = (Vector.Load(x + i) - meanVector) * scaleVector + shiftVector;
                if (relu)
                {
                    v = Elementwise.Relu(v);
                }
                v.Store(y + i);
            }
        }
        for (; i < length; i++)
        {
            float v = (x[i] - mean) * scale + shift;
            y[i] = relu ? MathF.Max(v, 0f) : v;
        }
    }

    // dx = a g + b (x - mean) + k, g = dy masked
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void AffineCombine(float* dy, float* mask, float* x, int length, float mean, float a, float b, float k, float* dx)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated && length >= Vector<float>.Count)
        {
            var meanVector = new Vector<float>(mean);
            var aVector = new Vector<float>(a);
            var bVector = new Vector<float>(b);
            var kVector = new Vector<float>(k);
            for (; i <= length - Vector<float>.Count; i += Vector<float>.Count)
            {
                var g = Masked(dy, mask, i);
                (aVector * g + bVector * (Vector.Load(x + i) - meanVector) + kVector).Store(dx + i);
            }
        }
        for (; i < length; i++)
        {
            float g = mask == null || mask[i] > 0f ? dy[i] : 0f;
            dx[i] = a * g + b * (x[i] - mean) + k;
        }
    }

    // dx = g * scale, g = dy masked; dx may be dy
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void MaskedScale(float* dy, float* mask, float scale, float* dx, int length)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated && length >= Vector<float>.Count)
        {
            var scaleVector = new Vector<float>(scale);
            for (; i <= length - Vector<float>.Count; i += Vector<float>.Count)
            {
                var g = Masked(dy, mask, i);
                (g * scaleVector).Store(dx + i);
            }
        }
        for (; i < length; i++)
        {
            float g = mask == null || mask[i] > 0f ? dy[i] : 0f;
            dx[i] = g * scale;
        }
    }

    // The bodies passed here are marked AggressiveOptimization: tiered compilation would otherwise run them
    // unoptimised through short runs (benchmarks, the first training steps), where they dominate their operator.
    private static void ForEachChannel(in BatchNorm2dShape s, Action<int> body)
    {
        if (s.C == 1 || (long)s.Length < ParallelWorkThreshold)
        {
            for (int c = 0; c < s.C; c++)
            {
                body(c);
            }
        }
        else
        {
            Parallel.For(0, s.C, new ParallelOptions { MaxDegreeOfParallelism = Gemm.CpuMaxThreads }, body);
        }
    }

    private static void RequireLength(int actual, int expected, string name, string layout) =>
        ShapeCheck.RequireLength("BatchNorm2d", nameof(BatchNorm2dShape), actual, expected, name, layout);

    // ---- Kernels ----
    //
    // Training forward and backward are one kernel each, one block per channel: the per-channel sums
    // are reduced in double by BlockReduce.SumOfWarps: warp shuffles (5 steps per warp), then the 8 warp totals through
    // shared memory, each thread adding them in the same order (so every thread holds the same total
    // without a broadcast); the block then runs the element-wise pass of its channel (normalise, +ReLU;
    // or the input gradient, masked by ReLU's output) while the channel is still in L2. Statistics in
    // two passes (mean, then squared deviations) as the CPU reference. Evaluation-mode kernels are
    // grid-stride element-wise passes in float.

    private const int ReduceThreads = 256;
    private const int ReduceWarps = ReduceThreads / KernelContext.WarpSize;
    private const int ElementThreads = 256;
    private const int MaxElementBlocks = 4096;

    /// <summary>Training forward of one channel per block: statistics, running statistics, y = BN(x) (and max(0, .) when relu).</summary>
    [Kernel]
    private static void BnForwardFused(KernelContext ctx, View<float> x, View<float> gamma, View<float> beta, View<float> runningMean, View<float> runningVar,
        View<float> y, View<float> saveMean, View<float> saveInvStd, int n, int channels, int hw, float momentum, float epsilon, bool relu)
    {
        var warpScratch = ctx.Shared<double>(ReduceWarps);
        int c = ctx.BlockIdx.X;
        int t = ctx.ThreadIdx.X;
        int count = n * hw;
        double sum = 0.0;
        for (int i = t; i < count; i += ReduceThreads)
        {
            int image = i / hw;
            sum += x[(image * channels + c) * hw + (i - image * hw)];
        }
        double total = BlockReduce.SumOfWarps(ctx, sum, warpScratch);
        double mean = total / count;
        double squares = 0.0;
        for (int i = t; i < count; i += ReduceThreads)
        {
            int image = i / hw;
            double d = x[(image * channels + c) * hw + (i - image * hw)] - mean;
            squares += d * d;
        }
        double totalSquares = BlockReduce.SumOfWarps(ctx, squares, warpScratch);
        double variance = totalSquares / count;
        double invStd = 1.0 / Math.Sqrt(variance + epsilon);
        if (t == 0)
        {
            BnStoreStatistics(saveMean, saveInvStd, runningMean, runningVar, c, mean, variance, invStd, count, momentum);
        }
        BnNormalizeRange(x, gamma, beta, y, c, mean, invStd, t, count, ReduceThreads, channels, hw, relu);
    }

    /// <summary>w'[i] = w[i] s[k], b'[k] = beta[k] - mean[k] s[k] with s[k] = gamma[k] / sqrt(var[k] + eps), k = i / perChannel.</summary>
    [Kernel]
    private static void BnFoldIntoConvolution(KernelContext ctx, View<float> weight, View<float> gamma, View<float> beta, View<float> runningMean, View<float> runningVar,
        View<float> foldedWeight, View<float> foldedBias, int perChannel, float epsilon)
    {
        for (int i = ctx.GlobalX; i < foldedWeight.Length; i += ctx.GridStrideX)
        {
            int k = i / perChannel;
            foldedWeight[i] = weight[i] * (gamma[k] / MathF.Sqrt(runningVar[k] + epsilon));
            if (i < foldedBias.Length)
            {
                foldedBias[i] = beta[i] - runningMean[i] * (gamma[i] / MathF.Sqrt(runningVar[i] + epsilon));
            }
        }
    }

    [Kernel]
    private static void BnInference(KernelContext ctx, View<float> x, View<float> gamma, View<float> beta, View<float> runningMean, View<float> runningVar,
        View<float> y, int channels, int hw, float epsilon)
    {
        for (int i = ctx.GlobalX; i < y.Length; i += ctx.GridStrideX)
        {
            int c = i / hw % channels;
            float scale = gamma[c] / MathF.Sqrt(runningVar[c] + epsilon);
            y[i] = (x[i] - runningMean[c]) * scale + beta[c];
        }
    }

    /// <summary>
    /// Training backward of one channel per block: dbeta = sum(g), dgamma = invStd * sum(g (x - mean)),
    /// dx = a g + b (x - mean) + k, where g = dy, or dy masked by y &gt; 0 when relu (y: the fused forward's output).
    /// </summary>
    [Kernel]
    private static void BnBackwardFused(KernelContext ctx, View<float> x, View<float> y, View<float> dy, View<float> gamma, View<float> mean, View<float> invStd,
        View<float> dx, View<float> dgamma, View<float> dbeta, int n, int channels, int hw, bool relu)
    {
        var warpScratch = ctx.Shared<double>(ReduceWarps);
        int c = ctx.BlockIdx.X;
        int t = ctx.ThreadIdx.X;
        int count = n * hw;
        float meanF = mean[c];
        double sumDy = 0.0;
        double sumDot = 0.0;
        for (int i = t; i < count; i += ReduceThreads)
        {
            int image = i / hw;
            int at = (image * channels + c) * hw + (i - image * hw);
            double g = relu && y[at] <= 0f ? 0.0 : dy[at];
            sumDy += g;
            sumDot += g * ((double)x[at] - meanF);
        }
        double totalDy = BlockReduce.SumOfWarps(ctx, sumDy, warpScratch);
        double totalDot = BlockReduce.SumOfWarps(ctx, sumDot, warpScratch);
        if (t == 0)
        {
            dgamma[c] = (float)(totalDot * invStd[c]);
            dbeta[c] = (float)totalDy;
        }
        BnBackwardRange(x, y, dy, gamma, dx, c, meanF, invStd[c], totalDy, totalDot, count, t, count, ReduceThreads, channels, hw, relu);
    }

    // Saved mean and inverse std of channel c, and its running estimates (unbiased variance), as the CPU reference.
    private static void BnStoreStatistics(View<float> saveMean, View<float> saveInvStd, View<float> runningMean, View<float> runningVar,
        int c, double mean, double variance, double invStd, int count, float momentum)
    {
        saveMean[c] = (float)mean;
        saveInvStd[c] = (float)invStd;
        runningMean[c] = (float)((1.0 - momentum) * runningMean[c] + momentum * mean);
        runningVar[c] = (float)((1.0 - momentum) * runningVar[c] + momentum * (variance * count / (count - 1)));
    }

    // y = BN(x) (max(0, .) when relu) for elements i = begin, begin + step, ... < end of channel c (i = (image, pixel)).
    private static void BnNormalizeRange(View<float> x, View<float> gamma, View<float> beta, View<float> y, int c, double mean, double invStd,
        int begin, int end, int step, int channels, int hw, bool relu)
    {
        // The CPU reference's float factors: scale = (float)(gamma * invStd), mean rounded to float.
        float scale = (float)(gamma[c] * invStd);
        float shift = beta[c];
        float meanF = (float)mean;
        for (int i = begin; i < end; i += step)
        {
            int image = i / hw;
            int at = (image * channels + c) * hw + (i - image * hw);
            float v = (x[at] - meanF) * scale + shift;
            y[at] = relu ? MathF.Max(v, 0f) : v;
        }
    }

    // dx of channel c for elements i = begin, begin + step, ... < end, given the channel's sum(g) and sum(g (x - mean)).
    private static void BnBackwardRange(View<float> x, View<float> y, View<float> dy, View<float> gamma, View<float> dx, int c, float meanF, double istd,
        double totalDy, double totalDot, int count, int begin, int end, int step, int channels, int hw, bool relu)
    {
        // The CPU reference's factors: dx = a dy + b (x - mean) + k, each rounded to float.
        double sumDyXhat = totalDot * istd;
        double gm = gamma[c];
        float a = (float)(gm * istd);
        float b = (float)(-gm * istd * istd * sumDyXhat / count);
        float k = (float)(-gm * istd * totalDy / count);
        for (int i = begin; i < end; i += step)
        {
            int image = i / hw;
            int at = (image * channels + c) * hw + (i - image * hw);
            float g = relu && y[at] <= 0f ? 0f : dy[at];
            dx[at] = a * g + b * (x[at] - meanF) + k;
        }
    }

    // ---- Split channels: several blocks per channel for large feature maps ----
    //
    // One block per channel leaves most of a large GPU idle when channels are few and maps large (bn1 at
    // 224x224: 64 blocks over 802816 values each). Above 2 BnSliceMinimum values per channel, a channel is
    // cut into slices, one block each (grid slices x channels): BnSliceSums writes each slice's partial
    // sums in double, and every block of the next launch adds its channel's partials in slice order, so
    // the result is deterministic. Forward: sums, squared deviations, normalise (three launches); backward:
    // sums, input gradient (two).

    private const int BnSliceMinimum = 8192;
    private const int BnMaxSlices = 64;
    private const int SliceSums = 0;
    private const int SliceSquares = 1;
    private const int SliceGradients = 2;

    /// <summary>
    /// Partial sums of slice BlockIdx.X of channel BlockIdx.Y into partial[(c slices + slice) 2 + 0/1]:
    /// mode SliceSums: sum x into 0; SliceSquares: sum (x - mean)^2 into 1, mean from the 0 entries;
    /// SliceGradients: sum g into 0 and sum g (x - mean) into 1, g = dy (masked by y &gt; 0 when relu), mean = saved mean.
    /// </summary>
    [Kernel]
    private static void BnSliceSums(KernelContext ctx, int mode, View<float> x, View<float> y, View<float> dy, View<float> savedMean, View<double> partial,
        int n, int channels, int hw, int sliceLength, bool relu)
    {
        var warpScratch = ctx.Shared<double>(ReduceWarps);
        int slices = ctx.GridDim.X;
        int c = ctx.BlockIdx.Y;
        int t = ctx.ThreadIdx.X;
        int count = n * hw;
        int begin = ctx.BlockIdx.X * sliceLength;
        int end = Math.Min(count, begin + sliceLength);
        double mean = mode == SliceSquares ? BnSliceTotal(partial, c, slices, 0) / count : mode == SliceGradients ? savedMean[c] : 0.0;
        double first = 0.0;
        double second = 0.0;
        for (int i = begin + t; i < end; i += ReduceThreads)
        {
            int image = i / hw;
            int at = (image * channels + c) * hw + (i - image * hw);
            double d = (double)x[at] - mean;
            if (mode == SliceSums)
            {
                first += x[at];
            }
            else if (mode == SliceSquares)
            {
                second += d * d;
            }
            else
            {
                double g = relu && y[at] <= 0f ? 0.0 : dy[at];
                first += g;
                second += g * d;
            }
        }
        double totalFirst = BlockReduce.SumOfWarps(ctx, first, warpScratch);
        double totalSecond = BlockReduce.SumOfWarps(ctx, second, warpScratch);
        if (t == 0)
        {
            int at = (c * slices + ctx.BlockIdx.X) * 2;
            if (mode != SliceSquares)
            {
                partial[at] = totalFirst;
            }
            if (mode != SliceSums)
            {
                partial[at + 1] = totalSecond;
            }
        }
    }

    /// <summary>Training forward, last launch of a split channel: statistics from the partial sums (slice order), then y of this block's slice. Launch bounds: 32 registers, 8 blocks (all 64 warps) per SM.</summary>
    [Kernel(MaxThreadsPerBlock = ReduceThreads, MinBlocksPerMultiprocessor = 8)]
    private static void BnSliceNormalize(KernelContext ctx, View<float> x, View<float> gamma, View<float> beta, View<float> runningMean, View<float> runningVar,
        View<float> y, View<float> saveMean, View<float> saveInvStd, View<double> partial, int n, int channels, int hw, int sliceLength,
        float momentum, float epsilon, bool relu)
    {
        int slices = ctx.GridDim.X;
        int c = ctx.BlockIdx.Y;
        int count = n * hw;
        double mean = BnSliceTotal(partial, c, slices, 0) / count;
        double variance = BnSliceTotal(partial, c, slices, 1) / count;
        double invStd = 1.0 / Math.Sqrt(variance + epsilon);
        if (ctx.BlockIdx.X == 0 && ctx.ThreadIdx.X == 0)
        {
            BnStoreStatistics(saveMean, saveInvStd, runningMean, runningVar, c, mean, variance, invStd, count, momentum);
        }
        int begin = ctx.BlockIdx.X * sliceLength;
        BnNormalizeRange(x, gamma, beta, y, c, mean, invStd, begin + ctx.ThreadIdx.X, Math.Min(count, begin + sliceLength), ReduceThreads, channels, hw, relu);
    }

    /// <summary>Training backward, last launch of a split channel: dgamma, dbeta from the partial sums (slice order), then dx of this block's slice.</summary>
    [Kernel(MaxThreadsPerBlock = ReduceThreads, MinBlocksPerMultiprocessor = 8)]
    private static void BnSliceBackwardData(KernelContext ctx, View<float> x, View<float> y, View<float> dy, View<float> gamma, View<float> mean, View<float> invStd,
        View<double> partial, View<float> dx, View<float> dgamma, View<float> dbeta, int n, int channels, int hw, int sliceLength, bool relu)
    {
        int slices = ctx.GridDim.X;
        int c = ctx.BlockIdx.Y;
        int count = n * hw;
        double totalDy = BnSliceTotal(partial, c, slices, 0);
        double totalDot = BnSliceTotal(partial, c, slices, 1);
        if (ctx.BlockIdx.X == 0 && ctx.ThreadIdx.X == 0)
        {
            dgamma[c] = (float)(totalDot * invStd[c]);
            dbeta[c] = (float)totalDy;
        }
        int begin = ctx.BlockIdx.X * sliceLength;
        BnBackwardRange(x, y, dy, gamma, dx, c, mean[c], invStd[c], totalDy, totalDot, count, begin + ctx.ThreadIdx.X, Math.Min(count, begin + sliceLength),
            ReduceThreads, channels, hw, relu);
    }

    // Sum over the slices of channel c of partial entry `which`, in slice order (every block gets the same bits).
    private static double BnSliceTotal(View<double> partial, int c, int slices, int which)
    {
        double total = 0.0;
        for (int s = 0; s < slices; s++)
        {
            total += partial[(c * slices + s) * 2 + which];
        }
        return total;
    }

    /// <summary>Blocks per channel of the training kernels: 1 (the fused kernels) below 2 BnSliceMinimum values per channel.</summary>
    internal static int ChannelSlices(in BatchNorm2dShape s) =>
        s.CountPerChannel < 2 * BnSliceMinimum ? 1 : Math.Min(BnMaxSlices, s.CountPerChannel / BnSliceMinimum);

    private static int SliceLength(in BatchNorm2dShape s, int slices) => (s.CountPerChannel + slices - 1) / slices;

    private static LaunchConfig SliceConfig(in BatchNorm2dShape s, int slices) => new(new Dim3(slices, s.C), new Dim3(ReduceThreads));

    [Kernel]
    private static void BnBackwardInference(KernelContext ctx, View<float> dy, View<float> gamma, View<float> runningVar, View<float> dx,
        int channels, int hw, float epsilon)
    {
        for (int i = ctx.GlobalX; i < dx.Length; i += ctx.GridStrideX)
        {
            int c = i / hw % channels;
            dx[i] = dy[i] * (gamma[c] / MathF.Sqrt(runningVar[c] + epsilon));
        }
    }

    /// <summary>One block per channel for the per-channel sums.</summary>
    private static LaunchConfig ChannelConfig(in BatchNorm2dShape s) => new(new Dim3(s.C), new Dim3(ReduceThreads));

    [LaunchShapes]
    private static IEnumerable<LaunchShape> LaunchShapes()
    {
        foreach (var (layer, conv) in ResNet18Shapes.Convolutions)
        {
            yield return new LaunchShape(BnFoldIntoConvolutionKernel.Definition, layer + " folded into its convolution", ElementConfig(conv.WeightLength));
        }
        foreach (var (layer, s) in ResNet18Shapes.Activations)
        {
            int slices = ChannelSlices(s);
            if (slices == 1)
            {
                yield return new LaunchShape(BnForwardFusedKernel.Definition, layer, ChannelConfig(s));
                yield return new LaunchShape(BnBackwardFusedKernel.Definition, layer, ChannelConfig(s));
            }
            else
            {
                foreach (var kernel in new[] { BnSliceSumsKernel.Definition, BnSliceNormalizeKernel.Definition, BnSliceBackwardDataKernel.Definition })
                {
                    yield return new LaunchShape(kernel, layer + $", {slices} slices per channel", SliceConfig(s, slices));
                }
            }
            foreach (var kernel in new[] { BnInferenceKernel.Definition, BnBackwardInferenceKernel.Definition })
            {
                yield return new LaunchShape(kernel, layer, ElementConfig(s.Length));
            }
        }
    }

    private const string PartialSums = "BatchNorm2d partial sums";

    private static LaunchConfig ElementConfig(int length) =>
        new(new Dim3(Math.Clamp((length + ElementThreads - 1) / ElementThreads, 1, MaxElementBlocks)), new Dim3(ElementThreads));

    private static void ForwardTrainingKernels(Accelerator accelerator, in BatchNorm2dShape s, View<float> x, View<float> gamma, View<float> beta,
        View<float> runningMean, View<float> runningVar, View<float> y, View<float> saveMean, View<float> saveInvStd, float momentum, float epsilon, bool relu)
    {
        s.Validate();
        if (s.CountPerChannel < 2)
        {
            throw new ArgumentException($"BatchNorm2d: training needs more than one value per channel ({s}); use a batch of at least 2 or evaluation mode.", nameof(s));
        }
        RequireViews(s, x, y, gamma, beta, runningMean, runningVar, saveMean, saveInvStd);
        int slices = ChannelSlices(s);
        if (slices == 1)
        {
            BnForwardFusedKernel.Launch(accelerator, ChannelConfig(s), x, gamma, beta, runningMean, runningVar, y, saveMean, saveInvStd,
                s.N, s.C, s.HW, momentum, epsilon, relu);
            return;
        }
        var partial = Workspace.Get<double>(accelerator, PartialSums, 2 * s.C * slices);
        var config = SliceConfig(s, slices);
        int sliceLength = SliceLength(s, slices);
        BnSliceSumsKernel.Launch(accelerator, config, SliceSums, x, x, x, saveMean, partial, s.N, s.C, s.HW, sliceLength, false);
        BnSliceSumsKernel.Launch(accelerator, config, SliceSquares, x, x, x, saveMean, partial, s.N, s.C, s.HW, sliceLength, false);
        BnSliceNormalizeKernel.Launch(accelerator, config, x, gamma, beta, runningMean, runningVar, y, saveMean, saveInvStd, partial,
            s.N, s.C, s.HW, sliceLength, momentum, epsilon, relu);
    }

    private static void ForwardInferenceKernels(Accelerator accelerator, in BatchNorm2dShape s, View<float> x, View<float> gamma, View<float> beta,
        View<float> runningMean, View<float> runningVar, View<float> y, float epsilon)
    {
        s.Validate();
        RequireViews(s, x, y, gamma, beta, runningMean, runningVar);
        BnInferenceKernel.Launch(accelerator, ElementConfig(s.Length), x, gamma, beta, runningMean, runningVar, y, s.C, s.HW, epsilon);
    }

    /// <summary>y: the fused forward's output when relu (its mask); unread otherwise (callers pass dy).</summary>
    private static void BackwardTrainingKernels(Accelerator accelerator, in BatchNorm2dShape s, View<float> x, View<float> y, View<float> dy, View<float> gamma,
        View<float> saveMean, View<float> saveInvStd, View<float> dx, View<float> dgamma, View<float> dbeta, bool relu)
    {
        s.Validate();
        RequireViews(s, x, dy, gamma, saveMean, saveInvStd, dgamma, dbeta);
        RequireLength(dx.Length, s.Length, nameof(dx), "(N, C, H, W)");
        RequireLength(y.Length, s.Length, nameof(y), "(N, C, H, W)");
        int slices = ChannelSlices(s);
        if (slices == 1)
        {
            BnBackwardFusedKernel.Launch(accelerator, ChannelConfig(s), x, y, dy, gamma, saveMean, saveInvStd, dx, dgamma, dbeta,
                s.N, s.C, s.HW, relu);
            return;
        }
        var partial = Workspace.Get<double>(accelerator, PartialSums, 2 * s.C * slices);
        var config = SliceConfig(s, slices);
        int sliceLength = SliceLength(s, slices);
        BnSliceSumsKernel.Launch(accelerator, config, SliceGradients, x, y, dy, saveMean, partial, s.N, s.C, s.HW, sliceLength, relu);
        BnSliceBackwardDataKernel.Launch(accelerator, config, x, y, dy, gamma, saveMean, saveInvStd, partial, dx, dgamma, dbeta,
            s.N, s.C, s.HW, sliceLength, relu);
    }

    private static void BackwardInferenceKernels(Accelerator accelerator, in BatchNorm2dShape s, View<float> dy, View<float> gamma, View<float> runningVar,
        View<float> dx, float epsilon)
    {
        s.Validate();
        RequireViews(s, dy, dx, gamma, runningVar);
        BnBackwardInferenceKernel.Launch(accelerator, ElementConfig(s.Length), dy, gamma, runningVar, dx, s.C, s.HW, epsilon);
    }

    // The first two views are (N, C, H, W), the rest (C).
    private static void RequireViews(in BatchNorm2dShape s, View<float> full0, View<float> full1, params ReadOnlySpan<View<float>> perChannel)
    {
        RequireLength(full0.Length, s.Length, "x", "(N, C, H, W)");
        RequireLength(full1.Length, s.Length, "y/dy", "(N, C, H, W)");
        foreach (var view in perChannel)
        {
            RequireLength(view.Length, s.C, "a per-channel view", "(C)");
        }
    }

    // ---- Self-tests (ilgpuoct selftest) ----

    [SelfTests]
    private static IEnumerable<SelfTestCase> SelfTests()
    {
        foreach (var (channels, perChannel) in new[] { (5, 27), (64, 576) })
        {
            int n = channels * perChannel;
            // arrays: 0 weight, 1 gamma, 2 beta, 3 running mean, 4 running var, 5 folded weight, 6 folded bias
            yield return new SelfTestCase("BatchNorm2d.FoldIntoConvolution", $"w({channels},{perChannel})", (acc, seed) => OperatorSelfTest.Compare(acc,
                [OperatorSelfTest.Random(seed, n), OperatorSelfTest.Random(seed + 1, channels), OperatorSelfTest.Random(seed + 2, channels),
                 OperatorSelfTest.Random(seed + 3, channels), Shift(OperatorSelfTest.Random(seed + 4, channels, 0.5f), 1f), new float[n], new float[channels]],
                [5, 6],
                (a, v) => FoldIntoConvolution(a, channels, v[0], v[1], v[2], v[3], v[4], v[5], v[6]),
                h => FoldIntoConvolutionCpu(channels, h[0], h[1], h[2], h[3], h[4], h[5], h[6]), 1e-6));
        }
        // (3, 2, 101, 103): 31209 values per channel, 3 slices per channel (the split kernels), the last one ragged.
        foreach (var s in new[] { new BatchNorm2dShape(4, 6, 5, 7), new BatchNorm2dShape(8, 16, 14, 14), new BatchNorm2dShape(64, 8, 1, 1), new BatchNorm2dShape(3, 2, 101, 103) })
        {
            string shape = $"({s.N},{s.C},{s.H},{s.W})";
            int c = s.C;
            // arrays: 0 x, 1 gamma, 2 beta, 3 running mean, 4 running var, 5 y, 6 save mean, 7 save inv std
            yield return new SelfTestCase("BatchNorm2d.ForwardTraining", shape, (acc, seed) => OperatorSelfTest.Compare(acc,
                [Shift(OperatorSelfTest.Random(seed, s.Length, 2f), 0.5f), OperatorSelfTest.Random(seed + 1, c), OperatorSelfTest.Random(seed + 2, c),
                 OperatorSelfTest.Random(seed + 3, c), Shift(OperatorSelfTest.Random(seed + 4, c, 0.5f), 1f), new float[s.Length], new float[c], new float[c]],
                [3, 4, 5, 6, 7],
                (a, v) => ForwardTraining(a, s, v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]),
                h => ForwardTrainingCpu(s, h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]), 1e-4));
            yield return new SelfTestCase("BatchNorm2d.ForwardRelu", shape, (acc, seed) => OperatorSelfTest.Compare(acc,
                [Shift(OperatorSelfTest.Random(seed, s.Length, 2f), 0.5f), OperatorSelfTest.Random(seed + 1, c), OperatorSelfTest.Random(seed + 2, c),
                 OperatorSelfTest.Random(seed + 3, c), Shift(OperatorSelfTest.Random(seed + 4, c, 0.5f), 1f), new float[s.Length], new float[c], new float[c]],
                [3, 4, 5, 6, 7],
                (a, v) => ForwardRelu(a, s, v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]),
                h => ForwardReluCpu(s, h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]), 1e-4));
            yield return new SelfTestCase("BatchNorm2d.ForwardInference", shape, (acc, seed) => OperatorSelfTest.Compare(acc,
                [OperatorSelfTest.Random(seed, s.Length, 2f), OperatorSelfTest.Random(seed + 1, c), OperatorSelfTest.Random(seed + 2, c),
                 OperatorSelfTest.Random(seed + 3, c), Shift(OperatorSelfTest.Random(seed + 4, c, 0.5f), 1f), new float[s.Length]],
                [5],
                (a, v) => ForwardInference(a, s, v[0], v[1], v[2], v[3], v[4], v[5]),
                h => ForwardInferenceCpu(s, h[0], h[1], h[2], h[3], h[4], h[5]), 1e-5));
            // arrays: 0 x, 1 dy, 2 gamma, 3 mean, 4 inv std, 5 dx, 6 dgamma, 7 dbeta
            yield return new SelfTestCase("BatchNorm2d.BackwardTraining", shape, (acc, seed) => OperatorSelfTest.Compare(acc,
                [OperatorSelfTest.Random(seed, s.Length, 2f), OperatorSelfTest.Random(seed + 1, s.Length), OperatorSelfTest.Random(seed + 2, c),
                 OperatorSelfTest.Random(seed + 3, c, 0.5f), Shift(OperatorSelfTest.Random(seed + 4, c, 0.5f), 1f), new float[s.Length], new float[c], new float[c]],
                [5, 6, 7],
                (a, v) => BackwardTraining(a, s, v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]),
                h => BackwardTrainingCpu(s, h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]), 1e-5 * Math.Sqrt(s.CountPerChannel) + 1e-5));
            // arrays: 0 x, 1 y (a ReLU output: about half zeros), 2 dy, 3 gamma, 4 mean, 5 inv std, 6 dx, 7 dgamma, 8 dbeta
            yield return new SelfTestCase("BatchNorm2d.BackwardRelu", shape, (acc, seed) => OperatorSelfTest.Compare(acc,
                [OperatorSelfTest.Random(seed, s.Length, 2f), Relu(OperatorSelfTest.Random(seed + 5, s.Length)), OperatorSelfTest.Random(seed + 1, s.Length), OperatorSelfTest.Random(seed + 2, c),
                 OperatorSelfTest.Random(seed + 3, c, 0.5f), Shift(OperatorSelfTest.Random(seed + 4, c, 0.5f), 1f), new float[s.Length], new float[c], new float[c]],
                [6, 7, 8],
                (a, v) => BackwardRelu(a, s, v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8]),
                h => BackwardReluCpu(s, h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8]), 1e-5 * Math.Sqrt(s.CountPerChannel) + 1e-5));
            yield return new SelfTestCase("BatchNorm2d.ForwardInferenceRelu", shape, (acc, seed) => OperatorSelfTest.Compare(acc,
                [OperatorSelfTest.Random(seed, s.Length, 2f), OperatorSelfTest.Random(seed + 1, c), OperatorSelfTest.Random(seed + 2, c),
                 OperatorSelfTest.Random(seed + 3, c), Shift(OperatorSelfTest.Random(seed + 4, c, 0.5f), 1f), new float[s.Length]],
                [5],
                (a, v) => ForwardInferenceRelu(a, s, v[0], v[1], v[2], v[3], v[4], v[5]),
                h => ForwardInferenceReluCpu(s, h[0], h[1], h[2], h[3], h[4], h[5]), 1e-5));
            // arrays: 0 y (a ReLU output), 1 dy, 2 gamma, 3 running var, 4 dx
            yield return new SelfTestCase("BatchNorm2d.BackwardInferenceRelu", shape, (acc, seed) => OperatorSelfTest.Compare(acc,
                [Relu(OperatorSelfTest.Random(seed + 5, s.Length)), OperatorSelfTest.Random(seed, s.Length), OperatorSelfTest.Random(seed + 1, c),
                 Shift(OperatorSelfTest.Random(seed + 2, c, 0.5f), 1f), new float[s.Length]],
                [4],
                (a, v) => BackwardInferenceRelu(a, s, v[0], v[1], v[2], v[3], v[4]),
                h => BackwardInferenceReluCpu(s, h[0], h[1], h[2], h[3], h[4]), 1e-5));
            yield return new SelfTestCase("BatchNorm2d.BackwardInference", shape, (acc, seed) => OperatorSelfTest.Compare(acc,
                [OperatorSelfTest.Random(seed, s.Length), OperatorSelfTest.Random(seed + 1, c), Shift(OperatorSelfTest.Random(seed + 2, c, 0.5f), 1f), new float[s.Length]],
                [3],
                (a, v) => BackwardInference(a, s, v[0], v[1], v[2], v[3]),
                h => BackwardInferenceCpu(s, h[0], h[1], h[2], h[3]), 1e-5));
        }
    }

    private static float[] Relu(float[] values)
    {
        System.Numerics.Tensors.TensorPrimitives.Max(values, 0f, values);
        return values;
    }

    private static float[] Shift(float[] values, float shift)
    {
        for (int i = 0; i < values.Length; i++)
        {
            values[i] += shift;
        }
        return values;
    }
}
