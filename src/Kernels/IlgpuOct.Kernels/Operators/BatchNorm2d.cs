using System.Numerics;

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

    /// <summary>Training forward on the accelerator. Shapes as <see cref="ForwardTrainingCpu"/>.</summary>
    public static void ForwardTraining(Accelerator accelerator, in BatchNorm2dShape s, View<float> x, View<float> gamma, View<float> beta,
        View<float> runningMean, View<float> runningVar, View<float> y, View<float> saveMean, View<float> saveInvStd,
        float momentum = DefaultMomentum, float epsilon = DefaultEpsilon)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        if (accelerator.Kind == AcceleratorKind.Cpu)
        {
            ForwardTrainingCpu(s, x.AsSpan(), gamma.AsSpan(), beta.AsSpan(), runningMean.AsSpan(), runningVar.AsSpan(), y.AsSpan(), saveMean.AsSpan(), saveInvStd.AsSpan(), momentum, epsilon);
            return;
        }
        ForwardTrainingKernels(accelerator, s, x, gamma, beta, runningMean, runningVar, y, saveMean, saveInvStd, momentum, epsilon);
    }

    /// <summary>Evaluation forward on the accelerator. Shapes as <see cref="ForwardInferenceCpu"/>.</summary>
    public static void ForwardInference(Accelerator accelerator, in BatchNorm2dShape s, View<float> x, View<float> gamma, View<float> beta,
        View<float> runningMean, View<float> runningVar, View<float> y, float epsilon = DefaultEpsilon)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        if (accelerator.Kind == AcceleratorKind.Cpu)
        {
            ForwardInferenceCpu(s, x.AsSpan(), gamma.AsSpan(), beta.AsSpan(), runningMean.AsSpan(), runningVar.AsSpan(), y.AsSpan(), epsilon);
            return;
        }
        ForwardInferenceKernels(accelerator, s, x, gamma, beta, runningMean, runningVar, y, epsilon);
    }

    /// <summary>Training backward on the accelerator. Shapes as <see cref="BackwardTrainingCpu"/>.</summary>
    public static void BackwardTraining(Accelerator accelerator, in BatchNorm2dShape s, View<float> x, View<float> dy, View<float> gamma,
        View<float> saveMean, View<float> saveInvStd, View<float> dx, View<float> dgamma, View<float> dbeta)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        if (accelerator.Kind == AcceleratorKind.Cpu)
        {
            BackwardTrainingCpu(s, x.AsSpan(), dy.AsSpan(), gamma.AsSpan(), saveMean.AsSpan(), saveInvStd.AsSpan(), dx.AsSpan(), dgamma.AsSpan(), dbeta.AsSpan());
            return;
        }
        BackwardTrainingKernels(accelerator, s, x, dy, gamma, saveMean, saveInvStd, dx, dgamma, dbeta);
    }

    /// <summary>Evaluation-mode input gradient on the accelerator. Shapes as <see cref="BackwardInferenceCpu"/>.</summary>
    public static void BackwardInference(Accelerator accelerator, in BatchNorm2dShape s, View<float> dy, View<float> gamma, View<float> runningVar,
        View<float> dx, float epsilon = DefaultEpsilon)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        if (accelerator.Kind == AcceleratorKind.Cpu)
        {
            BackwardInferenceCpu(s, dy.AsSpan(), gamma.AsSpan(), runningVar.AsSpan(), dx.AsSpan(), epsilon);
            return;
        }
        BackwardInferenceKernels(accelerator, s, dy, gamma, runningVar, dx, epsilon);
    }

    // ---- CPU implementation ----

    /// <summary>
    /// Training forward. x, y (N, C, H, W); gamma, beta (C); runningMean, runningVar (C) updated in
    /// place: r = (1 - momentum) r + momentum * batch statistic (variance unbiased, n / (n - 1));
    /// saveMean, saveInvStd (C) receive the batch mean and 1/sqrt(biased var + eps) for the backward pass.
    /// </summary>
    public static void ForwardTrainingCpu(in BatchNorm2dShape s, ReadOnlySpan<float> x, ReadOnlySpan<float> gamma, ReadOnlySpan<float> beta,
        Span<float> runningMean, Span<float> runningVar, Span<float> y, Span<float> saveMean, Span<float> saveInvStd,
        float momentum = DefaultMomentum, float epsilon = DefaultEpsilon)
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
            ForEachChannel(shape, c =>
            {
                int hw = shape.HW;
                long count = shape.CountPerChannel;
                double sum = 0;
                for (int n = 0; n < shape.N; n++)
                {
                    sum += SumDouble(new ReadOnlySpan<float>((float*)ax + ((long)n * shape.C + c) * hw, hw));
                }
                double mean = sum / count;
                double squares = 0;
                for (int n = 0; n < shape.N; n++)
                {
                    squares += SumSquaredDeviations(new ReadOnlySpan<float>((float*)ax + ((long)n * shape.C + c) * hw, hw), mean);
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
                    Normalize(new ReadOnlySpan<float>((float*)ax + offset, hw), meanF, scale, shift, new Span<float>((float*)ay + offset, hw));
                }
            });
        }
    }

    /// <summary>Evaluation forward: y = (x - runningMean) * gamma / sqrt(runningVar + eps) + beta. x, y (N, C, H, W); the rest (C).</summary>
    public static void ForwardInferenceCpu(in BatchNorm2dShape s, ReadOnlySpan<float> x, ReadOnlySpan<float> gamma, ReadOnlySpan<float> beta,
        ReadOnlySpan<float> runningMean, ReadOnlySpan<float> runningVar, Span<float> y, float epsilon = DefaultEpsilon)
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
            ForEachChannel(shape, c =>
            {
                int hw = shape.HW;
                float scale = (float)(((float*)ag)[c] / Math.Sqrt(((float*)arv)[c] + (double)epsilon));
                float mean = ((float*)arm)[c];
                float shift = ((float*)ab)[c];
                for (int n = 0; n < shape.N; n++)
                {
                    long offset = ((long)n * shape.C + c) * hw;
                    Normalize(new ReadOnlySpan<float>((float*)ax + offset, hw), mean, scale, shift, new Span<float>((float*)ay + offset, hw));
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
        ReadOnlySpan<float> saveMean, ReadOnlySpan<float> saveInvStd, Span<float> dx, Span<float> dgamma, Span<float> dbeta)
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
        fixed (float* px = x, pdy = dy, pdx = dx, pg = gamma, psm = saveMean, psi = saveInvStd, pdg = dgamma, pdb = dbeta)
        {
            nint ax = (nint)px, ady = (nint)pdy, adx = (nint)pdx, ag = (nint)pg, asm = (nint)psm, asi = (nint)psi, adg = (nint)pdg, adb = (nint)pdb;
            ForEachChannel(shape, c =>
            {
                int hw = shape.HW;
                float mean = ((float*)asm)[c];
                float invStd = ((float*)asi)[c];
                double sumDy = 0;
                double sumDyCentered = 0;
                for (int n = 0; n < shape.N; n++)
                {
                    long offset = ((long)n * shape.C + c) * hw;
                    SumAndCenteredDot(new ReadOnlySpan<float>((float*)ady + offset, hw), new ReadOnlySpan<float>((float*)ax + offset, hw), mean, out double sd, out double sdc);
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
                    AffineCombine(new ReadOnlySpan<float>((float*)ady + offset, hw), new ReadOnlySpan<float>((float*)ax + offset, hw), mean, a, b, k,
                        new Span<float>((float*)adx + offset, hw));
                }
            });
        }
    }

    /// <summary>Evaluation-mode input gradient: dx = dy * gamma / sqrt(runningVar + eps). dy, dx (N, C, H, W); gamma, runningVar (C).</summary>
    public static void BackwardInferenceCpu(in BatchNorm2dShape s, ReadOnlySpan<float> dy, ReadOnlySpan<float> gamma, ReadOnlySpan<float> runningVar,
        Span<float> dx, float epsilon = DefaultEpsilon)
    {
        s.Validate();
        RequireLength(dy.Length, s.Length, nameof(dy), "(N, C, H, W)");
        RequireLength(dx.Length, s.Length, nameof(dx), "(N, C, H, W)");
        RequireLength(gamma.Length, s.C, nameof(gamma), "(C)");
        RequireLength(runningVar.Length, s.C, nameof(runningVar), "(C)");
        var shape = s;
        fixed (float* pdy = dy, pdx = dx, pg = gamma, prv = runningVar)
        {
            nint ady = (nint)pdy, adx = (nint)pdx, ag = (nint)pg, arv = (nint)prv;
            ForEachChannel(shape, c =>
            {
                int hw = shape.HW;
                float scale = (float)(((float*)ag)[c] / Math.Sqrt(((float*)arv)[c] + (double)epsilon));
                for (int n = 0; n < shape.N; n++)
                {
                    long offset = ((long)n * shape.C + c) * hw;
                    System.Numerics.Tensors.TensorPrimitives.Multiply(new ReadOnlySpan<float>((float*)ady + offset, hw), scale, new Span<float>((float*)adx + offset, hw));
                }
            });
        }
    }

    // ---- SIMD helpers ----

    private static double SumDouble(ReadOnlySpan<float> values)
    {
        int i = 0;
        double sum = 0;
        if (Vector.IsHardwareAccelerated && values.Length >= Vector<float>.Count)
        {
            var acc = Vector<double>.Zero;
            for (; i <= values.Length - Vector<float>.Count; i += Vector<float>.Count)
            {
                Vector.Widen(new Vector<float>(values.Slice(i)), out var lo, out var hi);
                acc += lo + hi;
            }
            sum = Vector.Sum(acc);
        }
        for (; i < values.Length; i++)
        {
            sum += values[i];
        }
        return sum;
    }

    private static double SumSquaredDeviations(ReadOnlySpan<float> values, double mean)
    {
        int i = 0;
        double sum = 0;
        if (Vector.IsHardwareAccelerated && values.Length >= Vector<float>.Count)
        {
            var meanVector = new Vector<double>(mean);
            var acc = Vector<double>.Zero;
            for (; i <= values.Length - Vector<float>.Count; i += Vector<float>.Count)
            {
                Vector.Widen(new Vector<float>(values.Slice(i)), out var lo, out var hi);
                lo -= meanVector;
                hi -= meanVector;
                acc += lo * lo + hi * hi;
            }
            sum = Vector.Sum(acc);
        }
        for (; i < values.Length; i++)
        {
            double d = values[i] - mean;
            sum += d * d;
        }
        return sum;
    }

    private static void SumAndCenteredDot(ReadOnlySpan<float> dy, ReadOnlySpan<float> x, float mean, out double sumDy, out double sumDyCentered)
    {
        int i = 0;
        sumDy = 0;
        sumDyCentered = 0;
        if (Vector.IsHardwareAccelerated && dy.Length >= Vector<float>.Count)
        {
            var meanVector = new Vector<double>(mean);
            var accDy = Vector<double>.Zero;
            var accDot = Vector<double>.Zero;
            for (; i <= dy.Length - Vector<float>.Count; i += Vector<float>.Count)
            {
                Vector.Widen(new Vector<float>(dy.Slice(i)), out var dyLo, out var dyHi);
                Vector.Widen(new Vector<float>(x.Slice(i)), out var xLo, out var xHi);
                accDy += dyLo + dyHi;
                accDot += dyLo * (xLo - meanVector) + dyHi * (xHi - meanVector);
            }
            sumDy = Vector.Sum(accDy);
            sumDyCentered = Vector.Sum(accDot);
        }
        for (; i < dy.Length; i++)
        {
            sumDy += dy[i];
            sumDyCentered += dy[i] * ((double)x[i] - mean);
        }
    }

    // y = (x - mean) * scale + shift
    private static void Normalize(ReadOnlySpan<float> x, float mean, float scale, float shift, Span<float> y)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated && x.Length >= Vector<float>.Count)
        {
            var meanVector = new Vector<float>(mean);
            var scaleVector = new Vector<float>(scale);
            var shiftVector = new Vector<float>(shift);
            for (; i <= x.Length - Vector<float>.Count; i += Vector<float>.Count)
            {
                ((new Vector<float>(x.Slice(i)) - meanVector) * scaleVector + shiftVector).CopyTo(y.Slice(i));
            }
        }
        for (; i < x.Length; i++)
        {
            y[i] = (x[i] - mean) * scale + shift;
        }
    }

    // dx = a dy + b (x - mean) + k
    private static void AffineCombine(ReadOnlySpan<float> dy, ReadOnlySpan<float> x, float mean, float a, float b, float k, Span<float> dx)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated && dy.Length >= Vector<float>.Count)
        {
            var meanVector = new Vector<float>(mean);
            var aVector = new Vector<float>(a);
            var bVector = new Vector<float>(b);
            var kVector = new Vector<float>(k);
            for (; i <= dy.Length - Vector<float>.Count; i += Vector<float>.Count)
            {
                (aVector * new Vector<float>(dy.Slice(i)) + bVector * (new Vector<float>(x.Slice(i)) - meanVector) + kVector).CopyTo(dx.Slice(i));
            }
        }
        for (; i < dy.Length; i++)
        {
            dx[i] = a * dy[i] + b * (x[i] - mean) + k;
        }
    }

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
            Parallel.For(0, s.C, body);
        }
    }

    private static void RequireLength(int actual, int expected, string name, string layout)
    {
        if (actual != expected)
        {
            throw new ArgumentException($"BatchNorm2d: {name} has {actual} elements but the shape needs {expected} {layout}; allocate it from the same BatchNorm2dShape.", name);
        }
    }

    // ---- Kernels (phase 2) ----

    private static void ForwardTrainingKernels(Accelerator accelerator, in BatchNorm2dShape s, View<float> x, View<float> gamma, View<float> beta,
        View<float> runningMean, View<float> runningVar, View<float> y, View<float> saveMean, View<float> saveInvStd, float momentum, float epsilon) =>
        throw new NotSupportedException($"BatchNorm2d kernels are not written yet; {accelerator.Id} cannot run BatchNorm2d.ForwardTraining (use the cpu device).");

    private static void ForwardInferenceKernels(Accelerator accelerator, in BatchNorm2dShape s, View<float> x, View<float> gamma, View<float> beta,
        View<float> runningMean, View<float> runningVar, View<float> y, float epsilon) =>
        throw new NotSupportedException($"BatchNorm2d kernels are not written yet; {accelerator.Id} cannot run BatchNorm2d.ForwardInference (use the cpu device).");

    private static void BackwardTrainingKernels(Accelerator accelerator, in BatchNorm2dShape s, View<float> x, View<float> dy, View<float> gamma,
        View<float> saveMean, View<float> saveInvStd, View<float> dx, View<float> dgamma, View<float> dbeta) =>
        throw new NotSupportedException($"BatchNorm2d kernels are not written yet; {accelerator.Id} cannot run BatchNorm2d.BackwardTraining (use the cpu device).");

    private static void BackwardInferenceKernels(Accelerator accelerator, in BatchNorm2dShape s, View<float> dy, View<float> gamma, View<float> runningVar,
        View<float> dx, float epsilon) =>
        throw new NotSupportedException($"BatchNorm2d kernels are not written yet; {accelerator.Id} cannot run BatchNorm2d.BackwardInference (use the cpu device).");
}
