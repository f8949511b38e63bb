using System.Runtime.CompilerServices;
using IlgpuOct.Kernels.Profiling;

namespace IlgpuOct.Kernels.Operators;

/// <summary>The geometry of a global average pool: x (N, C, H, W) to y (N, C).</summary>
public readonly record struct GlobalAvgPoolShape(int N, int C, int H, int W)
{
    public int HW => H * W;

    /// <summary>Elements of x: N * C * H * W.</summary>
    public int InputLength => N * C * H * W;

    /// <summary>Elements of y: N * C.</summary>
    public int OutputLength => N * C;

    public void Validate()
    {
        if (N < 1 || C < 1 || H < 1 || W < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(GlobalAvgPoolShape), $"{this}: every extent must be >= 1.");
        }
        if ((long)N * C * H * W > int.MaxValue)
        {
            throw new ArgumentOutOfRangeException(nameof(GlobalAvgPoolShape), $"{this}: more than 2^31-1 elements; split the batch.");
        }
    }
}

/// <summary>Global average pooling: y[n, c] = mean over the plane x[n, c, :, :]; dx = dy / (H W) broadcast.</summary>
public static partial class GlobalAvgPool
{
    /// <summary>Cost model (every pass): one FLOP per input element; the input-sized and output-sized arrays once each.</summary>
    public static OperatorCost Cost(in GlobalAvgPoolShape s) => new(s.InputLength, 4.0 * (s.InputLength + s.OutputLength));

    /// <summary>Forward on the accelerator. Shapes as <see cref="ForwardCpu"/>.</summary>
    public static void Forward(Accelerator accelerator, GlobalAvgPoolShape s, View<float> x, View<float> y)
    {
        OperatorDispatch.Run(accelerator, "GlobalAvgPool.Forward", Cost(s),
            () => ForwardCpu(s, x.AsSpan(), y.AsSpan()),
            () => ForwardKernels(accelerator, s, x, y));
    }

    /// <summary>Backward on the accelerator. Shapes as <see cref="BackwardCpu"/>.</summary>
    public static void Backward(Accelerator accelerator, GlobalAvgPoolShape s, View<float> dy, View<float> dx)
    {
        OperatorDispatch.Run(accelerator, "GlobalAvgPool.Backward", Cost(s),
            () => BackwardCpu(s, dy.AsSpan(), dx.AsSpan()),
            () => BackwardKernels(accelerator, s, dy, dx));
    }

    /// <summary>
    /// dx += dy / (H W) on the accelerator: the gradient of a pooled output added to a gradient that
    /// already reaches the pool's input by another path (a tap on a stage output). Shapes as <see cref="BackwardAccumulateCpu"/>.
    /// </summary>
    public static void BackwardAccumulate(Accelerator accelerator, GlobalAvgPoolShape s, View<float> dy, View<float> dx)
    {
        OperatorDispatch.Run(accelerator, "GlobalAvgPool.BackwardAccumulate", Cost(s),
            () => BackwardAccumulateCpu(s, dy.AsSpan(), dx.AsSpan()),
            () => BackwardAccumulateKernels(accelerator, s, dy, dx));
    }

    /// <summary>x (N, C, H, W); y (N, C) overwritten. Each plane is summed in double.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void ForwardCpu(in GlobalAvgPoolShape s, ReadOnlySpan<float> x, Span<float> y)
    {
        s.Validate();
        RequireLength(x.Length, s.InputLength, nameof(x), "(N, C, H, W)");
        RequireLength(y.Length, s.OutputLength, nameof(y), "(N, C)");
        int hw = s.HW;
        for (int p = 0; p < s.OutputLength; p++)
        {
            var plane = x.Slice(p * hw, hw);
            double sum = 0;
            for (int i = 0; i < plane.Length; i++)
            {
                sum += plane[i];
            }
            y[p] = (float)(sum / hw);
        }
    }

