using System.Runtime.CompilerServices;
using IlgpuOct.Kernels.Profiling;

namespace IlgpuOct.Kernels.Operators;

/// <summary>
/// The geometry of a 2-d max pool (floor mode): x (N, C, H, W), y and argmax indices
/// (N, C, OutH, OutW) with OutH = (H + 2 Padding - Kernel) / Stride + 1. ResNet-18 uses 3, 2, 1.
/// </summary>
public readonly record struct MaxPool2dShape(int N, int C, int H, int W, int Kernel = 3, int Stride = 2, int Padding = 1)
{
    public int OutH => (H + 2 * Padding - Kernel) / Stride + 1;

    public int OutW => (W + 2 * Padding - Kernel) / Stride + 1;

    /// <summary>Elements of x: N * C * H * W.</summary>
    public int InputLength => N * C * H * W;

    /// <summary>Elements of y and of the indices: N * C * OutH * OutW.</summary>
    public int OutputLength => N * C * OutH * OutW;

    public void Validate()
    {
        if (N < 1 || C < 1 || H < 1 || W < 1 || Kernel < 1 || Stride < 1 || Padding < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxPool2dShape), $"{this}: every extent, the kernel and the stride must be >= 1 and the padding >= 0.");
        }
        if (2 * Padding > Kernel)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxPool2dShape), $"{this}: padding {Padding} exceeds half the kernel {Kernel}; a window could hold only padding.");
        }
        if (H + 2 * Padding < Kernel || W + 2 * Padding < Kernel)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxPool2dShape), $"{this}: the padded input is smaller than the kernel.");
        }
        if ((long)N * C * H * W > int.MaxValue)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxPool2dShape), $"{this}: more than 2^31-1 elements; split the batch.");
        }
    }
}

/// <summary>
/// 2-d max pooling as PyTorch's MaxPool2d: padding never wins (windows are clipped to the image),
/// the first maximum in row-major window order wins ties, a NaN wins over numbers. The forward pass
/// records each output's argmax as an index into its own input plane (h * W + w); the backward pass
/// sends dy to those positions, summing where windows overlap.
/// </summary>
public static unsafe partial class MaxPool2d
{
    private const long ParallelWorkThreshold = 1L << 15;

    /// <summary>Cost model: K^2 comparisons per output; reads x, writes y and the argmax indices.</summary>
    public static OperatorCost ForwardCost(in MaxPool2dShape s) => new((double)s.OutputLength * s.Kernel * s.Kernel, 4.0 * (s.InputLength + 2.0 * s.OutputLength));

    /// <summary>Cost model: one add per routed gradient; reads dy and the indices, writes dx.</summary>
    public static OperatorCost BackwardCost(in MaxPool2dShape s) => new(s.OutputLength, 4.0 * (s.InputLength + 2.0 * s.OutputLength));

    /// <summary>Forward on the accelerator. Shapes as <see cref="ForwardCpu"/>.</summary>
    public static void Forward(Accelerator accelerator, MaxPool2dShape s, View<float> x, View<float> y, View<int> indices)
    {
        OperatorDispatch.Run(accelerator, "MaxPool2d.Forward", ForwardCost(s),
            () => ForwardCpu(s, x.AsSpan(), y.AsSpan(), indices.AsSpan()),
            () => ForwardKernels(accelerator, s, x, y, indices));
    }

    /// <summary>Backward on the accelerator. Shapes as <see cref="BackwardCpu"/>.</summary>
    public static void Backward(Accelerator accelerator, MaxPool2dShape s, View<float> dy, View<int> indices, View<float> dx)
    {
        OperatorDispatch.Run(accelerator, "MaxPool2d.Backward", BackwardCost(s),
            () => BackwardCpu(s, dy.AsSpan(), indices.AsSpan(), dx.AsSpan()),
            () => BackwardKernels(accelerator, s, dy, indices, dx));
    }

