using System.Numerics;
using System.Runtime.CompilerServices;
using IlgpuOct.Kernels.Profiling;

namespace IlgpuOct.Kernels.Operators;

/// <summary>Hyper-parameters of one SGD step (PyTorch's torch.optim.SGD without dampening or Nesterov).</summary>
public readonly record struct SgdSettings(float LearningRate, float Momentum = 0.9f, float WeightDecay = 5e-4f)
{
    public void Validate()
    {
        if (!(LearningRate >= 0) || !float.IsFinite(LearningRate))
        {
            throw new ArgumentOutOfRangeException(nameof(LearningRate), $"Learning rate {LearningRate} must be finite and >= 0.");
        }
        if (!(Momentum >= 0) || !(Momentum < 1))
        {
            throw new ArgumentOutOfRangeException(nameof(Momentum), $"Momentum {Momentum} must lie in [0, 1).");
        }
        if (!(WeightDecay >= 0) || !float.IsFinite(WeightDecay))
        {
            throw new ArgumentOutOfRangeException(nameof(WeightDecay), $"Weight decay {WeightDecay} must be finite and >= 0.");
        }
    }
}

/// <summary>
/// PyTorch's SGD step, element by element in PyTorch's order:
/// g = grad + wd * w;  buf = momentum * buf + g;  w = w + (-lr) * buf.
/// PyTorch starts the buffer as a copy of g on the first step, which equals momentum * 0 + g, so a
/// buffer that starts at zero reproduces it exactly. With momentum 0 the buffer is still written (= g).
/// </summary>
public static unsafe partial class Sgd
{
    private const int ParallelChunk = 1 << 16;

    /// <summary>Cost model: weight decay, momentum and update are 5 FLOPs per parameter; reads weight, gradient and momentum, writes weight and momentum.</summary>
    public static OperatorCost Cost(long parameters) => OperatorCost.Elementwise(parameters, 5, reads: 3, writes: 2);

    /// <summary>One step on the accelerator. weight, grad and momentumBuffer have one shape (any); weight and buffer are updated in place.</summary>
    public static void Step(Accelerator accelerator, View<float> weight, View<float> grad, View<float> momentumBuffer, SgdSettings settings)
    {
        OperatorDispatch.Run(accelerator, "Sgd.Step", Cost(weight.Length),
            () => StepCpu(weight.AsSpan(), grad.AsSpan(), momentumBuffer.AsSpan(), settings),
            () => StepKernels(accelerator, weight, grad, momentumBuffer, settings));
    }