    /// <summary>Forward from the bordered NHWC layout on the cpu engine. Shapes as <see cref="ForwardNhwcCpu"/>.</summary>
    public static void ForwardNhwc(Accelerator accelerator, GlobalAvgPoolShape s, View<float> x, int border, View<float> y) =>
        OperatorDispatch.RunCpu(accelerator, "GlobalAvgPool.ForwardNhwc", Cost(s), () => ForwardNhwcCpu(s, x.AsSpan(), border, y.AsSpan()));

    /// <summary>
    /// x (N, H + 2 border, W + 2 border, C) in the bordered NHWC layout of <see cref="NhwcShape"/> (interior read only);
    /// y (N, C) overwritten. Bit for bit <see cref="ForwardCpu"/>: each channel summed in double over the pixels in row-major order.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void ForwardNhwcCpu(in GlobalAvgPoolShape s, ReadOnlySpan<float> x, int border, Span<float> y)
    {
        s.Validate();
        var xs = new NhwcShape(s.N, s.H, s.W, s.C, border);
        xs.Validate();
        RequireLength(x.Length, xs.Length, nameof(x), "(N, H + 2 border, W + 2 border, C)");
        RequireLength(y.Length, s.OutputLength, nameof(y), "(N, C)");
        double[] sums = new double[s.C];
        for (int n = 0; n < s.N; n++)
        {
            Array.Clear(sums);
            for (int h = 0; h < s.H; h++)
            {
                for (int w = 0; w < s.W; w++)
                {
                    var pixel = x.Slice(xs.Offset(n, h, w), s.C);
                    for (int c = 0; c < pixel.Length; c++)
                    {
                        sums[c] += pixel[c];
                    }
                }
            }
            for (int c = 0; c < s.C; c++)
            {
                y[n * s.C + c] = (float)(sums[c] / s.HW);
            }
        }
    }

    /// <summary>dy (N, C); dx (N, C, H, W) overwritten with dy / (H W) on every pixel of the plane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void BackwardCpu(in GlobalAvgPoolShape s, ReadOnlySpan<float> dy, Span<float> dx)
    {
        s.Validate();
        RequireLength(dy.Length, s.OutputLength, nameof(dy), "(N, C)");
        RequireLength(dx.Length, s.InputLength, nameof(dx), "(N, C, H, W)");
        int hw = s.HW;
        for (int p = 0; p < s.OutputLength; p++)
        {
            dx.Slice(p * hw, hw).Fill(dy[p] / hw);
        }
    }

    /// <summary>dy (N, C); dx (N, C, H, W) gets dy / (H W) added on every pixel of the plane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void BackwardAccumulateCpu(in GlobalAvgPoolShape s, ReadOnlySpan<float> dy, Span<float> dx)
    {
        s.Validate();
        RequireLength(dy.Length, s.OutputLength, nameof(dy), "(N, C)");
        RequireLength(dx.Length, s.InputLength, nameof(dx), "(N, C, H, W)");
        int hw = s.HW;
        for (int i = 0; i < dx.Length; i++)
        {
            dx[i] += dy[i / hw] / (float)hw;
        }
    }

    private static void RequireLength(int actual, int expected, string name, string layout) =>
        ShapeCheck.RequireLength("GlobalAvgPool", nameof(GlobalAvgPoolShape), actual, expected, name, layout);

    // ---- Kernels ----

    private const int Threads = 256;
    private const int MaxBlocks = 4096;

    [Kernel]
    private static void AvgPoolForward(KernelContext ctx, View<float> x, View<float> y, int hw)
    {
        for (int p = ctx.GlobalX; p < y.Length; p += ctx.GridStrideX)
        {
            double sum = 0.0;
            for (int i = 0; i < hw; i++)
            {
                sum += x[p * hw + i];
            }
            y[p] = (float)(sum / hw);
        }
    }

    [Kernel]
    private static void AvgPoolBackward(KernelContext ctx, View<float> dy, View<float> dx, int hw)
    {
        for (int i = ctx.GlobalX; i < dx.Length; i += ctx.GridStrideX)
        {
            dx[i] = dy[i / hw] / hw;
        }
    }

    [Kernel]
    private static void AvgPoolBackwardAccumulate(KernelContext ctx, View<float> dy, View<float> dx, int hw)
    {
        for (int i = ctx.GlobalX; i < dx.Length; i += ctx.GridStrideX)
        {
            dx[i] += dy[i / hw] / (float)hw;
        }
    }

