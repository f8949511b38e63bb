using System.Buffers;
using System.Numerics.Tensors;

namespace IlgpuOct.Kernels.Operators;

/// <summary>
/// The geometry of a 2-d convolution without bias: input (N, InC, H, W), weight (OutC, InC, K, K),
/// output (N, OutC, OutH, OutW) with OutH = (H + 2 Padding - K) / Stride + 1 (floor).
/// </summary>
public readonly record struct Conv2dShape(int N, int InC, int H, int W, int OutC, int Kernel, int Stride, int Padding)
{
    public int OutH => (H + 2 * Padding - Kernel) / Stride + 1;

    public int OutW => (W + 2 * Padding - Kernel) / Stride + 1;

    /// <summary>Elements of x: N * InC * H * W.</summary>
    public int InputLength => N * InC * H * W;

    /// <summary>Elements of w: OutC * InC * K * K.</summary>
    public int WeightLength => OutC * InC * Kernel * Kernel;

    /// <summary>Elements of y: N * OutC * OutH * OutW.</summary>
    public int OutputLength => N * OutC * OutH * OutW;

    /// <summary>Rows of one image's im2col matrix: InC * K * K.</summary>
    public int ColumnRows => InC * Kernel * Kernel;

    /// <summary>Columns of one image's im2col matrix: OutH * OutW.</summary>
    public int ColumnCols => OutH * OutW;

    /// <summary>A 1x1, stride-1, unpadded convolution reads the image itself as its column matrix.</summary>
    public bool IsPointwise => Kernel == 1 && Stride == 1 && Padding == 0;

    /// <summary>Throws with the offending value when the shape cannot describe a convolution.</summary>
    public void Validate()
    {
        if (N < 1 || InC < 1 || H < 1 || W < 1 || OutC < 1 || Kernel < 1 || Stride < 1 || Padding < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(Conv2dShape), $"{this}: every extent, the kernel and the stride must be >= 1 and the padding >= 0.");
        }
        if (H + 2 * Padding < Kernel || W + 2 * Padding < Kernel)
        {
            throw new ArgumentOutOfRangeException(nameof(Conv2dShape), $"{this}: the padded input ({H + 2 * Padding}x{W + 2 * Padding}) is smaller than the kernel {Kernel}; pad more or use a smaller kernel.");
        }
        if ((long)N * InC * H * W > int.MaxValue || (long)N * OutC * OutH * OutW > int.MaxValue || (long)ColumnRows * ColumnCols > int.MaxValue)
        {
            throw new ArgumentOutOfRangeException(nameof(Conv2dShape), $"{this}: a tensor exceeds 2^31-1 elements; split the batch.");
        }
    }
}

/// <summary>
/// 2-d convolution (NCHW, no bias, square kernel, any stride and padding).
/// CPU: per image, im2col (skipped for pointwise convolutions) and one SGEMM through
/// <see cref="Gemm.Cpu"/>; images run in parallel with pooled per-thread scratch; backward data
/// is W^T dy followed by col2im; backward weight accumulates dy col^T over images in a fixed
/// partition, so two runs on the same machine give the same bits.
/// </summary>
public static unsafe partial class Conv2d
{
    // Below this many multiply-adds a parallel loop costs more than it saves.
    private const long ParallelWorkThreshold = 1L << 16;