    /// <summary>x (N, C, H, W); y (N, C, OutH, OutW) and indices (N, C, OutH, OutW, index h*W+w within the plane) overwritten.</summary>
    public static void ForwardCpu(in MaxPool2dShape s, ReadOnlySpan<float> x, Span<float> y, Span<int> indices)
    {
        s.Validate();
        RequireLength(x.Length, s.InputLength, nameof(x), "(N, C, H, W)");
        RequireLength(y.Length, s.OutputLength, nameof(y), "(N, C, OutH, OutW)");
        RequireLength(indices.Length, s.OutputLength, nameof(indices), "(N, C, OutH, OutW)");
        var shape = s;
        fixed (float* px = x, py = y)
        fixed (int* pi = indices)
        {
            nint ax = (nint)px, ay = (nint)py, ai = (nint)pi;
            ForEachPlane(shape, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (plane) =>
            {
                int h = shape.H, w = shape.W, outH = shape.OutH, outW = shape.OutW;
                float* input = (float*)ax + (long)plane * h * w;
                float* output = (float*)ay + (long)plane * outH * outW;
                int* index = (int*)ai + (long)plane * outH * outW;
                for (int oh = 0; oh < outH; oh++)
                {
                    int h0 = oh * shape.Stride - shape.Padding;
                    int hStart = Math.Max(h0, 0), hEnd = Math.Min(h0 + shape.Kernel, h);
                    for (int ow = 0; ow < outW; ow++)
                    {
                        int w0 = ow * shape.Stride - shape.Padding;
                        int wStart = Math.Max(w0, 0), wEnd = Math.Min(w0 + shape.Kernel, w);
                        int best = hStart * w + wStart;
                        float max = float.NegativeInfinity;
                        for (int ih = hStart; ih < hEnd; ih++)
                        {
                            for (int iw = wStart; iw < wEnd; iw++)
                            {
                                // Branch-free (conditional moves): which value wins is data-dependent and
                                // unpredictable. A larger value wins; the first NaN wins and then stays
                                // (nothing replaces a NaN maximum).
                                float v = input[ih * w + iw];
                                bool take = (v > max | float.IsNaN(v)) & !float.IsNaN(max);
                                max = take ? v : max;
                                best = take ? ih * w + iw : best;
                            }
                        }
                        output[oh * outW + ow] = input[best];
                        index[oh * outW + ow] = best;
                    }
                }
            });
        }
    }

    /// <summary>dy and indices (N, C, OutH, OutW); dx (N, C, H, W) overwritten with the routed gradient.</summary>
    public static void BackwardCpu(in MaxPool2dShape s, ReadOnlySpan<float> dy, ReadOnlySpan<int> indices, Span<float> dx)
    {
        s.Validate();
        RequireLength(dy.Length, s.OutputLength, nameof(dy), "(N, C, OutH, OutW)");
        RequireLength(indices.Length, s.OutputLength, nameof(indices), "(N, C, OutH, OutW)");
        RequireLength(dx.Length, s.InputLength, nameof(dx), "(N, C, H, W)");
        var shape = s;
        fixed (float* pdy = dy, pdx = dx)
        fixed (int* pi = indices)
        {
            nint ady = (nint)pdy, adx = (nint)pdx, ai = (nint)pi;
            ForEachPlane(shape, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (plane) =>
            {
                int planeIn = shape.H * shape.W, planeOut = shape.OutH * shape.OutW;
                var gradIn = new Span<float>((float*)adx + (long)plane * planeIn, planeIn);
                float* gradOut = (float*)ady + (long)plane * planeOut;
                int* index = (int*)ai + (long)plane * planeOut;
                gradIn.Clear();
                for (int o = 0; o < planeOut; o++)
                {
                    int target = index[o];
                    if ((uint)target >= (uint)planeIn)
                    {
                        throw new ArgumentException($"MaxPool2d: index {target} at output {o} of plane {plane} lies outside the {shape.H}x{shape.W} input; pass the indices the forward pass wrote.", nameof(indices));
                    }
                    gradIn[target] += gradOut[o];
                }
            });
        }
    }

