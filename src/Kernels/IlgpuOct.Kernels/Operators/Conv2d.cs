using System.Buffers;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using IlgpuOct.Kernels.Cpu;
using IlgpuOct.Kernels.Profiling;

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

/// <summary>The three products of a convolution layer.</summary>
public enum ConvPass
{
    Forward,
    BackwardData,
    BackwardWeight,
}

/// <summary>The FP32 convolution kernels: one body (Conv2d.ConvWarpTiled) and its [KernelVariant]s.</summary>
public enum ConvKernel
{
    /// <summary>Chosen per pass and shape: the autotuner on cuda, ConvWarpTiled elsewhere.</summary>
    Auto,
    /// <summary>64 x 128 block tiles on 4 warps, 4 blocks per SM (the default).</summary>
    ConvWarpTiled,
    /// <summary>128 x 128 block tiles on 8 warps, 2 blocks per SM.</summary>
    ConvWarpTiled128,
    /// <summary>64 x 64 block tiles on 4 warps, 8 x 4 outputs per thread, 5 blocks per SM.</summary>
    ConvWarpTiled64,
}

/// <summary>
/// An FP32 kernel and the number of slices its reduction is split into (partial products summed by
/// ConvSplitKReduce in split order). <c>default</c> is Auto; Splits 0 with a kernel: the shape's default.
/// Written and parsed as "ConvWarpTiled128 splits=4" (the autotuner's cache holds this text).
/// </summary>
public readonly record struct ConvVariant(ConvKernel Kernel, int Splits)
{
    public override string ToString() => $"{Kernel} splits={Splits}";

    /// <summary>Reads <see cref="ToString"/>'s text (or a bare kernel name: the shape's default splits).</summary>
    public static ConvVariant Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var parts = text.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length is 1 or 2 && Enum.TryParse<ConvKernel>(parts[0], ignoreCase: true, out var kernel) && Enum.IsDefined(kernel)
            && !int.TryParse(parts[0], out _))
        {
            if (parts.Length == 1)
            {
                return new ConvVariant(kernel, 0);
            }
            if (parts[1].StartsWith("splits=", StringComparison.Ordinal) && int.TryParse(parts[1].AsSpan(7), out int splits) && splits >= 0)
            {
                return new ConvVariant(kernel, splits);
            }
        }
        throw new FormatException($"Conv2d: '{text}' is not a convolution variant; write a kernel (Auto, ConvWarpTiled, ConvWarpTiled128 or ConvWarpTiled64), optionally followed by ' splits=N' (N >= 0).");
    }
}

/// <summary>
/// 2-d convolution (NCHW, no bias, square kernel, any stride and padding).
/// CPU: implicit GEMM on the CPU SGEMM (its packing, micro-kernel and threading): one product
/// over the whole batch per pass whose im2col operand packs its panels straight from the NCHW
/// tensor, so no column matrix is written. Forward: y = W cols(x), tiles stored straight into y.
/// Backward data, stride 1: a forward convolution of dy with the flipped, transposed weights;
/// stride &gt; 1: W^T dy into a column matrix, then col2im. Backward weight: dy cols(x)^T with the
/// batch as the GEMM's depth. Every output element is summed in an order that depends on the
/// shape only, so runs repeat bit for bit whatever the thread count.
/// </summary>
public static unsafe partial class Conv2d
{
    // Below this many multiply-adds a parallel loop costs more than it saves.
    private const long ParallelWorkThreshold = 1L << 16;

    /// <summary>Cost model: 2 N OutC OutH OutW InC K^2 FLOPs (each pass is one such product); bytes: the pass's input, the weight and the output once each.</summary>
    public static OperatorCost Cost(in Conv2dShape s, long inputElements) =>
        new(2.0 * s.N * s.OutC * s.OutH * s.OutW * s.InC * s.Kernel * s.Kernel, 4.0 * (inputElements + s.WeightLength + (inputElements == s.InputLength ? s.OutputLength : s.InputLength)));

    /// <summary>
    /// y = conv(x, w) on the accelerator: the CPU implementation on <c>cpu</c>, the kernels elsewhere. Shapes as
    /// <see cref="ForwardCpu"/>. <paramref name="variant"/> forces an FP32 kernel variant (Auto: tuned on cuda, the default elsewhere).
    /// </summary>
    public static void Forward(Accelerator accelerator, Conv2dShape s, View<float> x, View<float> w, View<float> y, ConvVariant variant = default)
    {
        OperatorDispatch.Run(accelerator, "Conv2d.Forward", Cost(s, s.InputLength),
            () => ForwardCpu(s, x.AsSpan(), w.AsSpan(), y.AsSpan()),
            () => ForwardKernels(accelerator, s, x, w, y, variant));
    }

    /// <summary>
    /// y = act(conv(x, w) + bias[oc] (+ residual)), act = ReLU or identity: a convolution with its bias,
    /// the residual connection and the activation (eval-mode BN folded into w and bias). On <c>cpu</c> one
    /// pass (the SGEMM's epilogue on each stored tile); elsewhere the convolution kernel, then one
    /// element-wise kernel. Shapes as <see cref="ForwardBiasActivationCpu"/>.
    /// </summary>
    public static void ForwardBiasActivation(Accelerator accelerator, Conv2dShape s, View<float> x, View<float> w, View<float> bias,
        View<float>? residual, bool relu, View<float> y)
    {
        var cost = Cost(s, s.InputLength);
        cost = cost with { Bytes = cost.Bytes + 4.0 * (s.OutC + (residual is null ? 0 : s.OutputLength)) };
        OperatorDispatch.Run(accelerator, "Conv2d.ForwardBiasActivation", cost,
            () => ForwardBiasActivationCpu(s, x.AsSpan(), w.AsSpan(), bias.AsSpan(), residual is { } r ? r.AsSpan() : default, relu, y.AsSpan()),
            () => ForwardBiasActivationKernels(accelerator, s, x, w, bias, residual, relu, y));
    }

    /// <summary>
    /// The cpu engine's inference convolution on bordered NHWC activations, weights from
    /// <see cref="PackWeightsNhwc(Accelerator, Conv2dShape, View{float}, View{float})"/>: Winograd F(2x2, 3x3) where
    /// <see cref="NhwcUsesWinograd"/>, else the direct convolution (contract of
    /// <see cref="ForwardNhwcCpu(in Conv2dShape, ReadOnlySpan{float}, int, ReadOnlySpan{float}, ReadOnlySpan{float}, ReadOnlySpan{float}, bool, Span{float}, int)"/>).
    /// The kernels run NCHW, so other engines refuse it. <paramref name="residual"/> null for none.
    /// </summary>
    public static void ForwardNhwc(Accelerator accelerator, Conv2dShape s, View<float> x, int inputBorder, View<float> packedWeights, View<float> bias,
        View<float>? residual, bool relu, View<float> y, int outputBorder)
    {
        OperatorDispatch.RunCpu(accelerator, NhwcUsesWinograd(s) ? "Conv2d.ForwardNhwcWinograd" : "Conv2d.ForwardNhwc", Cost(s, s.InputLength),
            () => ForwardNhwcPathCpu(s, x.AsSpan(), inputBorder, packedWeights.AsSpan(), bias.AsSpan(), residual is { } r ? r.AsSpan() : default, relu,
                y.AsSpan(), outputBorder));
    }

    /// <summary>Floats of the packed weights <see cref="ForwardNhwc"/> takes for <paramref name="s"/> (Winograd's or the direct convolution's).</summary>
    public static int NhwcWeightsLength(in Conv2dShape s) => NhwcUsesWinograd(s) ? WinogradPackedWeightLength(s) : NhwcPackedWeightLength(s);

    /// <summary>w (OutC, InC, K, K) packed for <see cref="ForwardNhwc"/> on the cpu engine (once per weights version).</summary>
    public static void PackWeightsNhwc(Accelerator accelerator, Conv2dShape s, View<float> w, View<float> packed) =>
        OperatorDispatch.RunCpu(accelerator, "Conv2d.PackWeightsNhwc", null, () => PackWeightsNhwcPath(s, w.AsSpan(), packed.AsSpan()));

    /// <summary>The NHWC path's packing: <see cref="PackWeightsWinograd"/> where <see cref="NhwcUsesWinograd"/>, else the direct convolution's.</summary>
    public static void PackWeightsNhwcPath(in Conv2dShape s, ReadOnlySpan<float> w, Span<float> packed)
    {
        if (NhwcUsesWinograd(s))
        {
            PackWeightsWinograd(s, w, packed);
        }
        else
        {
            PackWeightsNhwc(s, w, packed);
        }
    }

    /// <summary>The NHWC path's convolution: <see cref="ForwardWinogradNhwcCpu"/> where <see cref="NhwcUsesWinograd"/>, else the direct one; weights from <see cref="PackWeightsNhwcPath"/>.</summary>
    public static void ForwardNhwcPathCpu(in Conv2dShape s, ReadOnlySpan<float> x, int inputBorder, ReadOnlySpan<float> packedWeights,
        ReadOnlySpan<float> bias, ReadOnlySpan<float> residual, bool relu, Span<float> y, int outputBorder)
    {
        if (NhwcUsesWinograd(s))
        {
            ForwardWinogradNhwcCpu(s, x, inputBorder, packedWeights, bias, residual, relu, y, outputBorder);
        }
        else
        {
            ForwardNhwcCpu(s, x, inputBorder, packedWeights, bias, residual, relu, y, outputBorder);
        }
    }

    /// <summary>dx given dy on the accelerator. Shapes as <see cref="BackwardDataCpu"/>; <paramref name="variant"/> as in <see cref="Forward"/>.</summary>
    public static void BackwardData(Accelerator accelerator, Conv2dShape s, View<float> w, View<float> dy, View<float> dx, ConvVariant variant = default)
    {
        OperatorDispatch.Run(accelerator, "Conv2d.BackwardData", Cost(s, s.OutputLength),
            () => BackwardDataCpu(s, w.AsSpan(), dy.AsSpan(), dx.AsSpan()),
            () => BackwardDataKernels(accelerator, s, w, dy, dx, variant));
    }

    /// <summary>dw (overwritten) given x and dy on the accelerator. Shapes as <see cref="BackwardWeightCpu"/>; <paramref name="variant"/> as in <see cref="Forward"/>.</summary>
    public static void BackwardWeight(Accelerator accelerator, Conv2dShape s, View<float> x, View<float> dy, View<float> dw, ConvVariant variant = default)
    {
        OperatorDispatch.Run(accelerator, "Conv2d.BackwardWeight", Cost(s, s.InputLength),
            () => BackwardWeightCpu(s, x.AsSpan(), dy.AsSpan(), dw.AsSpan()),
            () => BackwardWeightKernels(accelerator, s, x, dy, dw, variant));
    }

    /// <summary>y = conv(x, w). x (N, InC, H, W), w (OutC, InC, K, K), y (N, OutC, OutH, OutW) overwritten.</summary>
    public static void ForwardCpu(in Conv2dShape s, ReadOnlySpan<float> x, ReadOnlySpan<float> w, Span<float> y)
    {
        s.Validate();
        RequireLength(x.Length, s.InputLength, nameof(x), "(N, InC, H, W)");
        RequireLength(w.Length, s.WeightLength, nameof(w), "(OutC, InC, K, K)");
        RequireLength(y.Length, s.OutputLength, nameof(y), "(N, OutC, OutH, OutW)");
        fixed (float* px = x, pw = w, py = y)
        {
            ForwardGemm(s, px, pw, py);
        }
    }