    /// <summary>One step: weight, grad, momentumBuffer of equal length (a parameter's shape); the buffer must start at zero.</summary>
    public static void StepCpu(Span<float> weight, ReadOnlySpan<float> grad, Span<float> momentumBuffer, in SgdSettings settings)
    {
        settings.Validate();
        if (grad.Length != weight.Length || momentumBuffer.Length != weight.Length)
        {
            throw new ArgumentException($"Sgd: weight ({weight.Length}), grad ({grad.Length}) and momentum buffer ({momentumBuffer.Length}) must have one length; allocate them from the parameter's shape.");
        }
        float lr = settings.LearningRate, momentum = settings.Momentum, decay = settings.WeightDecay;
        int length = weight.Length;
        if (length <= ParallelChunk)
        {
            StepRange(weight, grad, momentumBuffer, lr, momentum, decay);
            return;
        }
        fixed (float* pw = weight, pg = grad, pb = momentumBuffer)
        {
            nint aw = (nint)pw, ag = (nint)pg, ab = (nint)pb;
            int chunks = (length + ParallelChunk - 1) / ParallelChunk;
            Parallel.For(0, chunks, new ParallelOptions { MaxDegreeOfParallelism = Gemm.CpuMaxThreads }, chunk =>
            {
                int start = chunk * ParallelChunk;
                int count = Math.Min(ParallelChunk, length - start);
                StepRange(new Span<float>((float*)aw + start, count), new ReadOnlySpan<float>((float*)ag + start, count),
                    new Span<float>((float*)ab + start, count), lr, momentum, decay);
            });
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void StepRange(Span<float> weight, ReadOnlySpan<float> grad, Span<float> buffer, float lr, float momentum, float decay)
    {
        int i = 0;
        float negativeLr = -lr;
        if (Vector.IsHardwareAccelerated)
        {
            var decayVector = new Vector<float>(decay);
            var momentumVector = new Vector<float>(momentum);
            var lrVector = new Vector<float>(negativeLr);
            for (; i <= weight.Length - Vector<float>.Count; i += Vector<float>.Count)
            {
                var w = new Vector<float>(weight.Slice(i));
                var g = new Vector<float>(grad.Slice(i)) + decayVector * w;
                var b = momentumVector * new Vector<float>(buffer.Slice(i)) + g;
                b.CopyTo(buffer.Slice(i));
                (w + lrVector * b).CopyTo(weight.Slice(i));
            }
        }
        for (; i < weight.Length; i++)
        {
            float g = grad[i] + decay * weight[i];
            float b = momentum * buffer[i] + g;
            buffer[i] = b;
            weight[i] += negativeLr * b;
        }
    }

    // ---- Kernels ----

    private const int Threads = 256;
    private const int MaxBlocks = 4096;

    [Kernel]
    private static void SgdStep(KernelContext ctx, View<float> weight, View<float> grad, View<float> buffer, float learningRate, float momentum, float weightDecay)
    {
        float negativeLr = -learningRate;
        for (int i = ctx.GlobalX; i < weight.Length; i += ctx.GridStrideX)
        {
            float w = weight[i];
            float g = grad[i] + weightDecay * w;
            float b = momentum * buffer[i] + g;
            buffer[i] = b;
            weight[i] = w + negativeLr * b;
        }
    }

    private static LaunchConfig Config(int length) => new(new Dim3(Math.Clamp((length + Threads - 1) / Threads, 1, MaxBlocks)), new Dim3(Threads));

    [LaunchShapes]
    private static IEnumerable<LaunchShape> LaunchShapes()
    {
        yield return new LaunchShape(SgdStepKernel.Definition, "layer4 conv weight", Config(ResNet18Shapes.LargestParameter));
        yield return new LaunchShape(SgdStepKernel.Definition, "bn1 gamma", Config(64));
    }

    private static void StepKernels(Accelerator accelerator, View<float> weight, View<float> grad, View<float> momentumBuffer, in SgdSettings settings)
    {
        settings.Validate();
        if (grad.Length != weight.Length || momentumBuffer.Length != weight.Length)
        {
            throw new ArgumentException($"Sgd: weight ({weight.Length}), grad ({grad.Length}) and momentum buffer ({momentumBuffer.Length}) must have one length; allocate them from the parameter's shape.");
        }
        SgdStepKernel.Launch(accelerator, Config(weight.Length), weight, grad, momentumBuffer, settings.LearningRate, settings.Momentum, settings.WeightDecay);
    }

    // ---- Self-tests (ilgpuoct selftest) ----

    [SelfTests]
    private static IEnumerable<SelfTestCase> SelfTests()
    {
        foreach (int n in new[] { 1000, 100_003 })
        {
            string shape = $"n={n}";
            var settings = new SgdSettings(0.05f, 0.9f, 5e-4f);
            yield return new SelfTestCase("Sgd.Step", shape, (acc, seed) => OperatorSelfTest.Compare(acc,
                [OperatorSelfTest.Random(seed, n), OperatorSelfTest.Random(seed + 1, n), OperatorSelfTest.Random(seed + 2, n)], [0, 2],
                (a, v) =>
                {
                    Step(a, v[0], v[1], v[2], settings);
                    Step(a, v[0], v[1], v[2], settings);
                },
                h =>
                {
                    StepCpu(h[0], h[1], h[2], settings);
                    StepCpu(h[0], h[1], h[2], settings);
                }, 1e-6));
        }
    }
}

/// <summary>
/// A learning rate as a function of the optimiser step (0-based): constant, step decay, or cosine
/// annealing evaluated per step (the default for training).
/// </summary>
public abstract record LearningRateSchedule
{
    /// <summary>The learning rate to use for step <paramref name="step"/> (0 = first update).</summary>
    public abstract float At(long step);

    public static LearningRateSchedule Constant(float learningRate) => new ConstantSchedule(learningRate);

    /// <summary>lr * gamma^floor(step / stepSize) (PyTorch's StepLR counted in optimiser steps).</summary>
    public static LearningRateSchedule Step(float baseLearningRate, long stepSize, float gamma) => new StepDecaySchedule(baseLearningRate, stepSize, gamma);

    /// <summary>
    /// min + (base - min) (1 + cos(pi t / T)) / 2 for t in [0, T] (PyTorch's CosineAnnealingLR closed form
    /// with T_max = totalSteps), held at min after T.
    /// </summary>
    public static LearningRateSchedule Cosine(float baseLearningRate, long totalSteps, float minLearningRate = 0f) => new CosineSchedule(baseLearningRate, totalSteps, minLearningRate);
}

public sealed record ConstantSchedule(float LearningRate) : LearningRateSchedule
{
    public override float At(long step)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(step);
        return LearningRate;
    }
}

public sealed record StepDecaySchedule(float BaseLearningRate, long StepSize, float Gamma) : LearningRateSchedule
{
    public override float At(long step)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(step);
        if (StepSize < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(StepSize), $"Step size {StepSize} must be >= 1.");
        }
        return (float)(BaseLearningRate * Math.Pow(Gamma, step / StepSize));
    }
}

public sealed record CosineSchedule(float BaseLearningRate, long TotalSteps, float MinLearningRate = 0f) : LearningRateSchedule
{
    public override float At(long step)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(step);
        if (TotalSteps < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(TotalSteps), $"Total steps {TotalSteps} must be >= 1.");
        }
        long t = Math.Min(step, TotalSteps);
        return (float)(MinLearningRate + (BaseLearningRate - (double)MinLearningRate) * (1 + Math.Cos(Math.PI * t / TotalSteps)) / 2);
    }
}