    // The bodies passed here are marked AggressiveOptimization: tiered compilation would otherwise run them
    // unoptimised through short runs (benchmarks, the first training steps), where they dominate their operator.
    private static void ForEachPlane(in MaxPool2dShape s, Action<int> body)
    {
        int planes = s.N * s.C;
        if (planes == 1 || (long)s.InputLength < ParallelWorkThreshold)
        {
            for (int p = 0; p < planes; p++)
            {
                body(p);
            }
        }
        else
        {
            Parallel.For(0, planes, new ParallelOptions { MaxDegreeOfParallelism = Gemm.CpuMaxThreads }, body);
        }
    }

    private static void RequireLength(int actual, int expected, string name, string layout) =>
        ShapeCheck.RequireLength("MaxPool2d", nameof(MaxPool2dShape), actual, expected, name, layout);

    // ---- Kernels ----
    //
    // Forward: one thread per output. Backward: one thread per input pixel gathers dy from the
    // windows that chose it (no atomics, a fixed summation order).

    private const int Threads = 256;
    private const int MaxBlocks = 4096;

    [Kernel]
    private static void MaxPoolForward(KernelContext ctx, View<float> x, View<float> y, View<int> indices,
        int h, int w, int outH, int outW, int kernel, int stride, int padding)
    {
        for (int o = ctx.GlobalX; o < y.Length; o += ctx.GridStrideX)
        {
            int plane = o / (outH * outW);
            int q = o - plane * outH * outW;
            int oh = q / outW;
            int ow = q - oh * outW;
            int h0 = oh * stride - padding;
            int w0 = ow * stride - padding;
            int hStart = Math.Max(h0, 0);
            int hEnd = Math.Min(h0 + kernel, h);
            int wStart = Math.Max(w0, 0);
            int wEnd = Math.Min(w0 + kernel, w);
            int best = hStart * w + wStart;
            float max = float.NegativeInfinity;
            bool sawNaN = false;
            for (int ih = hStart; ih < hEnd; ih++)
            {
                for (int iw = wStart; iw < wEnd; iw++)
                {
                    float v = x[plane * h * w + ih * w + iw];
                    if (!sawNaN && (v > max || float.IsNaN(v)))
                    {
                        max = v;
                        best = ih * w + iw;
                        sawNaN = float.IsNaN(v);
                    }
                }
            }
            y[o] = x[plane * h * w + best];
            indices[o] = best;
        }
    }

    [Kernel]
    private static void MaxPoolBackward(KernelContext ctx, View<float> dy, View<int> indices, View<float> dx,
        int h, int w, int outH, int outW, int kernel, int stride, int padding)
    {
        for (int i = ctx.GlobalX; i < dx.Length; i += ctx.GridStrideX)
        {
            int plane = i / (h * w);
            int q = i - plane * h * w;
            int ih = q / w;
            int iw = q - ih * w;
            // Outputs whose window holds (ih, iw): oh*stride - padding <= ih <= oh*stride - padding + kernel - 1.
            int ohFirst = Math.Max(0, (ih + padding - kernel + stride) / stride);
            int ohLast = Math.Min(outH - 1, (ih + padding) / stride);
            int owFirst = Math.Max(0, (iw + padding - kernel + stride) / stride);
            int owLast = Math.Min(outW - 1, (iw + padding) / stride);
            float sum = 0f;
            for (int oh = ohFirst; oh <= ohLast; oh++)
            {
                for (int ow = owFirst; ow <= owLast; ow++)
                {
                    int o = (plane * outH + oh) * outW + ow;
                    if (indices[o] == q)
                    {
                        sum += dy[o];
                    }
                }
            }
            dx[i] = sum;
        }
    }

    [LaunchShapes]
    private static IEnumerable<LaunchShape> LaunchShapes()
    {
        var (layer, a) = ResNet18Shapes.Activations[0];
        var s = new MaxPool2dShape(a.N, a.C, a.H, a.W);
        yield return new LaunchShape(MaxPoolForwardKernel.Definition, "maxpool after " + layer, Config(s.OutputLength));
        yield return new LaunchShape(MaxPoolBackwardKernel.Definition, "maxpool after " + layer, Config(s.InputLength));
    }

