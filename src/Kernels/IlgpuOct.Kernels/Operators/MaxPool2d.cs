using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using IlgpuOct.Kernels.Cpu;
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
            bool vector = Is3x3Stride2(shape) && Avx2.IsSupported;
            ForEachPlane(shape, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (plane) =>
            {
                int h = shape.H, w = shape.W, outH = shape.OutH, outW = shape.OutW;
                float* input = (float*)ax + (long)plane * h * w;
                float* output = (float*)ay + (long)plane * outH * outW;
                int* index = (int*)ai + (long)plane * outH * outW;
                // The 8-wide path needs input columns 2 ow0 - 1 .. 2 ow0 + 15 of a block: ow0 >= 1 and 2 ow0 + 16 <= W.
                int lastBlock = vector ? (w - 16) / 2 : 0;
                for (int oh = 0; oh < outH; oh++)
                {
                    int firstScalar = 0;
                    if (lastBlock >= 1)
                    {
                        int h0 = 2 * oh - 1;
                        int hStart = Math.Max(h0, 0), hEnd = Math.Min(h0 + 3, h);
                        // Blocks start at 1, 9, ... and the last at lastBlock (overlapping its predecessor: same values).
                        for (int ow0 = 1; ow0 < lastBlock; ow0 += 8)
                        {
                            ForwardBlock3x3Stride2(input, w, hStart, hEnd, ow0, output + oh * outW, index + oh * outW);
                        }
                        ForwardBlock3x3Stride2(input, w, hStart, hEnd, lastBlock, output + oh * outW, index + oh * outW);
                        ForwardWindow(shape, input, oh, 0, output, index);
                        firstScalar = lastBlock + 8;
                    }
                    for (int ow = firstScalar; ow < outW; ow++)
                    {
                        ForwardWindow(shape, input, oh, ow, output, index);
                    }
                }
            });
        }
    }

    /// <summary>Forward in the bordered NHWC layout on the cpu engine (no indices: inference). Shapes as <see cref="ForwardNhwcCpu"/>.</summary>
    public static void ForwardNhwc(Accelerator accelerator, MaxPool2dShape s, View<float> x, int inputBorder, View<float> y, int outputBorder) =>
        OperatorDispatch.RunCpu(accelerator, "MaxPool2d.ForwardNhwc", ForwardCost(s),
            () => ForwardNhwcCpu(s, x.AsSpan(), inputBorder, y.AsSpan(), outputBorder));

    /// <summary>
    /// <see cref="ForwardCpu"/>'s values (same window clipping, tie and NaN rules) in the bordered NHWC layout of
    /// <see cref="NhwcShape"/>, eight channels per vector: x (N, H + 2 inputBorder, W + 2 inputBorder, C),
    /// y (N, OutH + 2 outputBorder, OutW + 2 outputBorder, C), only y's interior written. The border is never read.
    /// </summary>
    public static void ForwardNhwcCpu(in MaxPool2dShape s, ReadOnlySpan<float> x, int inputBorder, Span<float> y, int outputBorder)
    {
        s.Validate();
        var xs = new NhwcShape(s.N, s.H, s.W, s.C, inputBorder);
        var ys = new NhwcShape(s.N, s.OutH, s.OutW, s.C, outputBorder);
        xs.Validate();
        ys.Validate();
        RequireLength(x.Length, xs.Length, nameof(x), "(N, H + 2 inputBorder, W + 2 inputBorder, C)");
        RequireLength(y.Length, ys.Length, nameof(y), "(N, OutH + 2 outputBorder, OutW + 2 outputBorder, C)");
        var shape = s;
        fixed (float* px = x, py = y)
        {
            nint ax = (nint)px, ay = (nint)py;
            // Optimised at once: tier-0 code would run the vector loop without intrinsics for the first calls.
            [MethodImpl(MethodImplOptions.AggressiveOptimization)]
            void Row(int row)
            {
                int n = row / shape.OutH, oh = row % shape.OutH, c = shape.C;
                int h0 = oh * shape.Stride - shape.Padding;
                int hStart = Math.Max(h0, 0), hEnd = Math.Min(h0 + shape.Kernel, shape.H);
                for (int ow = 0; ow < shape.OutW; ow++)
                {
                    int w0 = ow * shape.Stride - shape.Padding;
                    int wStart = Math.Max(w0, 0), wEnd = Math.Min(w0 + shape.Kernel, shape.W);
                    float* output = (float*)ay + ys.Offset(n, oh, ow);
                    // The clipped window: rows x cols pixels from its top-left one, rowStride floats between rows.
                    float* window = (float*)ax + xs.Offset(n, hStart, wStart);
                    int rows = hEnd - hStart, cols = wEnd - wStart, rowStride = xs.PaddedW * c;
                    int c8 = c & ~7;
                    for (int c0 = 0; c0 < c8; c0 += 8)
                    {
                        var max = Vector256.Create(float.NegativeInfinity);
                        for (int r = 0; r < rows; r++)
                        {
                            float* pixel = window + r * rowStride + c0;
                            for (int q = 0; q < cols; q++, pixel += c)
                            {
                                var v = Vector256.Load(pixel);
                                max = Vector256.ConditionalSelect(Takes(v, max), v, max);
                            }
                        }
                        max.Store(output + c0);
                    }
                    for (int ch = c8; ch < c; ch++)
                    {
                        float max = float.NegativeInfinity;
                        for (int r = 0; r < rows; r++)
                        {
                            float* pixel = window + r * rowStride + ch;
                            for (int q = 0; q < cols; q++, pixel += c)
                            {
                                float v = *pixel;
                                bool take = (v > max | float.IsNaN(v)) & !float.IsNaN(max);
                                max = take ? v : max;
                            }
                        }
                        output[ch] = max;
                    }
                }
            }
            CpuParallel.For(shape.N * shape.OutH, shape.InputLength, Row);
        }
    }

    private static bool Is3x3Stride2(in MaxPool2dShape s) => s.Kernel == 3 && s.Stride == 2 && s.Padding == 1;

    /// <summary>
    /// One window, in row-major window order: a larger value wins, the first maximum keeps ties, the first NaN wins
    /// and then stays (nothing replaces a NaN maximum). Writes y = x[argmax] and the argmax.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ForwardWindow(in MaxPool2dShape s, float* input, int oh, int ow, float* output, int* index)
    {
        int h0 = oh * s.Stride - s.Padding;
        int hStart = Math.Max(h0, 0), hEnd = Math.Min(h0 + s.Kernel, s.H);
        int w0 = ow * s.Stride - s.Padding;
        int wStart = Math.Max(w0, 0), wEnd = Math.Min(w0 + s.Kernel, s.W);
        int w = s.W;
        int best = hStart * w + wStart;
        float max = float.NegativeInfinity;
        for (int ih = hStart; ih < hEnd; ih++)
        {
            for (int iw = wStart; iw < wEnd; iw++)
            {
                // Branch-free (conditional moves): which value wins is data-dependent and unpredictable.
                float v = input[ih * w + iw];
                bool take = (v > max | float.IsNaN(v)) & !float.IsNaN(max);
                max = take ? v : max;
                best = take ? ih * w + iw : best;
            }
        }
        output[oh * s.OutW + ow] = input[best];
        index[oh * s.OutW + ow] = best;
    }

    /// <summary>
    /// Eight adjacent windows (outputs ow0 .. ow0 + 7 of one output row) of a 3x3, stride-2, padding-1 pool, none clipped
    /// at the left or right: the rules of <see cref="ForwardWindow"/> lane by lane. In an input row the window columns
    /// 2 ow - 1, 2 ow and 2 ow + 1 are the even lanes of the 16 floats from 2 ow0 - 1, and the even and odd lanes of the
    /// 16 floats from 2 ow0. y: the output row; indices: its argmax row.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ForwardBlock3x3Stride2(float* input, int w, int hStart, int hEnd, int ow0, float* y, int* indices)
    {
        var lanes = Vector256.Create(0, 2, 4, 6, 8, 10, 12, 14);
        var max = Vector256<float>.Zero;
        var best = Vector256<int>.Zero;
        bool first = true;
        for (int ih = hStart; ih < hEnd; ih++)
        {
            float* row = input + ih * w + 2 * ow0;
            var a = Avx.LoadVector256(row);
            var b = Avx.LoadVector256(row + 8);
            var left = Evens(Avx.LoadVector256(row - 1), Avx.LoadVector256(row + 7));
            var centre = Evens(a, b);
            var right = Odds(a, b);
            var leftIndex = lanes + Vector256.Create(ih * w + 2 * ow0 - 1);
            if (first)
            {
                max = left;
                best = leftIndex;
                first = false;
            }
            else
            {
                Take(left, leftIndex, ref max, ref best);
            }
            Take(centre, leftIndex + Vector256.Create(1), ref max, ref best);
            Take(right, leftIndex + Vector256.Create(2), ref max, ref best);
        }
        max.Store(y + ow0);
        best.Store(indices + ow0);
    }

    /// <summary>Lanes where v replaces the running max: larger, or a NaN, and the max not already a NaN (<see cref="ForwardWindow"/>'s rule).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Takes(Vector256<float> v, Vector256<float> max) =>
        (Vector256.GreaterThan(v, max) | ~Vector256.Equals(v, v)) & Vector256.Equals(max, max);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Take(Vector256<float> v, Vector256<int> vIndex, ref Vector256<float> max, ref Vector256<int> best)
    {
        var take = Takes(v, max);
        max = Vector256.ConditionalSelect(take, v, max);
        best = Vector256.ConditionalSelect(take.AsInt32(), vIndex, best);
    }

    // Lanes 0, 2, .., 14 (Evens) or 1, 3, .., 15 (Odds) of the 16 floats a, b.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Evens(Vector256<float> a, Vector256<float> b) =>
        Avx2.Permute4x64(Avx.Shuffle(a, b, 0b10_00_10_00).AsDouble(), 0b11_01_10_00).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Odds(Vector256<float> a, Vector256<float> b) =>
        Avx2.Permute4x64(Avx.Shuffle(a, b, 0b11_01_11_01).AsDouble(), 0b11_01_10_00).AsSingle();

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