    /// <summary>
    /// y = act(conv(x, w) + bias[oc] (+ residual)): x (N, InC, H, W), w (OutC, InC, K, K), bias (OutC),
    /// residual (N, OutC, OutH, OutW) or empty for none, y (N, OutC, OutH, OutW) overwritten (not aliasing x or residual).
    /// Bit for bit <see cref="ForwardCpu"/>, then + bias, then + residual, then MathF.Max(v, 0) when <paramref name="relu"/>.
    /// </summary>
    public static void ForwardBiasActivationCpu(in Conv2dShape s, ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> bias,
        ReadOnlySpan<float> residual, bool relu, Span<float> y)
    {
        s.Validate();
        RequireLength(x.Length, s.InputLength, nameof(x), "(N, InC, H, W)");
        RequireLength(w.Length, s.WeightLength, nameof(w), "(OutC, InC, K, K)");
        RequireBiasAndResidual(s, bias.Length, residual.IsEmpty ? null : residual.Length);
        RequireLength(y.Length, s.OutputLength, nameof(y), "(N, OutC, OutH, OutW)");
        fixed (float* px = x, pw = w, pb = bias, pr = residual, py = y)
        {
            ForwardGemm(s, px, pw, py, new SgemmEpilogue(pb, residual.IsEmpty ? null : pr, relu));
        }
    }