    private static LaunchConfig Config(int length) =>
        new(new Dim3(Math.Clamp((length + Threads - 1) / Threads, 1, MaxBlocks)), new Dim3(Threads));

    private static void ForwardKernels(Accelerator accelerator, in MaxPool2dShape s, View<float> x, View<float> y, View<int> indices)
    {
        s.Validate();
        RequireLength(x.Length, s.InputLength, nameof(x), "(N, C, H, W)");
        RequireLength(y.Length, s.OutputLength, nameof(y), "(N, C, OutH, OutW)");
        RequireLength(indices.Length, s.OutputLength, nameof(indices), "(N, C, OutH, OutW)");
        MaxPoolForwardKernel.Launch(accelerator, Config(s.OutputLength), x, y, indices, s.H, s.W, s.OutH, s.OutW, s.Kernel, s.Stride, s.Padding);
    }

    private static void BackwardKernels(Accelerator accelerator, in MaxPool2dShape s, View<float> dy, View<int> indices, View<float> dx)
    {
        s.Validate();
        RequireLength(dy.Length, s.OutputLength, nameof(dy), "(N, C, OutH, OutW)");
        RequireLength(indices.Length, s.OutputLength, nameof(indices), "(N, C, OutH, OutW)");
        RequireLength(dx.Length, s.InputLength, nameof(dx), "(N, C, H, W)");
        MaxPoolBackwardKernel.Launch(accelerator, Config(s.InputLength), dy, indices, dx, s.H, s.W, s.OutH, s.OutW, s.Kernel, s.Stride, s.Padding);
    }

    // ---- Self-tests (ilgpuoct selftest) ----

    [SelfTests]
    private static IEnumerable<SelfTestCase> SelfTests()
    {
        foreach (var s in new[] { new MaxPool2dShape(2, 3, 9, 10), new MaxPool2dShape(4, 8, 32, 32), new MaxPool2dShape(2, 4, 7, 7, 2, 2, 0) })
        {
            string shape = $"({s.N},{s.C},{s.H},{s.W}) k{s.Kernel} s{s.Stride} p{s.Padding}";
            yield return new SelfTestCase("MaxPool2d.Forward+Backward", shape, (acc, seed) => CompareForwardBackward(acc, seed, s));
        }
    }

    // Forward values and indices, then the backward pass from the device's own indices, against the CPU.
    private static SelfTestResult CompareForwardBackward(Accelerator accelerator, int seed, MaxPool2dShape s)
    {
        float[] x = OperatorSelfTest.Random(seed, s.InputLength);
        float[] dy = OperatorSelfTest.Random(seed + 1, s.OutputLength);
        var y = new float[s.OutputLength];
        var indices = new int[s.OutputLength];
        var dx = new float[s.InputLength];
        ForwardCpu(s, x, y, indices);
        BackwardCpu(s, dy, indices, dx);
        using var dx0 = accelerator.Upload<float>(x);
        using var dy0 = accelerator.Upload<float>(dy);
        using var dyOut = accelerator.Allocate<float>(s.OutputLength);
        using var dIndices = accelerator.Allocate<int>(s.OutputLength);
        using var dDx = accelerator.Allocate<float>(s.InputLength);
        Forward(accelerator, s, dx0.View, dyOut.View, dIndices.View);
        Backward(accelerator, s, dy0.View, dIndices.View, dDx.View);
        accelerator.Synchronize();
        int[] deviceIndices = accelerator.Download(dIndices.View);
        double indexMismatch = deviceIndices.AsSpan().SequenceEqual(indices) ? 0 : double.PositiveInfinity;
        double worst = Math.Max(SelfTestCatalog.MaxAbsDifference(accelerator.Download(dyOut.View), y),
            SelfTestCatalog.MaxAbsDifference(accelerator.Download(dDx.View), dx));
        return new SelfTestResult(Math.Max(worst, indexMismatch), 1e-6);
    }
}