    /// <summary>y = conv(x, w) on the accelerator: the CPU implementation on <c>cpu</c>, the kernels elsewhere. Shapes as <see cref="ForwardCpu"/>.</summary>
    public static void Forward(Accelerator accelerator, in Conv2dShape s, View<float> x, View<float> w, View<float> y)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        if (accelerator.Kind == AcceleratorKind.Cpu)
        {
            ForwardCpu(s, x.AsSpan(), w.AsSpan(), y.AsSpan());
            return;
        }
        ForwardKernels(accelerator, s, x, w, y);
    }

    /// <summary>dx given dy on the accelerator. Shapes as <see cref="BackwardDataCpu"/>.</summary>
    public static void BackwardData(Accelerator accelerator, in Conv2dShape s, View<float> w, View<float> dy, View<float> dx)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        if (accelerator.Kind == AcceleratorKind.Cpu)
        {
            BackwardDataCpu(s, w.AsSpan(), dy.AsSpan(), dx.AsSpan());
            return;
        }
        BackwardDataKernels(accelerator, s, w, dy, dx);
    }

    /// <summary>dw (overwritten) given x and dy on the accelerator. Shapes as <see cref="BackwardWeightCpu"/>.</summary>
    public static void BackwardWeight(Accelerator accelerator, in Conv2dShape s, View<float> x, View<float> dy, View<float> dw)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        if (accelerator.Kind == AcceleratorKind.Cpu)
        {
            BackwardWeightCpu(s, x.AsSpan(), dy.AsSpan(), dw.AsSpan());
            return;
        }
        BackwardWeightKernels(accelerator, s, x, dy, dw);
    }

    /// <summary>y = conv(x, w). x (N, InC, H, W), w (OutC, InC, K, K), y (N, OutC, OutH, OutW) overwritten.</summary>
    public static void ForwardCpu(in Conv2dShape s, ReadOnlySpan<float> x, ReadOnlySpan<float> w, Span<float> y)
    {
        s.Validate();
        RequireLength(x.Length, s.InputLength, nameof(x), "(N, InC, H, W)");
        RequireLength(w.Length, s.WeightLength, nameof(w), "(OutC, InC, K, K)");
        RequireLength(y.Length, s.OutputLength, nameof(y), "(N, OutC, OutH, OutW)");
        var shape = s;
        int inImage = s.InC * s.H * s.W;
        int outImage = s.OutC * s.ColumnCols;
        fixed (float* px = x, pw = w, py = y)
        {
            nint ax = (nint)px, aw = (nint)pw, ay = (nint)py;
            ForEachImage(shape, n =>
            {
                var image = new ReadOnlySpan<float>((float*)ax + (long)n * inImage, inImage);
                var weight = new ReadOnlySpan<float>((float*)aw, shape.WeightLength);
                var output = new Span<float>((float*)ay + (long)n * outImage, outImage);
                if (shape.IsPointwise)
                {
                    Gemm.Cpu(false, false, shape.OutC, shape.ColumnCols, shape.InC, 1f, weight, shape.InC, image, shape.ColumnCols, 0f, output, shape.ColumnCols);
                    return;
                }
                int colLength = shape.ColumnRows * shape.ColumnCols;
                float[] col = ArrayPool<float>.Shared.Rent(colLength);
                try
                {
                    var columns = col.AsSpan(0, colLength);
                    Im2Col(shape, image, columns);
                    Gemm.Cpu(false, false, shape.OutC, shape.ColumnCols, shape.ColumnRows, 1f, weight, shape.ColumnRows, columns, shape.ColumnCols, 0f, output, shape.ColumnCols);
                }
                finally
                {
                    ArrayPool<float>.Shared.Return(col);
                }
            });
        }
    }

    /// <summary>dx = d loss / d x given dy. w (OutC, InC, K, K), dy (N, OutC, OutH, OutW), dx (N, InC, H, W) overwritten.</summary>
    public static void BackwardDataCpu(in Conv2dShape s, ReadOnlySpan<float> w, ReadOnlySpan<float> dy, Span<float> dx)
    {
        s.Validate();
        RequireLength(w.Length, s.WeightLength, nameof(w), "(OutC, InC, K, K)");
        RequireLength(dy.Length, s.OutputLength, nameof(dy), "(N, OutC, OutH, OutW)");
        RequireLength(dx.Length, s.InputLength, nameof(dx), "(N, InC, H, W)");
        var shape = s;
        int inImage = s.InC * s.H * s.W;
        int outImage = s.OutC * s.ColumnCols;
        fixed (float* pw = w, pdy = dy, pdx = dx)
        {
            nint aw = (nint)pw, ady = (nint)pdy, adx = (nint)pdx;
            ForEachImage(shape, n =>
            {
                var weight = new ReadOnlySpan<float>((float*)aw, shape.WeightLength);
                var gradOut = new ReadOnlySpan<float>((float*)ady + (long)n * outImage, outImage);
                var gradIn = new Span<float>((float*)adx + (long)n * inImage, inImage);
                if (shape.IsPointwise)
                {
                    Gemm.Cpu(true, false, shape.InC, shape.ColumnCols, shape.OutC, 1f, weight, shape.InC, gradOut, shape.ColumnCols, 0f, gradIn, shape.ColumnCols);
                    return;
                }
                int colLength = shape.ColumnRows * shape.ColumnCols;
                float[] col = ArrayPool<float>.Shared.Rent(colLength);
                try
                {
                    var columns = col.AsSpan(0, colLength);
                    Gemm.Cpu(true, false, shape.ColumnRows, shape.ColumnCols, shape.OutC, 1f, weight, shape.ColumnRows, gradOut, shape.ColumnCols, 0f, columns, shape.ColumnCols);
                    Col2Im(shape, columns, gradIn);
                }
                finally
                {
                    ArrayPool<float>.Shared.Return(col);
                }
            });
        }
    }

    /// <summary>
    /// dw = d loss / d w given x and dy, OVERWRITTEN (not accumulated). x (N, InC, H, W),
    /// dy (N, OutC, OutH, OutW), dw (OutC, InC, K, K).
    /// </summary>
    public static void BackwardWeightCpu(in Conv2dShape s, ReadOnlySpan<float> x, ReadOnlySpan<float> dy, Span<float> dw)
    {
        s.Validate();
        RequireLength(x.Length, s.InputLength, nameof(x), "(N, InC, H, W)");
        RequireLength(dy.Length, s.OutputLength, nameof(dy), "(N, OutC, OutH, OutW)");
        RequireLength(dw.Length, s.WeightLength, nameof(dw), "(OutC, InC, K, K)");
        var shape = s;
        int inImage = s.InC * s.H * s.W;
        int outImage = s.OutC * s.ColumnCols;
        int weightLength = s.WeightLength;
        long work = (long)s.N * s.OutC * s.ColumnRows * s.ColumnCols;
        // A fixed partition of the batch (not work stealing) keeps the summation order, and so the
        // bits, the same from run to run; partial sums are added in partition order.
        int parts = work < ParallelWorkThreshold ? 1 : Math.Min(s.N, Environment.ProcessorCount);
        float[]? partials = parts > 1 ? ArrayPool<float>.Shared.Rent((parts - 1) * weightLength) : null;
        try
        {
            fixed (float* px = x, pdy = dy, pdw = dw)
            fixed (float* ppart = partials)
            {
                nint ax = (nint)px, ady = (nint)pdy, adw = (nint)pdw, apart = (nint)ppart;
                void RunPart(int part)
                {
                    int first = (int)((long)shape.N * part / parts);
                    int end = (int)((long)shape.N * (part + 1) / parts);
                    var target = part == 0
                        ? new Span<float>((float*)adw, weightLength)
                        : new Span<float>((float*)apart + (long)(part - 1) * weightLength, weightLength);
                    int colLength = shape.IsPointwise ? 0 : shape.ColumnRows * shape.ColumnCols;
                    float[]? col = colLength > 0 ? ArrayPool<float>.Shared.Rent(colLength) : null;
                    try
                    {
                        for (int n = first; n < end; n++)
                        {
                            var image = new ReadOnlySpan<float>((float*)ax + (long)n * inImage, inImage);
                            var gradOut = new ReadOnlySpan<float>((float*)ady + (long)n * outImage, outImage);
                            ReadOnlySpan<float> columns = image;
                            if (col is not null)
                            {
                                Im2Col(shape, image, col.AsSpan(0, colLength));
                                columns = col.AsSpan(0, colLength);
                            }
                            float beta = n == first ? 0f : 1f;
                            Gemm.Cpu(false, true, shape.OutC, shape.ColumnRows, shape.ColumnCols, 1f, gradOut, shape.ColumnCols, columns, shape.ColumnCols, beta, target, shape.ColumnRows);
                        }
                    }
                    finally
                    {
                        if (col is not null)
                        {
                            ArrayPool<float>.Shared.Return(col);
                        }
                    }
                }

                if (parts == 1)
                {
                    RunPart(0);
                }
                else
                {
                    Parallel.For(0, parts, RunPart);
                    var total = new Span<float>((float*)adw, weightLength);
                    for (int part = 1; part < parts; part++)
                    {
                        TensorPrimitives.Add(total, new ReadOnlySpan<float>((float*)apart + (long)(part - 1) * weightLength, weightLength), total);
                    }
                }
            }
        }
        finally
        {
            if (partials is not null)
            {
                ArrayPool<float>.Shared.Return(partials);
            }
        }
    }

    /// <summary>
    /// Unfolds one image (InC, H, W) into its column matrix (InC*K*K, OutH*OutW): row (c, kh, kw)
    /// holds x[c, oh*S - P + kh, ow*S - P + kw] for every output position, 0 in the padding.
    /// </summary>
    public static void Im2Col(in Conv2dShape s, ReadOnlySpan<float> image, Span<float> columns)
    {
        int k = s.Kernel, stride = s.Stride, pad = s.Padding, h = s.H, w = s.W, outH = s.OutH, outW = s.OutW;
        int cols = outH * outW;
        for (int c = 0; c < s.InC; c++)
        {
            for (int kh = 0; kh < k; kh++)
            {
                for (int kw = 0; kw < k; kw++)
                {
                    var row = columns.Slice(((c * k + kh) * k + kw) * cols, cols);
                    ValidRange(kw, pad, stride, w, outW, out int owLo, out int owHi);
                    for (int oh = 0; oh < outH; oh++)
                    {
                        var dst = row.Slice(oh * outW, outW);
                        int ih = oh * stride - pad + kh;
                        if ((uint)ih >= (uint)h || owHi <= owLo)
                        {
                            dst.Clear();
                            continue;
                        }
                        dst[..owLo].Clear();
                        dst[owHi..].Clear();
                        var src = image.Slice((c * h + ih) * w, w);
                        if (stride == 1)
                        {
                            src.Slice(owLo - pad + kw, owHi - owLo).CopyTo(dst[owLo..owHi]);
                        }
                        else
                        {
                            for (int ow = owLo; ow < owHi; ow++)
                            {
                                dst[ow] = src[ow * stride - pad + kw];
                            }
                        }
                    }
                }
            }
        }
    }

    /// <summary>The adjoint of <see cref="Im2Col"/>: image (InC, H, W) = sum of column entries at their source pixels (overwritten).</summary>
    public static void Col2Im(in Conv2dShape s, ReadOnlySpan<float> columns, Span<float> image)
    {
        int k = s.Kernel, stride = s.Stride, pad = s.Padding, h = s.H, w = s.W, outH = s.OutH, outW = s.OutW;
        int cols = outH * outW;
        image[..(s.InC * h * w)].Clear();
        for (int c = 0; c < s.InC; c++)
        {
            for (int kh = 0; kh < k; kh++)
            {
                for (int kw = 0; kw < k; kw++)
                {
                    var row = columns.Slice(((c * k + kh) * k + kw) * cols, cols);
                    ValidRange(kw, pad, stride, w, outW, out int owLo, out int owHi);
                    if (owHi <= owLo)
                    {
                        continue;
                    }
                    for (int oh = 0; oh < outH; oh++)
                    {
                        int ih = oh * stride - pad + kh;
                        if ((uint)ih >= (uint)h)
                        {
                            continue;
                        }
                        var src = row.Slice(oh * outW, outW);
                        var dst = image.Slice((c * h + ih) * w, w);
                        if (stride == 1)
                        {
                            var target = dst.Slice(owLo - pad + kw, owHi - owLo);
                            TensorPrimitives.Add(target, src[owLo..owHi], target);
                        }
                        else
                        {
                            for (int ow = owLo; ow < owHi; ow++)
                            {
                                dst[ow * stride - pad + kw] += src[ow];
                            }
                        }
                    }
                }
            }
        }
    }

    /// <summary>Output columns [lo, hi) whose input column ow*S - P + kw lies inside [0, W).</summary>
    private static void ValidRange(int kw, int pad, int stride, int w, int outW, out int lo, out int hi)
    {
        lo = Math.Max(0, CeilDiv(pad - kw, stride));
        hi = Math.Min(outW, FloorDiv(w - 1 + pad - kw, stride) + 1);
    }

    private static int FloorDiv(int a, int b) => a >= 0 ? a / b : -((-a + b - 1) / b);

    private static int CeilDiv(int a, int b) => -FloorDiv(-a, b);

    private static void ForEachImage(in Conv2dShape s, Action<int> body)
    {
        long work = (long)s.N * s.OutC * s.ColumnRows * s.ColumnCols;
        if (s.N == 1 || work < ParallelWorkThreshold)
        {
            for (int n = 0; n < s.N; n++)
            {
                body(n);
            }
        }
        else
        {
            Parallel.For(0, s.N, body);
        }
    }

    // ---- Kernels (phase 2) ----

    private static void ForwardKernels(Accelerator accelerator, in Conv2dShape s, View<float> x, View<float> w, View<float> y) =>
        throw new NotSupportedException($"Conv2d kernels are not written yet; {accelerator.Id} cannot run Conv2d.Forward (use the cpu device).");

    private static void BackwardDataKernels(Accelerator accelerator, in Conv2dShape s, View<float> w, View<float> dy, View<float> dx) =>
        throw new NotSupportedException($"Conv2d kernels are not written yet; {accelerator.Id} cannot run Conv2d.BackwardData (use the cpu device).");

    private static void BackwardWeightKernels(Accelerator accelerator, in Conv2dShape s, View<float> x, View<float> dy, View<float> dw) =>
        throw new NotSupportedException($"Conv2d kernels are not written yet; {accelerator.Id} cannot run Conv2d.BackwardWeight (use the cpu device).");

    private static void RequireLength(int actual, int expected, string name, string layout)
    {
        if (actual != expected)
        {
            throw new ArgumentException($"Conv2d: {name} has {actual} elements but the shape needs {expected} {layout}; allocate it from the same Conv2dShape.", name);
        }
    }
}