    /// <summary>dx = d loss / d x given dy. w (OutC, InC, K, K), dy (N, OutC, OutH, OutW), dx (N, InC, H, W) overwritten.</summary>
    public static void BackwardDataCpu(in Conv2dShape s, ReadOnlySpan<float> w, ReadOnlySpan<float> dy, Span<float> dx)
    {
        s.Validate();
        RequireLength(w.Length, s.WeightLength, nameof(w), "(OutC, InC, K, K)");
        RequireLength(dy.Length, s.OutputLength, nameof(dy), "(N, OutC, OutH, OutW)");
        RequireLength(dx.Length, s.InputLength, nameof(dx), "(N, InC, H, W)");
        fixed (float* pw = w, pdy = dy, pdx = dx)
        {
            if (BackwardDataIsConvolution(s))
            {
                BackwardDataAsConvolution(s, pw, pdy, pdx);
            }
            else
            {
                BackwardDataThroughColumns(s, pw, pdy, pdx);
            }
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
        fixed (float* px = x, pdy = dy, pdw = dw)
        {
            // dw (OutC, InC*K*K) = dy (OutC, N*OutH*OutW) * cols(x)^T: the whole batch is the GEMM's depth,
            // summed slice by slice in one fixed order whatever the thread count, so the bits repeat.
            using var columns = new ImageColumns(s, px, transposed: true);
            SgemmEngine.Run(SgemmMicroKernel.Auto, Gemm.CpuMaxThreads, false, false, s.OutC, s.ColumnRows, s.N * s.ColumnCols, 1f,
                null, 0, ImageColumns.Pointwise(s.N, s.OutC, s.OutH, s.OutW, pdy), null, 0, columns,
                0f, pdw, new SgemmOutput(s.ColumnRows));
        }
    }

    // y (N, OutC, OutH, OutW) seen as (OutC, N*OutH*OutW) = W (OutC, InC*K*K) * cols(x): one GEMM over the
    // whole batch, its B panels gathered straight from x and its tiles written straight into y.
    private static void ForwardGemm(in Conv2dShape s, float* x, float* w, float* y, SgemmEpilogue epilogue = default)
    {
        int pixels = s.ColumnCols;
        var output = s.N == 1 ? new SgemmOutput(pixels) : new SgemmOutput(pixels, pixels, (nint)s.OutC * pixels);
        output = output with { Epilogue = epilogue };
        using var columns = new ImageColumns(s, x, transposed: false);
        SgemmEngine.Run(SgemmMicroKernel.Auto, Gemm.CpuMaxThreads, false, false, s.OutC, s.N * pixels, s.ColumnRows, 1f,
            w, s.ColumnRows, null, null, 0, columns, 0f, y, output);
    }

    // Stride 1: dx = conv(dy, w') with w'[c, oc, kh, kw] = w[oc, c, K-1-kh, K-1-kw] and padding K-1-P,
    // a forward convolution (no column matrix, no col2im); its output is exactly H x W.
    private static void BackwardDataAsConvolution(in Conv2dShape s, float* w, float* dy, float* dx)
    {
        float[] flipped = ArrayPool<float>.Shared.Rent(s.WeightLength);
        try
        {
            FlipTransposedWeights(s, new ReadOnlySpan<float>(w, s.WeightLength), flipped.AsSpan(0, s.WeightLength));
            fixed (float* pf = flipped)
            {
                ForwardGemm(BackwardDataShape(s), dy, pf, dx);
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(flipped);
        }
    }

    /// <summary>
    /// Whether backward data of <paramref name="s"/> is a forward convolution (<see cref="BackwardDataShape"/> with
    /// <see cref="FlipTransposedWeights"/>): stride 1 and padding below the kernel.
    /// </summary>
    public static bool BackwardDataIsConvolution(in Conv2dShape s) => s.Stride == 1 && s.Padding < s.Kernel;

    /// <summary>The forward convolution that is backward data of a stride-1 <paramref name="s"/>: dy (N, OutC, OutH, OutW) to dx (N, InC, H, W), padding K-1-P.</summary>
    public static Conv2dShape BackwardDataShape(in Conv2dShape s) => new(s.N, s.OutC, s.OutH, s.OutW, s.InC, s.Kernel, 1, s.Kernel - 1 - s.Padding);

    /// <summary>
    /// w (OutC, InC, K, K) to flipped (InC, OutC, K, K) with flipped[c, oc, kh, kw] = w[oc, c, K-1-kh, K-1-kw]: the weights of
    /// <see cref="BackwardDataShape"/>.
    /// </summary>
    public static void FlipTransposedWeights(in Conv2dShape s, ReadOnlySpan<float> w, Span<float> flipped)
    {
        RequireLength(w.Length, s.WeightLength, nameof(w), "(OutC, InC, K, K)");
        RequireLength(flipped.Length, s.WeightLength, nameof(flipped), "(InC, OutC, K, K)");
        int taps = s.Kernel * s.Kernel;
        fixed (float* pw = w, pf = flipped)
        {
            // In 16 x 16 blocks of (c, oc): each block reads and writes 16 runs of 16 * taps contiguous
            // floats (a whole-row loop strided a page or more per tap group on the large layers).
            const int block = 16;
            for (int c0 = 0; c0 < s.InC; c0 += block)
            {
                int c1 = Math.Min(c0 + block, s.InC);
                for (int oc0 = 0; oc0 < s.OutC; oc0 += block)
                {
                    int oc1 = Math.Min(oc0 + block, s.OutC);
                    for (int c = c0; c < c1; c++)
                    {
                        float* dst = pf + ((long)c * s.OutC + oc0) * taps;
                        for (int oc = oc0; oc < oc1; oc++, dst += taps)
                        {
                            float* src = pw + ((long)oc * s.InC + c) * taps + taps - 1;
                            for (int t = 0; t < taps; t++)
                            {
                                dst[t] = src[-t];
                            }
                        }
                    }
                }
            }
        }
    }

    // Stride > 1: per chunk of images, columns (InC*K*K, count*OutH*OutW) = W^T * dy (dy's panels read
    // straight from its NCHW layout), then col2im of each image, images in parallel.
    private static void BackwardDataThroughColumns(in Conv2dShape s, float* w, float* dy, float* dx)
    {
        const long maxColumnFloats = 1L << 22;
        int pixels = s.ColumnCols, rows = s.ColumnRows;
        int inImage = s.InC * s.H * s.W, outImage = s.OutC * pixels;
        int perChunk = (int)Math.Clamp(maxColumnFloats / ((long)rows * pixels), 1, s.N);
        float[] columns = ArrayPool<float>.Shared.Rent(rows * perChunk * pixels);
        var shape = s;
        try
        {
            fixed (float* pc = columns)
            {
                nint acol = (nint)pc, adx = (nint)dx;
                for (int first = 0; first < s.N; first += perChunk)
                {
                    int count = Math.Min(perChunk, s.N - first), ld = count * pixels;
                    SgemmEngine.Run(SgemmMicroKernel.Auto, Gemm.CpuMaxThreads, true, false, rows, ld, s.OutC, 1f,
                        w, rows, null, null, 0, ImageColumns.Pointwise(count, s.OutC, s.OutH, s.OutW, dy + (long)first * outImage),
                        0f, pc, new SgemmOutput(ld));
                    int chunkFirst = first;
                    void Scatter(int i) => Col2Im(shape, new ReadOnlySpan<float>((float*)acol, rows * ld), ld, i * pixels,
                        new Span<float>((float*)adx + (long)(chunkFirst + i) * inImage, inImage));
                    if (count == 1 || Gemm.CpuMaxThreads == 1 || (long)rows * ld < ParallelWorkThreshold)
                    {
                        for (int i = 0; i < count; i++)
                        {
                            Scatter(i);
                        }
                    }
                    else
                    {
                        Parallel.For(0, count, new ParallelOptions { MaxDegreeOfParallelism = Gemm.CpuMaxThreads }, Scatter);
                    }
                }
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(columns);
        }
    }

    /// <summary>
    /// The im2col matrix of a batch, cols(x) (InC*K*K, N*OutH*OutW) with row (c, kh, kw) and column
    /// (n, oh, ow) holding x[n, c, oh*S - P + kh, ow*S - P + kw] (0 in the padding), as an SGEMM operand
    /// (or its transpose) that packs its panels straight from x: the matrix is never written out.
    /// </summary>
    private sealed class ImageColumns : SgemmOperand, IDisposable
    {
        // Floats of one panel's row block kept on the stack (a 16 x 256 panel is 16 KB).
        private const int MaxStackBlock = 1 << 13;

        private readonly float* _x; // (N, InC, H, W)
        private readonly bool _transposed;
        private readonly int _h, _w, _k, _stride, _pad, _outH, _outW, _pixels, _plane, _image;

        // Stride 1 reads every column run as one plain copy from a source whose rows hold the padding
        // (x itself when P = 0, else a zero-bordered copy of x): element (n, c, r, q) at
        // _source[n * _sourceImage + c * _sourcePlane + r * _sourceRow + q] is x[n, c, r - P, q - P].
        private readonly float* _source;       // (N, InC, H + 2P, W + 2P)
        private readonly float* _paddedCopy;   // owned: (N, InC, H + 2P, W + 2P), null when P = 0 or stride > 1
        private readonly int _sourceRow, _sourcePlane, _sourceImage;

        public ImageColumns(in Conv2dShape s, float* x, bool transposed)
        {
            _x = x;
            _transposed = transposed;
            // A pointwise convolution reads each image plane as one long row: runs as long as the plane.
            bool flat = s.IsPointwise;
            _h = flat ? 1 : s.H;
            _w = flat ? s.H * s.W : s.W;
            _k = s.Kernel;
            _stride = s.Stride;
            _pad = s.Padding;
            _outH = flat ? 1 : s.OutH;
            _outW = flat ? s.H * s.W : s.OutW;
            _pixels = _outH * _outW;
            _plane = s.H * s.W;
            _image = s.InC * _plane;
            _source = x;
            _sourceRow = _w;
            _sourcePlane = _plane;
            _sourceImage = _image;
            if (_stride == 1 && _pad > 0)
            {
                _sourceRow = _w + 2 * _pad;
                _sourcePlane = (_h + 2 * _pad) * _sourceRow;
                _sourceImage = s.InC * _sourcePlane;
                _paddedCopy = (float*)NativeMemory.AlignedAlloc((nuint)((long)s.N * _sourceImage * sizeof(float)), 64);
                _source = _paddedCopy;
                PadPlanes(s.N * s.InC);
            }
        }

        public void Dispose()
        {
            if (_paddedCopy is not null)
            {
                NativeMemory.AlignedFree(_paddedCopy);
            }
        }

        // The zero-bordered copy, plane by plane (planes in parallel when there are enough floats).
        private void PadPlanes(int planes)
        {
            nint src = (nint)_x, dst = (nint)_paddedCopy;
            int h = _h, w = _w, pad = _pad, plane = _plane, row = _sourceRow, padded = _sourcePlane;
            void PadPlane(int q)
            {
                float* s = (float*)src + (long)q * plane;
                float* d = (float*)dst + (long)q * padded;
                Zero(d, pad * row);
                d += pad * row;
                for (int r = 0; r < h; r++, s += w, d += row)
                {
                    Zero(d, pad);
                    CopyRun(s, d + pad, w);
                    Zero(d + pad + w, pad);
                }
                Zero(d, pad * row);
            }
            if (Gemm.CpuMaxThreads == 1 || planes == 1 || (long)planes * padded < ParallelWorkThreshold)
            {
                for (int q = 0; q < planes; q++)
                {
                    PadPlane(q);
                }
            }
            else
            {
                Parallel.For(0, planes, new ParallelOptions { MaxDegreeOfParallelism = Gemm.CpuMaxThreads }, PadPlane);
            }
        }

        /// <summary>A tensor (N, C, H, W) as the matrix (C, N*H*W).</summary>
        public static ImageColumns Pointwise(int n, int channels, int h, int w, float* data) =>
            new(new Conv2dShape(n, channels, h, w, 1, 1, 1, 0), data, transposed: false);

        public override void PackRows(int row0, int rows, int p0, int kc, int width, float* dst)
        {
            if (_transposed)
            {
                GatherAcross(p0, kc, row0, rows, width, dst);
            }
            else
            {
                GatherAlong(row0, rows, p0, kc, width, dst);
            }
        }

        public override void PackColumns(int p0, int kc, int col0, int cols, int width, float* dst)
        {
            if (_transposed)
            {
                GatherAlong(col0, cols, p0, kc, width, dst);
            }
            else
            {
                GatherAcross(p0, kc, col0, cols, width, dst);
            }
        }

        // Matrix rows [row0, row0+kc) by columns [col0, col0+cols): for each row, runs of one output
        // row (n, oh) that do not cross a panel, each copied from one input row. Panels of `width` columns.
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void GatherAcross(int row0, int kc, int col0, int cols, int width, float* dst)
        {
            if (_stride == 1)
            {
                GatherRuns(row0, kc, col0, cols, width, dst);
                return;
            }
            nint panelSize = (nint)width * kc;
            int n0 = col0 / _pixels, pix0 = col0 - n0 * _pixels, oh0 = pix0 / _outW, ow0 = pix0 - oh0 * _outW;
            for (int p = 0; p < kc; p++)
            {
                Tap(row0 + p, out float* plane, out int kh, out int kw, out int lo, out int hi);
                float* d = dst + (nint)p * width; // this row in the first panel
                int i = 0, panel = 0;              // column inside the panel, the panel's offset
                int n = n0, oh = oh0, ow = ow0;
                for (int j = 0; j < cols;)
                {
                    int len = Math.Min(Math.Min(_outW - ow, cols - j), width - i);
                    int ih = oh * _stride - _pad + kh;
                    if ((uint)ih >= (uint)_h)
                    {
                        Zero(d + panel + i, len);
                    }
                    else
                    {
                        // src[o * S] is x at output column o; inside the image only for o in [lo, hi).
                        float* src = plane + (long)n * _image + ih * _w - _pad + kw;
                        int a = Math.Clamp(lo, ow, ow + len), b = Math.Clamp(hi, a, ow + len);
                        float* di = d + panel + i - ow;
                        Zero(di + ow, a - ow);
                        if (_stride == 1)
                        {
                            CopyRun(src + a, di + a, b - a);
                        }
                        else
                        {
                            for (int o = a; o < b; o++)
                            {
                                di[o] = src[o * _stride];
                            }
                        }
                        Zero(di + b, ow + len - b);
                    }
                    NextRun(len, width, (int)panelSize, ref j, ref i, ref panel, ref n, ref oh, ref ow);
                }
                Zero(d + panel + i, i == 0 ? 0 : width - i); // the last panel's columns past the matrix edge
            }
        }

        // Stride 1: the columns' runs (one output row inside one panel) are the same for every matrix
        // row up to a shift of the source, so they are listed once per call and each row is a series of
        // plain copies (no bounds, no padding: the source holds it).
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void GatherRuns(int row0, int kc, int col0, int cols, int width, float* dst)
        {
            int maxRuns = cols + cols / width + 2;
            int[] table = ArrayPool<int>.Shared.Rent(3 * maxRuns);
            try
            {
                fixed (int* runs = table)
                {
                    int* sourceAt = runs, destinationAt = runs + maxRuns, length = runs + 2 * maxRuns;
                    int count = 0;
                    int n = col0 / _pixels, pix = col0 - n * _pixels, oh = pix / _outW, ow = pix - oh * _outW;
                    int i = 0, panel = 0, panelSize = width * kc;
                    for (int j = 0; j < cols;)
                    {
                        int len = Math.Min(Math.Min(_outW - ow, cols - j), width - i);
                        sourceAt[count] = n * _sourceImage + oh * _sourceRow + ow;
                        destinationAt[count] = panel + i;
                        length[count++] = len;
                        NextRun(len, width, panelSize, ref j, ref i, ref panel, ref n, ref oh, ref ow);
                    }
                    int taps = _k * _k;
                    for (int p = 0; p < kc; p++)
                    {
                        int row = row0 + p, c = row / taps, tap = row - c * taps, kh = tap / _k, kw = tap - kh * _k;
                        float* source = _source + (long)c * _sourcePlane + kh * _sourceRow + kw;
                        float* d = dst + (nint)p * width;
                        for (int r = 0; r < count; r++)
                        {
                            CopyRun(source + sourceAt[r], d + destinationAt[r], length[r]);
                        }
                        if (i != 0)
                        {
                            Zero(d + panel + i, width - i); // the last panel's columns past the matrix edge
                        }
                    }
                }
            }
            finally
            {
                ArrayPool<int>.Shared.Return(table);
            }
        }

        // Matrix rows [row0, row0+rows) by columns [col0, col0+kc), packed along the columns: panels of
        // `width` rows, each column's `width` entries consecutive. Each panel's rows are gathered as
        // contiguous runs into a scratch block, then transposed into place 8 x 8 at a time.
        [SkipLocalsInit]
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void GatherAlong(int row0, int rows, int col0, int kc, int width, float* dst)
        {
            int panels = (rows + width - 1) / width;
            nint panelSize = (nint)width * kc;
            int blockFloats = width * kc;
            float* stackBlock = stackalloc float[blockFloats <= MaxStackBlock ? blockFloats : 1];
            float[]? heapBlock = blockFloats <= MaxStackBlock ? null : ArrayPool<float>.Shared.Rent(blockFloats);
            try
            {
                fixed (float* pheap = heapBlock)
                {
                    float* block = heapBlock is null ? stackBlock : pheap;
                    for (int q = 0; q < panels; q++)
                    {
                        int valid = Math.Min(width, rows - q * width);
                        GatherAcross(row0 + q * width, valid, col0, kc, kc, block);
                        Zero(block + (nint)valid * kc, (width - valid) * kc);
                        SgemmPacking.Transpose(block, kc, width, kc, dst + q * panelSize, width);
                    }
                }
            }
            finally
            {
                if (heapBlock is not null)
                {
                    ArrayPool<float>.Shared.Return(heapBlock);
                }
            }
        }

        // Moves past a run of len columns of one output row: the matrix column j, the column i inside the
        // panel at offset panel, and the output position (n, oh, ow).
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private void NextRun(int len, int width, int panelSize, ref int j, ref int i, ref int panel, ref int n, ref int oh, ref int ow)
        {
            j += len;
            i += len;
            if (i == width)
            {
                i = 0;
                panel += panelSize;
            }
            ow += len;
            if (ow == _outW)
            {
                ow = 0;
                if (++oh == _outH)
                {
                    oh = 0;
                    n++;
                }
            }
        }

        // Row (c, kh, kw) of the matrix: the first image's plane of channel c, and the output columns [lo, hi) that read inside the image.
        private void Tap(int row, out float* plane, out int kh, out int kw, out int lo, out int hi)
        {
            int taps = _k * _k;
            int c = row / taps, tap = row - c * taps;
            kh = tap / _k;
            kw = tap - kh * _k;
            plane = _x + (long)c * _plane;
            ValidRange(kw, _pad, _stride, _w, _outW, out lo, out hi);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Zero(float* d, int count)
    {
        for (int i = 0; i < count; i++)
        {
            d[i] = 0;
        }
    }

    // count floats; short runs (a 2x2 or 4x4 map's rows) as two overlapping moves instead of a loop.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void CopyRun(float* src, float* dst, int count)
    {
        if (count >= 8 && Vector256.IsHardwareAccelerated)
        {
            int i = 0;
            for (; i + 8 <= count; i += 8)
            {
                Vector256.Store(Vector256.Load(src + i), dst + i);
            }
            if (i < count)
            {
                Vector256.Store(Vector256.Load(src + count - 8), dst + count - 8);
            }
        }
        else if (count is >= 4 and < 8)
        {
            Vector128.Store(Vector128.Load(src), dst);
            Vector128.Store(Vector128.Load(src + count - 4), dst + count - 4);
        }
        else if (count is >= 2 and < 4)
        {
            *(long*)dst = *(long*)src;
            *(long*)(dst + count - 2) = *(long*)(src + count - 2);
        }
        else
        {
            for (int i = 0; i < count; i++)
            {
                dst[i] = src[i];
            }
        }
    }

    /// <summary>
    /// The adjoint of the im2col matrix of one image: image (InC, H, W) = sum of the column entries at
    /// their source pixels (overwritten); row r of this image's columns starts at columns[r * ld + offset].
    /// </summary>
    public static void Col2Im(in Conv2dShape s, ReadOnlySpan<float> columns, int ld, int offset, Span<float> image)
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
                    var row = columns.Slice(((c * k + kh) * k + kw) * ld + offset, cols);
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

    // ---- Kernels: implicit GEMM, warp-tiled (ConvWarpTiled) ----
    //
    // Each product is a GEMM C (M x N) = A (M x K) B (K x N) whose operands are gathered straight from
    // the tensors (no im2col buffer); one kernel body, the pass a block-uniform parameter:
    //   forward         y  (OutC x N*OH*OW) = w (OutC x InC*K*K) * cols(x)       first = w,  second = x
    //   backward data   dx (InC x N*H*W)    = w^T (InC x OutC*K*K) * taps(dy)    first = w,  second = dy
    //   backward weight dw (OutC x InC*K*K) = dy (OutC x N*OH*OW) * cols(x)^T    first = dy, second = x
    // Tiling is Gemm4's (Gemm.cs) on 4 warps: block tile 64 x 128, BK 8, warp tiles 64 x 32 (2 x 2
    // sub-tiles of 32 x 16 whose lanes, 8 x 4, own 4 x 4 outputs), 8 x 8 outputs per thread. The same
    // body, specialised by [KernelVariant], gives 128 x 128 tiles on 8 warps (ConvWarpTiled128) and 64 x 64
    // tiles with 8 x 4 outputs per thread (ConvWarpTiled64); on cuda the autotuner picks a variant and
    // whether to split the reduction per pass and shape (Choose), elsewhere DefaultVariant runs. The next
    // k-slice is gathered into registers while the current one is multiplied, then stored into the other
    // half of double-buffered shared tiles: one barrier per slice. Shared k-rows are padded to 132 floats
    // (= 4 mod 32 banks), so the A stores (4 k of one row per thread), the B stores (one column per
    // thread) and the warp's reads (8 and 4 distinct addresses 4 apart, the rest broadcasts) are all free
    // of bank conflicts.
    // Gathers divide nothing inside the k loop: a thread's B column (its output pixel, input pixel or
    // (c, ky, kx) tap) is decoded once per launch; the k-side indices ((c, ky, kx), (oc, ky, kx) with ky
    // and kx also as (quotient, remainder) by the stride, or (image, oh, ow)) are decoded once at the
    // block's first k and then carried as counters, one increment with carries per k.
    // Float4 (128-bit) accesses: w rows in the forward pass (InC*K*K % 4 == 0), dy rows in the weight
    // gradient (OH*OW % 4 == 0), the stores of y and dx (pixel planes % 4 == 0) and of dw (InC*K*K % 4
    // == 0), each only when the launcher's Float4.IsAligned says so; scalar accesses otherwise.
    // The weight gradient's output is small and its reduction N*OH*OW long: the reduction is split over
    // gridDim.z into partial products, summed by ConvSplitKReduce in split order (no atomics, so two
    // runs give the same bits). Forward and backward data split the same way when the tuner finds it
    // faster (small outputs such as layer4's).

    private const int ConvTileM = 64;         // block tile rows (the body reads it; ConvWarpTiled128 overrides it)
    private const int ConvTileN = 128;        // block tile columns
    private const int ConvTileK = Gemm.Warp128K;
    private const int ConvPitch = Gemm.Warp128Stride;
    private const int ConvBuffer = ConvTileK * ConvPitch;
    private const int ConvThreads = 128;      // threads per block = 2 ConvTileM (the body reads it; ConvWarpTiled128 overrides it)
    private const int ConvThreadCols = 8;     // output columns per thread (8 rows each); ConvWarpTiled64 overrides it
    private const int ConvTile128M = 128;     // ConvWarpTiled128: 128 x 128 tiles on 8 warps
    private const int ConvTile128Threads = 256;
    private const int ConvTile64N = 64;       // ConvWarpTiled64: 64 x 64 tiles on 4 warps, 8 x 4 outputs per thread
    private const int ConvTile64ThreadCols = 4;
    private const int ReduceThreads = 256;

    /// <summary>
    /// The three convolution products (see the section comment); launch bounds keep 4 blocks (16 warps) per
    /// SM at 128 registers. Variants of the same body: ConvWarpTiled128 (128 x 128 tiles, 8 warps as 2 x 4,
    /// each thread gathering half of its B column's k-slice; 2 blocks per SM at 128 registers) and
    /// ConvWarpTiled64 (64 x 64 tiles, 8 x 4 outputs per thread, warp tiles 64 x 16, half a B column's
    /// k-slice per thread: fewer registers, 5 blocks = 20 warps per SM, twice the blocks on small outputs).
    /// </summary>
    [Kernel(MaxThreadsPerBlock = ConvThreads, MinBlocksPerMultiprocessor = 4)]
    [KernelVariant(nameof(ConvKernel.ConvWarpTiled128), nameof(ConvTileM), ConvTile128M, nameof(ConvThreads), ConvTile128Threads,
        MaxThreadsPerBlock = ConvTile128Threads, MinBlocksPerMultiprocessor = 2)]
    [KernelVariant(nameof(ConvKernel.ConvWarpTiled64), nameof(ConvTileN), ConvTile64N, nameof(ConvThreadCols), ConvTile64ThreadCols,
        MinBlocksPerMultiprocessor = 5)]
    private static void ConvWarpTiled(KernelContext ctx, int pass, View<float> first, View<float> second, View<float> output,
        int inC, int h, int wd, int outC, int kernel, int stride, int padding, int outH, int outW, int batch,
        int kPerSplit, bool vectorFirst, bool vectorOutput)
    {
        var tileA = ctx.Shared<float>(2 * ConvBuffer);  // two buffers of [k][row]
        var tileB = ctx.Shared<float>(2 * ConvBuffer);  // two buffers of [k][column]
        Span<float> acc = stackalloc float[8 * ConvThreadCols];  // acc[ConvThreadCols i + j]: row threadRow + 32 (i / 4) + i % 4, column threadCol + 16 (j / 4) + j % 4
        Span<float> regA = stackalloc float[8];
        Span<float> regB = stackalloc float[ConvThreadCols];
        Span<float> nextA = stackalloc float[4];
        const int bRows = ConvTileK * ConvTileN / ConvThreads;  // k-rows of its B column each thread gathers per slice
        Span<float> nextB = stackalloc float[bRows];
        Span<int> column = stackalloc int[5];           // this thread's B column, decoded once (ConvDecodeColumn)
        Span<int> stateA = stackalloc int[2];           // k counters of this thread's A elements (ConvDecodeK)
        Span<int> stateB = stackalloc int[7];           // k counters of the block's B rows
        int tid = ctx.ThreadIdx.X;
        int lane = tid & 31;
        int warp = tid >> 5;
        int rowBase = ctx.BlockIdx.Y * ConvTileM;
        int colBase = ctx.BlockIdx.X * ConvTileN;
        int bColumn = tid % ConvTileN;
        int bRow = tid / ConvTileN * bRows;
        int kk = kernel * kernel;
        int outHW = outH * outW;
        int mDim = pass == PassBackwardData ? inC : outC;
        int nDim = pass == PassForward ? batch * outHW : pass == PassBackwardData ? batch * h * wd : inC * kk;
        int kDim = pass == PassForward ? inC * kk : pass == PassBackwardData ? outC * kk : batch * outHW;
        int kBegin = ctx.BlockIdx.Z * kPerSplit;
        int kEnd = Math.Min(kDim, kBegin + kPerSplit);
        // Warps as (ConvTileM / 64) x (ConvTileN / warpCols) warp tiles of 64 x warpCols (lanes 8 x 4, 4 x 4 outputs per sub-tile).
        const int warpCols = 4 * ConvThreadCols;
        int threadRow = warp / (ConvTileN / warpCols) * 64 + (lane >> 2) * 4;
        int threadCol = warp % (ConvTileN / warpCols) * warpCols + (lane & 3) * 4;
        int aRow = rowBase + (tid >> 1);
        bool columnValid = colBase + bColumn < nDim;
        ConvDecodeColumn(pass, columnValid ? colBase + bColumn : 0, inC, h, wd, outC, kernel, stride, padding, outH, outW, column);
        ConvDecodeK(pass, kBegin + bRow, kBegin + (tid & 1) * 4, inC, h, wd, outC, kernel, stride, padding, outH, outW, stateA, stateB);
        ConvGatherA(pass, first, aRow, mDim, rowBase, kBegin, kDim, kEnd, vectorFirst, tid, inC, kk, outC, outHW, stateA, nextA);
        ConvGatherB(pass, second, columnValid, kBegin + bRow, kEnd, bRows, inC, h, wd, kernel, stride, padding, outH, outW, column, stateB, nextB);
        for (int s = 0; s < 4; s++)
        {
            tileA[Gemm.Gemm4SharedIndex(false, tid, s)] = nextA[s];
        }
        for (int r = 0; r < bRows; r++)
        {
            tileB[(bRow + r) * ConvPitch + bColumn] = nextB[r];
        }
        ctx.Barrier();
        int current = 0;
        for (int k0 = kBegin; k0 < kEnd; k0 += ConvTileK)
        {
            bool hasNext = k0 + ConvTileK < kEnd;
            if (hasNext)
            {
                // Issued before the products so the global loads are in flight while they run.
                ConvGatherA(pass, first, aRow, mDim, rowBase, k0 + ConvTileK, kDim, kEnd, vectorFirst, tid, inC, kk, outC, outHW, stateA, nextA);
                ConvGatherB(pass, second, columnValid, k0 + ConvTileK + bRow, kEnd, bRows, inC, h, wd, kernel, stride, padding, outH, outW, column, stateB, nextB);
            }
            for (int q = 0; q < ConvTileK; q++)
            {
                for (int i = 0; i < 8; i++)
                {
                    regA[i] = tileA[current + q * ConvPitch + threadRow + (i >> 2) * 32 + (i & 3)];
                }
                for (int j = 0; j < ConvThreadCols; j++)
                {
                    regB[j] = tileB[current + q * ConvPitch + threadCol + (j >> 2) * 16 + (j & 3)];
                }
                Gemm.Gemm4Fma(regA, regB, acc, ConvThreadCols);
            }
            // The other buffer was last read in the previous slice, before the barrier that ended it.
            int other = ConvBuffer - current;
            if (hasNext)
            {
                for (int s = 0; s < 4; s++)
                {
                    tileA[other + Gemm.Gemm4SharedIndex(false, tid, s)] = nextA[s];
                }
                for (int r = 0; r < bRows; r++)
                {
                    tileB[other + (bRow + r) * ConvPitch + bColumn] = nextB[r];
                }
            }
            current = other;
            ctx.Barrier();
        }
        // Rows are channels; columns are (image, pixel) of y or dx, or (c, ky, kx) of dw; split z writes partial product z.
        int plane = pass == PassForward ? outHW : h * wd;
        int splitOffset = ctx.BlockIdx.Z * mDim * nDim;
        for (int i = 0; i < 8; i++)
        {
            int m = rowBase + threadRow + (i >> 2) * 32 + (i & 3);
            for (int jq = 0; jq < ConvThreadCols / 4; jq++)
            {
                int n = colBase + threadCol + jq * 16;
                int at = i * ConvThreadCols + jq * 4;
                if (m < mDim && n < nDim)
                {
                    if (vectorOutput && n + 3 < nDim)
                    {
                        Float4.StoreAligned(output, ConvOutputIndex(pass, m, n, mDim, nDim, plane, splitOffset),
                            acc[at], acc[at + 1], acc[at + 2], acc[at + 3]);
                    }
                    else
                    {
                        for (int j = 0; j < 4; j++)
                        {
                            if (n + j < nDim)
                            {
                                output[ConvOutputIndex(pass, m, n + j, mDim, nDim, plane, splitOffset)] = acc[at + j];
                            }
                        }
                    }
                }
            }
        }
    }

    /// <summary>y = act(y + bias[channel] (+ residual)) in place: the epilogue of <see cref="ForwardBiasActivation"/> on the kernel accelerators.</summary>
    [Kernel]
    private static void ConvBiasActivation(KernelContext ctx, View<float> y, View<float> bias, View<float> residual, bool addResidual, bool relu, int channels, int plane)
    {
        // Grid-stride over y (N, channels, plane); the same order of operations as the CPU epilogue.
        for (int i = ctx.GlobalX; i < y.Length; i += ctx.GridStrideX)
        {
            float v = y[i] + bias[i / plane % channels];
            if (addResidual)
            {
                v += residual[i];
            }
            y[i] = relu ? MathF.Max(v, 0f) : v;
        }
    }

    /// <summary>dw[i] = sum over the splits z = 0, 1, ... of partial[z * dw.Length + i], in that order.</summary>
    [Kernel]
    private static void ConvSplitKReduce(KernelContext ctx, View<float> partial, View<float> dw, int splits)
    {
        int count = dw.Length;
        for (int i = ctx.GlobalX; i < count; i += ctx.GridStrideX)
        {
            float sum = 0f;
            for (int z = 0; z < splits; z++)
            {
                sum += partial[z * count + i];
            }
            dw[i] = sum;
        }
    }

    /// <summary>
    /// What a thread's B column n fixes for the launch. Forward, n = (image, oh, ow): column[0..1] = ih, iw
    /// of tap (0, 0), column[2] = x offset of (image, c 0, ih, iw) (negative in the padding). Backward
    /// data, n = (image, ih, iw) with ihp = ih + padding: column[0..1] = ihp / stride, ihp % stride,
    /// column[2..3] the same for iw, column[4] = dy offset of (image, oc 0, ihp / stride, iwp / stride).
    /// Backward weight, n = (c, ky, kx): column[0..1] = ky, kx, column[2] = c H W + ky W + kx.
    /// </summary>
    private static void ConvDecodeColumn(int pass, int n, int inC, int h, int wd, int outC, int kernel, int stride, int padding,
        int outH, int outW, Span<int> column)
    {
        int kk = kernel * kernel;
        int outHW = outH * outW;
        if (pass == PassForward)
        {
            int image = n / outHW;
            int p = n - image * outHW;
            int oh = p / outW;
            column[0] = oh * stride - padding;
            column[1] = (p - oh * outW) * stride - padding;
            column[2] = image * inC * h * wd + column[0] * wd + column[1];
        }
        else if (pass == PassBackwardData)
        {
            int image = n / (h * wd);
            int p = n - image * h * wd;
            int ih = p / wd;
            int ihp = ih + padding;
            int iwp = p - ih * wd + padding;
            column[0] = ihp / stride;
            column[1] = ihp - column[0] * stride;
            column[2] = iwp / stride;
            column[3] = iwp - column[2] * stride;
            column[4] = image * outC * outHW + column[0] * outW + column[2];
        }
        else
        {
            int c = n / kk;
            int r = n - c * kk;
            column[0] = r / kernel;
            column[1] = r - column[0] * kernel;
            column[2] = c * h * wd + column[0] * wd + column[1];
        }
    }

    /// <summary>
    /// The k counters, decoded once: stateB for the block's B rows from k = kBegin, stateA for this thread's
    /// A elements from k = kA (backward passes; the forward A is a plain row-major w). Layouts are those
    /// <see cref="ConvGatherA"/> and <see cref="ConvGatherB"/> advance.
    /// </summary>
    private static void ConvDecodeK(int pass, int kBegin, int kA, int inC, int h, int wd, int outC, int kernel, int stride, int padding,
        int outH, int outW, Span<int> stateA, Span<int> stateB)
    {
        int kk = kernel * kernel;
        int outHW = outH * outW;
        if (pass == PassForward)
        {
            // B row k = (c, ky, kx): stateB = (c H W + ky W + kx, ky, kx).
            int c = kBegin / kk;
            int r = kBegin - c * kk;
            stateB[1] = r / kernel;
            stateB[2] = r - stateB[1] * kernel;
            stateB[0] = c * h * wd + stateB[1] * wd + stateB[2];
        }
        else if (pass == PassBackwardData)
        {
            // A element (ic, k = (oc, r)) = w[oc InC K^2 + ic K^2 + r]: stateA = (oc InC K^2 + r, r).
            int ocA = kA / kk;
            stateA[1] = kA - ocA * kk;
            stateA[0] = ocA * inC * kk + stateA[1];
            // B row k = (oc, ky, kx): stateB = (oc OH OW, ky, kx, ky / stride, ky % stride, kx / stride, kx % stride).
            int oc = kBegin / kk;
            int r = kBegin - oc * kk;
            stateB[0] = oc * outHW;
            stateB[1] = r / kernel;
            stateB[2] = r - stateB[1] * kernel;
            stateB[3] = stateB[1] / stride;
            stateB[4] = stateB[1] - stateB[3] * stride;
            stateB[5] = stateB[2] / stride;
            stateB[6] = stateB[2] - stateB[5] * stride;
        }
        else
        {
            // A element (oc, k = (image, p)) = dy[image OutC OH OW + oc OH OW + p]: stateA = (image OutC OH OW + p, p).
            int imageA = kA / outHW;
            stateA[1] = kA - imageA * outHW;
            stateA[0] = imageA * outC * outHW + stateA[1];
            // B row k = (image, oh, ow): stateB = (image InC H W, oh, ow, oh stride - padding, ow stride - padding).
            int image = kBegin / outHW;
            int p = kBegin - image * outHW;
            stateB[0] = image * inC * h * wd;
            stateB[1] = p / outW;
            stateB[2] = p - stateB[1] * outW;
            stateB[3] = stateB[1] * stride - padding;
            stateB[4] = stateB[2] * stride - padding;
        }
    }

    /// <summary>
    /// This thread's 4 elements of the 64 x 8 A slice at k0 (row m, k = k0 + (tid % 2) 4 + 0..3; zeros
    /// outside the operand), advancing stateA by the slice's 8 k.
    /// </summary>
    private static void ConvGatherA(int pass, View<float> first, int m, int mDim, int rowBase, int k0, int kDim, int kEnd, bool vector,
        int tid, int inC, int kk, int outC, int outHW, Span<int> stateA, Span<float> dst)
    {
        if (pass == PassForward)
        {
            Gemm.Gemm4LoadSlice(first, kDim, false, vector, mDim, kDim, rowBase, k0, tid, dst);
            return;
        }
        int k = k0 + (tid & 1) * 4;
        bool row = m < mDim;
        if (pass == PassBackwardData)
        {
            for (int j = 0; j < 8; j++)
            {
                if (j < 4)
                {
                    dst[j] = row && k + j < kEnd ? first[stateA[0] + m * kk] : 0f;
                }
                stateA[0] += 1;
                stateA[1] += 1;
                if (stateA[1] == kk)
                {
                    stateA[1] = 0;
                    stateA[0] += (inC - 1) * kk;
                }
            }
            return;
        }
        // dy rows: k % 4 == 0 and OH OW % 4 == 0 (vector) put the 4 elements in one image, 16-byte aligned.
        bool whole = vector && row && k + 3 < kEnd;
        if (whole)
        {
            var f = Float4.LoadAligned(first, stateA[0] + m * outHW);
            dst[0] = f.X;
            dst[1] = f.Y;
            dst[2] = f.Z;
            dst[3] = f.W;
        }
        for (int j = 0; j < 8; j++)
        {
            if (j < 4 && !whole)
            {
                dst[j] = row && k + j < kEnd ? first[stateA[0] + m * outHW] : 0f;
            }
            stateA[0] += 1;
            stateA[1] += 1;
            if (stateA[1] == outHW)
            {
                stateA[1] = 0;
                stateA[0] += (outC - 1) * outHW;
            }
        }
    }

    /// <summary>
    /// This thread's part of its column of the 8 x 128 B slice: rows k0 .. k0 + rows - 1 into dst[0 .. rows)
    /// (zeros in the padding, between strides, past kEnd or past the last column), advancing stateB by the
    /// slice's 8 k whatever rows is.
    /// </summary>
    private static void ConvGatherB(int pass, View<float> second, bool columnValid, int k0, int kEnd, int rows,
        int inC, int h, int wd, int kernel, int stride, int padding, int outH, int outW, Span<int> column, Span<int> stateB, Span<float> dst)
    {
        for (int r = 0; r < ConvTileK; r++)
        {
            bool live = columnValid && r < rows && k0 + r < kEnd;
            if (pass == PassForward)
            {
                int ih = column[0] + stateB[1];
                int iw = column[1] + stateB[2];
                if (r < rows)
                {
                    dst[r] = live && ih >= 0 && ih < h && iw >= 0 && iw < wd ? second[column[2] + stateB[0]] : 0f;
                }
                stateB[0] += 1;
                stateB[2] += 1;
                if (stateB[2] == kernel)
                {
                    stateB[2] = 0;
                    stateB[1] += 1;
                    stateB[0] += wd - kernel;
                    if (stateB[1] == kernel)
                    {
                        stateB[1] = 0;
                        stateB[0] += h * wd - kernel * wd;
                    }
                }
            }
            else if (pass == PassBackwardData)
            {
                // dx(ih, iw) gathers dy(oh, ow) through tap (ky, kx) when ih + padding - ky = oh stride (same for w).
                int oh = column[0] - stateB[3];
                int ow = column[2] - stateB[5];
                bool hit = live && stateB[4] == column[1] && stateB[6] == column[3] && oh >= 0 && oh < outH && ow >= 0 && ow < outW;
                if (r < rows)
                {
                    dst[r] = hit ? second[column[4] + stateB[0] - stateB[3] * outW - stateB[5]] : 0f;
                }
                stateB[2] += 1;
                stateB[6] += 1;
                if (stateB[6] == stride)
                {
                    stateB[6] = 0;
                    stateB[5] += 1;
                }
                if (stateB[2] == kernel)
                {
                    stateB[2] = 0;
                    stateB[5] = 0;
                    stateB[6] = 0;
                    stateB[1] += 1;
                    stateB[4] += 1;
                    if (stateB[4] == stride)
                    {
                        stateB[4] = 0;
                        stateB[3] += 1;
                    }
                    if (stateB[1] == kernel)
                    {
                        stateB[1] = 0;
                        stateB[3] = 0;
                        stateB[4] = 0;
                        stateB[0] += outH * outW;
                    }
                }
            }
            else
            {
                int ih = stateB[3] + column[0];
                int iw = stateB[4] + column[1];
                if (r < rows)
                {
                    dst[r] = live && ih >= 0 && ih < h && iw >= 0 && iw < wd ? second[stateB[0] + stateB[3] * wd + stateB[4] + column[2]] : 0f;
                }
                stateB[2] += 1;
                stateB[4] += stride;
                if (stateB[2] == outW)
                {
                    stateB[2] = 0;
                    stateB[4] = -padding;
                    stateB[1] += 1;
                    stateB[3] += stride;
                    if (stateB[1] == outH)
                    {
                        stateB[1] = 0;
                        stateB[3] = -padding;
                        stateB[0] += inC * h * wd;
                    }
                }
            }
        }
    }

    // Where C(m, n) goes, after the partial products of the splits before this one: out[image, m, pixel] with n = (image, pixel) for y and dx, row-major m x n for dw.
    private static int ConvOutputIndex(int pass, int m, int n, int mDim, int nDim, int plane, int splitOffset)
    {
        if (pass == PassBackwardWeight)
        {
            return splitOffset + m * nDim + n;
        }
        int image = n / plane;
        return splitOffset + (image * mDim + m) * plane + n - image * plane;
    }

    // ---- FP32 dispatch: which kernel variant and how many splits of the reduction (autotuned on cuda)

    /// <summary>Block tile rows and columns and threads per block of each FP32 kernel variant (its [KernelVariant] values).</summary>
    private static (int TileM, int TileN, int Threads) Geometry(ConvKernel kernel) => kernel switch
    {
        ConvKernel.ConvWarpTiled => (ConvTileM, ConvTileN, ConvThreads),
        ConvKernel.ConvWarpTiled128 => (ConvTile128M, ConvTileN, ConvTile128Threads),
        ConvKernel.ConvWarpTiled64 => (ConvTileM, ConvTile64N, ConvThreads),
        _ => throw new ArgumentOutOfRangeException(nameof(kernel), $"Conv2d: {kernel} is not a kernel; use {ConvKernelNames}."),
    };

    private const string ConvKernelNames = "Auto, ConvWarpTiled, ConvWarpTiled128 or ConvWarpTiled64";

    private static int PassInt(ConvPass pass) => pass switch
    {
        ConvPass.Forward => PassForward,
        ConvPass.BackwardData => PassBackwardData,
        ConvPass.BackwardWeight => PassBackwardWeight,
        _ => throw new ArgumentOutOfRangeException(nameof(pass), $"Conv2d: unknown pass {pass}; use Forward, BackwardData or BackwardWeight."),
    };

    /// <summary>The pass's product C (m x n) = A (m x k) B (k x n), see the section comment; n columns per row of the output when stored.</summary>
    private static (int M, int N, int K) ProductDims(in Conv2dShape s, ConvPass pass) => pass switch
    {
        ConvPass.Forward => (s.OutC, s.N * s.ColumnCols, s.ColumnRows),
        ConvPass.BackwardData => (s.InC, s.N * s.H * s.W, s.OutC * s.Kernel * s.Kernel),
        _ => (s.OutC, s.ColumnRows, s.N * s.ColumnCols),
    };

    /// <summary>The launch of <paramref name="kernel"/> with the reduction cut into about <paramref name="splits"/> slices (multiples of the k slice): grid, slice depth, actual splits.</summary>
    private static (LaunchConfig Config, int KPerSplit, int Splits) Plan(in Conv2dShape s, ConvPass pass, ConvKernel kernel, int splits)
    {
        var (mDim, nDim, kDim) = ProductDims(s, pass);
        int kPerSplit = (kDim + splits - 1) / splits;
        kPerSplit = (kPerSplit + ConvTileK - 1) / ConvTileK * ConvTileK;
        splits = (kDim + kPerSplit - 1) / kPerSplit;
        var (tileM, tileN, threads) = Geometry(kernel);
        return (new LaunchConfig(new Dim3((nDim + tileN - 1) / tileN, (mDim + tileM - 1) / tileM, splits), threads), kPerSplit, splits);
    }

    /// <summary>
    /// What runs off cuda (and on cuda when the tuner is bypassed): ConvWarpTiled, the forward and
    /// backward-data products unsplit, the weight gradient split by <see cref="WeightGradientSplits"/>.
    /// </summary>
    public static ConvVariant DefaultVariant(ConvPass pass, Conv2dShape s)
    {
        var (mDim, nDim, kDim) = ProductDims(s, pass);
        int splits = pass == ConvPass.BackwardWeight ? WeightGradientSplits(mDim, nDim, kDim) : 1;
        return new ConvVariant(ConvKernel.ConvWarpTiled, Plan(s, pass, ConvKernel.ConvWarpTiled, splits).Splits);
    }

    /// <summary>
    /// The candidates the cuda autotuner times for a pass and shape, the default first (ties keep it): each
    /// kernel variant unsplit and split to fill the GPU (<see cref="WeightGradientSplits"/>'s rule, for every pass).
    /// </summary>
    public static IReadOnlyList<ConvVariant> TunedVariants(ConvPass pass, Conv2dShape s)
    {
        var (mDim, nDim, kDim) = ProductDims(s, pass);
        var list = new List<ConvVariant> { DefaultVariant(pass, s) };
        foreach (var kernel in new[] { ConvKernel.ConvWarpTiled, ConvKernel.ConvWarpTiled128, ConvKernel.ConvWarpTiled64 })
        {
            foreach (int splits in new[] { 1, WeightGradientSplits(mDim, nDim, kDim) })
            {
                // Equal launches (after rounding the slices) are one candidate.
                var candidate = new ConvVariant(kernel, Plan(s, pass, kernel, splits).Splits);
                if (!list.Contains(candidate))
                {
                    list.Add(candidate);
                }
            }
        }
        return list;
    }

    /// <summary>The autotuner's key: pass, shape, precision and which operands take Float4 accesses.</summary>
    public static string TuningProblem(ConvPass pass, Conv2dShape s, bool vectorFirst, bool vectorOutput) =>
        $"conv2d {pass} x({s.N},{s.InC},{s.H},{s.W}) w({s.OutC},{s.InC},{s.Kernel},{s.Kernel}) stride={s.Stride} pad={s.Padding} fp32 float4={(vectorFirst ? 1 : 0)}{(vectorOutput ? 1 : 0)}";

    private static readonly Lazy<Autotuner> Tuner = new(() => Autotuner.InKernelCache("autotune-conv.json"));

    /// <summary>
    /// The winner among <see cref="TunedVariants"/> for a pass on <paramref name="device"/>, through
    /// <paramref name="tuner"/> (<paramref name="timeMilliseconds"/> runs one candidate once; called on a cache miss only).
    /// </summary>
    public static ConvVariant Choose(Autotuner tuner, string device, ConvPass pass, Conv2dShape s, bool vectorFirst, bool vectorOutput,
        Func<ConvVariant, double> timeMilliseconds)
    {
        ArgumentNullException.ThrowIfNull(tuner);
        ArgumentNullException.ThrowIfNull(timeMilliseconds);
        var candidates = TunedVariants(pass, s);
        string winner = tuner.Choose(device, TuningProblem(pass, s, vectorFirst, vectorOutput), [.. candidates.Select(c => c.ToString())],
            name => timeMilliseconds(ConvVariant.Parse(name)));
        return ConvVariant.Parse(winner);
    }

    /// <summary>
    /// One pass on the FP32 kernels: <paramref name="variant"/> when given (Splits 0: the default for the
    /// shape), else the cuda autotuner's choice on cuda and <see cref="DefaultVariant"/> elsewhere.
    /// </summary>
    private static void RunWarpTiled(Accelerator accelerator, in Conv2dShape s, ConvPass pass, View<float> first, View<float> second, View<float> output,
        bool vectorFirst, ConvVariant variant)
    {
        var kernel = variant.Kernel == ConvKernel.Auto ? ForcedKernel : variant.Kernel;
        ConvVariant chosen;
        if (kernel != ConvKernel.Auto)
        {
            chosen = new ConvVariant(kernel, variant.Splits > 0 ? variant.Splits : DefaultVariant(pass, s).Splits);
        }
        else if (accelerator.Kind == AcceleratorKind.Cuda)
        {
            var shape = s;
            chosen = Choose(Tuner.Value, accelerator.Name, pass, s, vectorFirst, Float4.IsAligned(output, OutputRow(s, pass)), candidate =>
            {
                // Into a scratch output, once untimed (module load) and once between CUDA events.
                using var scratch = accelerator.Allocate<float>(output.Length);
                Launch(accelerator, shape, pass, first, second, scratch.View, vectorFirst, candidate);
                using var timer = accelerator.CreateTimer();
                timer.Start();
                Launch(accelerator, shape, pass, first, second, scratch.View, vectorFirst, candidate);
                timer.Stop();
                return timer.ElapsedMilliseconds;
            });
        }
        else
        {
            chosen = DefaultVariant(pass, s);
        }
        Launch(accelerator, s, pass, first, second, output, vectorFirst, chosen);
    }

    /// <summary>Floats per stored row of the pass's output (pixel planes of y and dx, InC K^2 of dw): its Float4 alignment unit.</summary>
    private static int OutputRow(in Conv2dShape s, ConvPass pass) => pass switch
    {
        ConvPass.Forward => s.ColumnCols,
        ConvPass.BackwardData => s.H * s.W,
        _ => s.ColumnRows,
    };

    private static void Launch(Accelerator accelerator, in Conv2dShape s, ConvPass pass, View<float> first, View<float> second, View<float> output,
        bool vectorFirst, ConvVariant variant)
    {
        var (config, kPerSplit, splits) = Plan(s, pass, variant.Kernel, Math.Max(1, variant.Splits));
        if (splits == 1)
        {
            LaunchKernel(accelerator, variant.Kernel, config, s, pass, first, second, output, kPerSplit, vectorFirst, Float4.IsAligned(output, OutputRow(s, pass)));
            return;
        }
        // Split z writes partial product z; the reduction sums them in split order (no atomics: repeatable bits).
        var partial = Workspace.Get<float>(accelerator, "Conv2d split-k partial products", splits * output.Length);
        LaunchKernel(accelerator, variant.Kernel, config, s, pass, first, second, partial, kPerSplit, vectorFirst, Float4.IsAligned(partial, OutputRow(s, pass)));
        ConvSplitKReduceKernel.Launch(accelerator, ReduceConfig(output.Length), partial, output, splits);
    }

    private static void LaunchKernel(Accelerator accelerator, ConvKernel kernel, LaunchConfig config, in Conv2dShape s, ConvPass pass,
        View<float> first, View<float> second, View<float> output, int kPerSplit, bool vectorFirst, bool vectorOutput)
    {
        int p = PassInt(pass);
        switch (kernel)
        {
            case ConvKernel.ConvWarpTiled:
                ConvWarpTiledKernel.Launch(accelerator, config, p, first, second, output,
                    s.InC, s.H, s.W, s.OutC, s.Kernel, s.Stride, s.Padding, s.OutH, s.OutW, s.N, kPerSplit, vectorFirst, vectorOutput);
                break;
            case ConvKernel.ConvWarpTiled128:
                ConvWarpTiled128Kernel.Launch(accelerator, config, p, first, second, output,
                    s.InC, s.H, s.W, s.OutC, s.Kernel, s.Stride, s.Padding, s.OutH, s.OutW, s.N, kPerSplit, vectorFirst, vectorOutput);
                break;
            case ConvKernel.ConvWarpTiled64:
                ConvWarpTiled64Kernel.Launch(accelerator, config, p, first, second, output,
                    s.InC, s.H, s.W, s.OutC, s.Kernel, s.Stride, s.Padding, s.OutH, s.OutW, s.N, kPerSplit, vectorFirst, vectorOutput);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(kernel), $"Conv2d: {kernel} is not a kernel; use {ConvKernelNames}.");
        }
    }

    private static int _forcedKernel;

    /// <summary>
    /// The FP32 kernel every pass uses when its caller passes no variant (Auto, the default: the tuner on
    /// cuda, ConvWarpTiled elsewhere); profile and bench set it to time one variant. Splits stay the shape's default.
    /// </summary>
    public static ConvKernel ForcedKernel
    {
        get => (ConvKernel)Volatile.Read(ref _forcedKernel);
        set
        {
            if (!Enum.IsDefined(value))
            {
                throw new ArgumentOutOfRangeException(nameof(ForcedKernel), $"Conv2d: {value} is not a kernel; use {ConvKernelNames}.");
            }
            Volatile.Write(ref _forcedKernel, (int)value);
        }
    }

    private static void ForwardKernels(Accelerator accelerator, in Conv2dShape s, View<float> x, View<float> w, View<float> y, ConvVariant variant)
    {
        s.Validate();
        RequireLength(x.Length, s.InputLength, nameof(x), "(N, InC, H, W)");
        RequireLength(w.Length, s.WeightLength, nameof(w), "(OutC, InC, K, K)");
        RequireLength(y.Length, s.OutputLength, nameof(y), "(N, OutC, OutH, OutW)");
        if (accelerator.Precision != MatmulPrecision.Fp32)
        {
            LaunchTensorCore(accelerator, s, PassForward, w, x, y);
            return;
        }
        // Float4: rows of w (InC K^2 floats each) and pixel planes of y, where they start 16-byte aligned.
        RunWarpTiled(accelerator, s, ConvPass.Forward, w, x, y, Float4.IsAligned(w, s.ColumnRows), variant);
    }

    private static void ForwardBiasActivationKernels(Accelerator accelerator, in Conv2dShape s, View<float> x, View<float> w, View<float> bias,
        View<float>? residual, bool relu, View<float> y)
    {
        RequireBiasAndResidual(s, bias.Length, residual?.Length);
        ForwardKernels(accelerator, s, x, w, y, default);
        // Not fused into the convolution's store: one extra pass over y (y itself stands in for an absent residual; never read then).
        ConvBiasActivationKernel.Launch(accelerator, BiasActivationConfig(s.OutputLength), y, bias, residual ?? y, residual is not null, relu, s.OutC, s.ColumnCols);
    }

    private static void BackwardDataKernels(Accelerator accelerator, in Conv2dShape s, View<float> w, View<float> dy, View<float> dx, ConvVariant variant)
    {
        s.Validate();
        RequireLength(w.Length, s.WeightLength, nameof(w), "(OutC, InC, K, K)");
        RequireLength(dy.Length, s.OutputLength, nameof(dy), "(N, OutC, OutH, OutW)");
        RequireLength(dx.Length, s.InputLength, nameof(dx), "(N, InC, H, W)");
        if (accelerator.Precision != MatmulPrecision.Fp32)
        {
            LaunchTensorCore(accelerator, s, PassBackwardData, w, dy, dx);
            return;
        }
        // w^T is read column-wise (scalar); Float4 stores where the pixel planes of dx are aligned.
        RunWarpTiled(accelerator, s, ConvPass.BackwardData, w, dy, dx, false, variant);
    }

    private static void BackwardWeightKernels(Accelerator accelerator, in Conv2dShape s, View<float> x, View<float> dy, View<float> dw, ConvVariant variant)
    {
        s.Validate();
        RequireLength(x.Length, s.InputLength, nameof(x), "(N, InC, H, W)");
        RequireLength(dy.Length, s.OutputLength, nameof(dy), "(N, OutC, OutH, OutW)");
        RequireLength(dw.Length, s.WeightLength, nameof(dw), "(OutC, InC, K, K)");
        if (accelerator.Precision != MatmulPrecision.Fp32)
        {
            LaunchTensorCore(accelerator, s, PassBackwardWeight, dy, x, dw);
            return;
        }
        // Float4: rows of dy (OH OW floats per (image, oc)) and rows of dw / the partial products (InC K^2 floats).
        RunWarpTiled(accelerator, s, ConvPass.BackwardWeight, dy, x, dw, Float4.IsAligned(dy, s.ColumnCols), variant);
    }

    private static LaunchConfig BiasActivationConfig(int count) => new((int)Math.Min(1024, (count + ReduceThreads - 1) / ReduceThreads), ReduceThreads);

    private static LaunchConfig ReduceConfig(int count) => new((int)Math.Min(1024, (count + ReduceThreads - 1) / ReduceThreads), ReduceThreads);

    [LaunchShapes]
    private static IEnumerable<LaunchShape> LaunchShapes()
    {
        var kernels = new[] { (ConvKernel.ConvWarpTiled, ConvWarpTiledKernel.Definition), (ConvKernel.ConvWarpTiled128, ConvWarpTiled128Kernel.Definition), (ConvKernel.ConvWarpTiled64, ConvWarpTiled64Kernel.Definition) };
        foreach (var (layer, s) in ResNet18Shapes.Convolutions)
        {
            yield return new LaunchShape(ConvBiasActivationKernel.Definition, layer + " bias and activation", BiasActivationConfig(s.OutputLength));
            foreach (var pass in new[] { ConvPass.Forward, ConvPass.BackwardData, ConvPass.BackwardWeight })
            {
                int splits = DefaultVariant(pass, s).Splits;
                foreach (var (kernel, definition) in kernels)
                {
                    var (config, _, actual) = Plan(s, pass, kernel, splits);
                    yield return new LaunchShape(definition, $"{layer} {PassName(pass)}" + (actual > 1 ? $", {actual} splits" : ""), config);
                }
                var (_, _, reduced) = Plan(s, pass, ConvKernel.ConvWarpTiled, splits);
                if (reduced > 1)
                {
                    yield return new LaunchShape(ConvSplitKReduceKernel.Definition, $"{layer} {PassName(pass)}, sum of {reduced} splits", ReduceConfig(ProductLength(s, pass)));
                }
            }
        }
    }

    private static string PassName(ConvPass pass) => pass switch
    {
        ConvPass.Forward => "forward",
        ConvPass.BackwardData => "backward data",
        _ => "backward weight",
    };

    private static int ProductLength(in Conv2dShape s, ConvPass pass) => pass == ConvPass.BackwardData ? s.InputLength : pass == ConvPass.Forward ? s.OutputLength : s.WeightLength;

    /// <summary>
    /// How many splits the reduction of a product is cut into when split: enough blocks of ConvWarpTiled
    /// to fill a large GPU (~512), each split at least 512 deep so writing and summing the partial products
    /// stays a small share. The partial products then hold at most ~512 tiles of 64 x 128 floats (16 MiB).
    /// The default for the weight gradient (small output, reduction N*OH*OW long); a tuner candidate for every pass.
    /// </summary>
    internal static int WeightGradientSplits(int mDim, int nDim, int kDim)
    {
        long tiles = (long)((mDim + ConvTileM - 1) / ConvTileM) * ((nDim + ConvTileN - 1) / ConvTileN);
        long wanted = Math.Max(1, 512 / tiles);
        long deepest = Math.Max(1, kDim / 512);
        return (int)Math.Clamp(Math.Min(wanted, deepest), 1, 65535);
    }

    private static void RequireBiasAndResidual(in Conv2dShape s, int biasLength, int? residualLength)
    {
        RequireLength(biasLength, s.OutC, "bias", "(OutC)");
        if (residualLength is { } length)
        {
            RequireLength(length, s.OutputLength, "residual", "(N, OutC, OutH, OutW)");
        }
    }

    private static void RequireLength(int actual, int expected, string name, string layout) =>
        ShapeCheck.RequireLength("Conv2d", nameof(Conv2dShape), actual, expected, name, layout);

    // ---- Self-tests (ilgpuoct selftest) ----

    [SelfTests]
    private static IEnumerable<SelfTestCase> SelfTests()
    {
        var shapes = new[]
        {
            new Conv2dShape(2, 3, 17, 17, 5, 7, 2, 3),
            new Conv2dShape(4, 16, 9, 9, 32, 3, 1, 1),
            new Conv2dShape(2, 70, 7, 7, 66, 3, 2, 1),
            new Conv2dShape(8, 16, 8, 8, 32, 1, 2, 0),
            new Conv2dShape(3, 16, 6, 6, 24, 1, 1, 0),
            new Conv2dShape(8, 4, 16, 16, 8, 3, 1, 1), // weight gradient split over the batch (atomic adds)
        };
        // The default (Auto) on every shape; each forced kernel variant, unsplit and split, on two of them.
        var variants = new ConvVariant[] { new(ConvKernel.ConvWarpTiled, 3), new(ConvKernel.ConvWarpTiled128, 1), new(ConvKernel.ConvWarpTiled128, 3),
            new(ConvKernel.ConvWarpTiled64, 1), new(ConvKernel.ConvWarpTiled64, 3) };
        var cases = shapes.Select(s => (s, default(ConvVariant)))
            .Concat(from s in new[] { shapes[0], shapes[2] } from v in variants select (s, v));
        foreach (var (s, variant) in cases)
        {
            string shape = $"x({s.N},{s.InC},{s.H},{s.W}) w({s.OutC},{s.InC},{s.Kernel},{s.Kernel}) s{s.Stride} p{s.Padding}"
                + (variant == default ? "" : " " + variant);
            // Sums of ColumnRows products of values in [-1, 1): tolerance grows with their count.
            double tolerance = 2e-6 * Math.Max(s.ColumnRows, s.OutC * s.Kernel * s.Kernel) + 1e-5;
            yield return new SelfTestCase("Conv2d.Forward", shape, (acc, seed) => OperatorSelfTest.Compare(acc,
                [OperatorSelfTest.Random(seed, s.InputLength), OperatorSelfTest.Random(seed + 1, s.WeightLength), new float[s.OutputLength]], [2],
                (a, v) => Forward(a, s, v[0], v[1], v[2], variant), h => ForwardCpu(s, h[0], h[1], h[2]), tolerance));
            yield return new SelfTestCase("Conv2d.BackwardData", shape, (acc, seed) => OperatorSelfTest.Compare(acc,
                [OperatorSelfTest.Random(seed, s.WeightLength), OperatorSelfTest.Random(seed + 1, s.OutputLength), new float[s.InputLength]], [2],
                (a, v) => BackwardData(a, s, v[0], v[1], v[2], variant), h => BackwardDataCpu(s, h[0], h[1], h[2]), tolerance));
            // The epilogue has no kernel variants of its own: its cases run once per shape.
            if (variant == default)
            {
                bool relu = s.Kernel != 1; // both epilogue variants: 1x1 shapes without the ReLU
                yield return new SelfTestCase("Conv2d.ForwardBiasActivation", shape, (acc, seed) => OperatorSelfTest.Compare(acc,
                    [OperatorSelfTest.Random(seed, s.InputLength), OperatorSelfTest.Random(seed + 1, s.WeightLength), OperatorSelfTest.Random(seed + 2, s.OutC),
                     OperatorSelfTest.Random(seed + 3, s.OutputLength), new float[s.OutputLength]], [4],
                    (a, v) => ForwardBiasActivation(a, s, v[0], v[1], v[2], v[3], relu, v[4]), h => ForwardBiasActivationCpu(s, h[0], h[1], h[2], h[3], relu, h[4]), tolerance));
            }
            double weightTolerance = 2e-6 * s.N * s.ColumnCols + 1e-5;
            yield return new SelfTestCase("Conv2d.BackwardWeight", shape, (acc, seed) => OperatorSelfTest.Compare(acc,
                [OperatorSelfTest.Random(seed, s.InputLength), OperatorSelfTest.Random(seed + 1, s.OutputLength), OperatorSelfTest.Random(seed + 2, s.WeightLength)], [2],
                (a, v) => BackwardWeight(a, s, v[0], v[1], v[2], variant), h => BackwardWeightCpu(s, h[0], h[1], h[2]), weightTolerance));
        }
    }
}

// ====================================================================== tensor-core variants (TF32, BF16)
// Kept apart from the FP32 kernels above: selected by Accelerator.Precision in the kernels engine.

public static partial class Conv2d
{
    /// <summary>The three products of <see cref="ConvTensorCore1"/>.</summary>
    private const int PassForward = 0;
    private const int PassBackwardData = 1;
    private const int PassBackwardWeight = 2;

    /// <summary>
    /// ConvTensorCore1: the three convolution products as implicit GEMMs on mma.sync (TF32 m16n8k8, or
    /// BF16 m16n8k16 when <paramref name="bf16"/>), FP32 accumulation, with the tiling of
    /// <see cref="Gemm"/>'s GemmTensorCore1 (64 x 64 block tile, 4 warps of 32 x 32, k slices of 16
    /// words in shared memory). The operands are gathered from the tensors as the FP32 kernels gather them:
    ///   forward         y  (OutC x N*OH*OW) = w (OutC x InC*K*K) * cols(x)           first = w,  second = x
    ///   backward data   dx (InC x N*H*W)    = w^T (InC x OutC*K*K) * taps(dy)        first = w,  second = dy
    ///   backward weight dw (OutC x InC*K*K) = dy (OutC x N*OH*OW) * cols(x)^T        first = dy, second = x
    /// </summary>
    [Kernel]
    private static void ConvTensorCore1(KernelContext ctx, int pass, bool bf16, View<float> first, View<float> second, View<float> output,
        int inC, int h, int wd, int outC, int kernel, int stride, int padding, int outH, int outW, int batch)
    {
        var tileA = ctx.Shared<uint>(Gemm.TcTile * Gemm.TcPitch);  // [row][k unit]
        var tileB = ctx.Shared<uint>(Gemm.TcTile * Gemm.TcPitch);  // [col][k unit]
        Span<float> acc = stackalloc float[32];
        Span<float> d = stackalloc float[4];
        Span<float> fa = stackalloc float[4];
        Span<float> fb = stackalloc float[2];
        Span<uint> ua = stackalloc uint[4];
        Span<uint> ub = stackalloc uint[2];
        int tid = ctx.ThreadIdx.X;
        int g = ctx.LaneIdx >> 2;
        int t = ctx.LaneIdx & 3;
        int warpRow = (ctx.WarpIdx >> 1) * 32;
        int warpCol = (ctx.WarpIdx & 1) * 32;
        int rowBase = ctx.BlockIdx.Y * Gemm.TcTile;
        int colBase = ctx.BlockIdx.X * Gemm.TcTile;
        int kk = kernel * kernel;
        int outHW = outH * outW;
        int mDim = pass == PassBackwardData ? inC : outC;
        int nDim = pass == PassForward ? batch * outHW : pass == PassBackwardData ? batch * h * wd : inC * kk;
        int kDim = pass == PassForward ? inC * kk : pass == PassBackwardData ? outC * kk : batch * outHW;
        int units = bf16 ? (kDim + 1) / 2 : kDim;
        for (int u0 = 0; u0 < units; u0 += Gemm.TcUnits)
        {
            for (int e = tid; e < Gemm.TcTile * Gemm.TcUnits; e += Gemm.TcThreads)
            {
                int r = e / Gemm.TcUnits;
                int u = e % Gemm.TcUnits;
                int q = bf16 ? 2 * (u0 + u) : u0 + u;
                int m = rowBase + r;
                int n = colBase + r;
                float a0 = TcFirst(pass, first, m, q, mDim, kDim, inC, kk, outHW);
                float a1 = bf16 ? TcFirst(pass, first, m, q + 1, mDim, kDim, inC, kk, outHW) : 0f;
                tileA[r * Gemm.TcPitch + u] = Gemm.TcWord(a0, a1, bf16);
                float b0 = TcSecond(pass, second, n, q, nDim, kDim, inC, h, wd, outC, kernel, stride, padding, outH, outW);
                float b1 = bf16 ? TcSecond(pass, second, n, q + 1, nDim, kDim, inC, h, wd, outC, kernel, stride, padding, outH, outW) : 0f;
                tileB[r * Gemm.TcPitch + u] = Gemm.TcWord(b0, b1, bf16);
            }
            ctx.Barrier();
            Gemm.TcSliceMma(ctx, tileA, tileB, acc, d, ua, fa, ub, fb, warpRow, warpCol, g, t, bf16);
            ctx.Barrier();
        }
        // Rows are channels; columns are (image, pixel) of y or dx, or (c, kh, kw) of dw.
        int plane = pass == PassForward ? outHW : h * wd;
        for (int q = 0; q < 32; q++)
        {
            int m = rowBase + warpRow + Gemm.TcRow(q, g);
            int n = colBase + warpCol + Gemm.TcCol(q, t);
            if (m < mDim && n < nDim)
            {
                int image = pass == PassBackwardWeight ? 0 : n / plane;
                output[pass == PassBackwardWeight ? m * nDim + n : (image * mDim + m) * plane + n - image * plane] = acc[q];
            }
        }
    }

    // Element (m, q) of the first operand: w (forward), w^T with k = (oc, kh, kw) (backward data), dy with k = (image, pixel) (backward weight).
    private static float TcFirst(int pass, View<float> first, int m, int q, int mDim, int kDim, int inC, int kk, int outHW)
    {
        if (m >= mDim || q >= kDim)
        {
            return 0f;
        }
        if (pass == PassForward)
        {
            return first[m * kDim + q];
        }
        if (pass == PassBackwardData)
        {
            int oc = q / kk;
            return first[(oc * inC + m) * kk + q - oc * kk];
        }
        int image = q / outHW;
        return first[(image * mDim + m) * outHW + q - image * outHW];
    }

    // Element (k q, column n) of the second operand: cols(x) (forward: n = (image, oh, ow), q = (c, kh, kw);
    // backward weight: n = (c, kh, kw), q = (image, oh, ow)), or dy through the taps (backward data:
    // n = (image, ih, iw), q = (oc, kh, kw)); 0 in the padding, between strides and past the ends.
    private static float TcSecond(int pass, View<float> second, int n, int q, int nDim, int kDim,
        int inC, int h, int wd, int outC, int kernel, int stride, int padding, int outH, int outW)
    {
        if (n >= nDim || q >= kDim)
        {
            return 0f;
        }
        int kk = kernel * kernel;
        int outHW = outH * outW;
        if (pass == PassBackwardData)
        {
            int image = n / (h * wd);
            int pixel = n - image * h * wd;
            int oc = q / kk;
            int r = q - oc * kk;
            int th = pixel / wd + padding - r / kernel;
            int tw = pixel % wd + padding - r % kernel;
            int oh = th / stride;
            int ow = tw / stride;
            bool hit = th >= 0 && tw >= 0 && oh * stride == th && ow * stride == tw && oh < outH && ow < outW;
            return hit ? second[((image * outC + oc) * outH + oh) * outW + ow] : 0f;
        }
        int column = pass == PassForward ? n : q;  // (image, oh, ow)
        int tap = pass == PassForward ? q : n;     // (c, kh, kw)
        int img = column / outHW;
        int p = column - img * outHW;
        int c = tap / kk;
        int rr = tap - c * kk;
        int ih = p / outW * stride - padding + rr / kernel;
        int iw = p % outW * stride - padding + rr % kernel;
        bool inside = ih >= 0 && ih < h && iw >= 0 && iw < wd;
        return inside ? second[((img * inC + c) * h + ih) * wd + iw] : 0f;
    }

    private static LaunchConfig TensorCoreConfig(in Conv2dShape s, int pass) => pass switch
    {
        PassForward => Gemm.TensorCoreConfig(s.OutC, s.N * s.ColumnCols),
        PassBackwardData => Gemm.TensorCoreConfig(s.InC, s.N * s.H * s.W),
        _ => Gemm.TensorCoreConfig(s.OutC, s.ColumnRows),
    };

    private static void LaunchTensorCore(Accelerator accelerator, in Conv2dShape s, int pass, View<float> first, View<float> second, View<float> output) =>
        ConvTensorCore1Kernel.Launch(accelerator, TensorCoreConfig(s, pass), pass, accelerator.Precision == MatmulPrecision.Bf16, first, second, output,
            s.InC, s.H, s.W, s.OutC, s.Kernel, s.Stride, s.Padding, s.OutH, s.OutW, s.N);

    [LaunchShapes]
    private static IEnumerable<LaunchShape> TensorCoreLaunchShapes()
    {
        foreach (var (layer, s) in ResNet18Shapes.Convolutions)
        {
            foreach (int pass in new[] { PassForward, PassBackwardData, PassBackwardWeight })
            {
                yield return new LaunchShape(ConvTensorCore1Kernel.Definition, layer + (pass == PassForward ? " forward" : pass == PassBackwardData ? " backward data" : " backward weight"), TensorCoreConfig(s, pass));
            }
        }
    }

    [SelfTests]
    private static IEnumerable<SelfTestCase> TensorCoreSelfTests()
    {
        var shapes = new[]
        {
            new Conv2dShape(2, 3, 17, 17, 5, 7, 2, 3),
            new Conv2dShape(2, 70, 7, 7, 66, 3, 2, 1),
            new Conv2dShape(3, 16, 6, 6, 24, 1, 1, 0),
        };
        foreach (var precision in new[] { MatmulPrecision.Tf32, MatmulPrecision.Bf16 })
        {
            foreach (var s in shapes)
            {
                string name = Accelerator.PrecisionName(precision);
                string shape = $"x({s.N},{s.InC},{s.H},{s.W}) w({s.OutC},{s.InC},{s.Kernel},{s.Kernel}) s{s.Stride} p{s.Padding}";
                yield return new SelfTestCase($"ConvTensorCore1.Forward.{name}", shape, (acc, seed) => OperatorSelfTest.WithPrecision(acc, precision, () => OperatorSelfTest.Compare(acc,
                    [OperatorSelfTest.Random(seed, s.InputLength), OperatorSelfTest.Random(seed + 1, s.WeightLength), new float[s.OutputLength]], [2],
                    (a, v) => Forward(a, s, v[0], v[1], v[2]), hst => ForwardCpu(s, hst[0], hst[1], hst[2]), Gemm.TensorCoreTolerance(precision, s.ColumnRows, 1))));
                yield return new SelfTestCase($"ConvTensorCore1.BackwardData.{name}", shape, (acc, seed) => OperatorSelfTest.WithPrecision(acc, precision, () => OperatorSelfTest.Compare(acc,
                    [OperatorSelfTest.Random(seed, s.WeightLength), OperatorSelfTest.Random(seed + 1, s.OutputLength), new float[s.InputLength]], [2],
                    (a, v) => BackwardData(a, s, v[0], v[1], v[2]), hst => BackwardDataCpu(s, hst[0], hst[1], hst[2]), Gemm.TensorCoreTolerance(precision, s.OutC * s.Kernel * s.Kernel, 1))));
                yield return new SelfTestCase($"ConvTensorCore1.BackwardWeight.{name}", shape, (acc, seed) => OperatorSelfTest.WithPrecision(acc, precision, () => OperatorSelfTest.Compare(acc,
                    [OperatorSelfTest.Random(seed, s.InputLength), OperatorSelfTest.Random(seed + 1, s.OutputLength), OperatorSelfTest.Random(seed + 2, s.WeightLength)], [2],
                    (a, v) => BackwardWeight(a, s, v[0], v[1], v[2]), hst => BackwardWeightCpu(s, hst[0], hst[1], hst[2]), Gemm.TensorCoreTolerance(precision, s.N * s.ColumnCols, 1))));
            }
        }
    }
}