    /// <summary>The last stage's pool (the accumulate is a feature attack's layer4 tap).</summary>
    [LaunchShapes]
    private static IEnumerable<LaunchShape> LaunchShapes()
    {
        var (layer, a) = ResNet18Shapes.Activations[^1];
        var s = new GlobalAvgPoolShape(a.N, a.C, a.H, a.W);
        yield return new LaunchShape(AvgPoolForwardKernel.Definition, layer, Config(s.OutputLength));
        yield return new LaunchShape(AvgPoolBackwardKernel.Definition, layer, Config(s.InputLength));
        yield return new LaunchShape(AvgPoolBackwardAccumulateKernel.Definition, layer, Config(s.InputLength));
    }

    private static LaunchConfig Config(int length) =>
        new(new Dim3(Math.Clamp((length + Threads - 1) / Threads, 1, MaxBlocks)), new Dim3(Threads));

    private static void ForwardKernels(Accelerator accelerator, in GlobalAvgPoolShape s, View<float> x, View<float> y)
    {
        s.Validate();
        RequireLength(x.Length, s.InputLength, nameof(x), "(N, C, H, W)");
        RequireLength(y.Length, s.OutputLength, nameof(y), "(N, C)");
        AvgPoolForwardKernel.Launch(accelerator, Config(s.OutputLength), x, y, s.HW);
    }

    private static void BackwardKernels(Accelerator accelerator, in GlobalAvgPoolShape s, View<float> dy, View<float> dx)
    {
        s.Validate();
        RequireLength(dy.Length, s.OutputLength, nameof(dy), "(N, C)");
        RequireLength(dx.Length, s.InputLength, nameof(dx), "(N, C, H, W)");
        AvgPoolBackwardKernel.Launch(accelerator, Config(s.InputLength), dy, dx, s.HW);
    }

    private static void BackwardAccumulateKernels(Accelerator accelerator, in GlobalAvgPoolShape s, View<float> dy, View<float> dx)
    {
        s.Validate();
        RequireLength(dy.Length, s.OutputLength, nameof(dy), "(N, C)");
        RequireLength(dx.Length, s.InputLength, nameof(dx), "(N, C, H, W)");
        AvgPoolBackwardAccumulateKernel.Launch(accelerator, Config(s.InputLength), dy, dx, s.HW);
    }

    // ---- Self-tests (ilgpuoct selftest) ----

    [SelfTests]
    private static IEnumerable<SelfTestCase> SelfTests()
    {
        foreach (var s in new[] { new GlobalAvgPoolShape(2, 5, 3, 4), new GlobalAvgPoolShape(16, 128, 7, 7) })
        {
            string shape = $"({s.N},{s.C},{s.H},{s.W})";
            yield return new SelfTestCase("GlobalAvgPool.Forward", shape, (acc, seed) => OperatorSelfTest.Compare(acc,
                [OperatorSelfTest.Random(seed, s.InputLength), new float[s.OutputLength]], [1],
                (a, v) => Forward(a, s, v[0], v[1]), h => ForwardCpu(s, h[0], h[1]), 1e-6));
            yield return new SelfTestCase("GlobalAvgPool.Backward", shape, (acc, seed) => OperatorSelfTest.Compare(acc,
                [OperatorSelfTest.Random(seed, s.OutputLength), new float[s.InputLength]], [1],
                (a, v) => Backward(a, s, v[0], v[1]), h => BackwardCpu(s, h[0], h[1]), 1e-7));
            yield return new SelfTestCase("GlobalAvgPool.BackwardAccumulate", shape, (acc, seed) => OperatorSelfTest.Compare(acc,
                [OperatorSelfTest.Random(seed, s.OutputLength), OperatorSelfTest.Random(seed + 1, s.InputLength)], [1],
                (a, v) => BackwardAccumulate(a, s, v[0], v[1]), h => BackwardAccumulateCpu(s, h[0], h[1]), 1e-7));
        }
    }
}
