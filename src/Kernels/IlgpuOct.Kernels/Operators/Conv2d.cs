using System.Buffers;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
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

    /// <summary>y = conv(x, w) on the accelerator: the CPU implementation on <c>cpu</c>, the kernels elsewhere. Shapes as <see cref="ForwardCpu"/>.</summary>
    public static void Forward(Accelerator accelerator, Conv2dShape s, View<float> x, View<float> w, View<float> y)
    {
        OperatorDispatch.Run(accelerator, "Conv2d.Forward", Cost(s, s.InputLength),
            () => ForwardCpu(s, x.AsSpan(), w.AsSpan(), y.AsSpan()),
            () => ForwardKernels(accelerator, s, x, w, y));
    }

    /// <summary>dx given dy on the accelerator. Shapes as <see cref="BackwardDataCpu"/>.</summary>
    public static void BackwardData(Accelerator accelerator, Conv2dShape s, View<float> w, View<float> dy, View<float> dx)
    {
        OperatorDispatch.Run(accelerator, "Conv2d.BackwardData", Cost(s, s.OutputLength),
            () => BackwardDataCpu(s, w.AsSpan(), dy.AsSpan(), dx.AsSpan()),
            () => BackwardDataKernels(accelerator, s, w, dy, dx));
    }

    /// <summary>dw (overwritten) given x and dy on the accelerator. Shapes as <see cref="BackwardWeightCpu"/>.</summary>
    public static void BackwardWeight(Accelerator accelerator, Conv2dShape s, View<float> x, View<float> dy, View<float> dw)
    {
        OperatorDispatch.Run(accelerator, "Conv2d.BackwardWeight", Cost(s, s.InputLength),
            () => BackwardWeightCpu(s, x.AsSpan(), dy.AsSpan(), dw.AsSpan()),
            () => BackwardWeightKernels(accelerator, s, x, dy, dw));
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

    /// <summary>dx = d loss / d x given dy. w (OutC, InC, K, K), dy (N, OutC, OutH, OutW), dx (N, InC, H, W) overwritten.</summary>
    public static void BackwardDataCpu(in Conv2dShape s, ReadOnlySpan<float> w, ReadOnlySpan<float> dy, Span<float> dx)
    {
        s.Validate();
        RequireLength(w.Length, s.WeightLength, nameof(w), "(OutC, InC, K, K)");
        RequireLength(dy.Length, s.OutputLength, nameof(dy), "(N, OutC, OutH, OutW)");
        RequireLength(dx.Length, s.InputLength, nameof(dx), "(N, InC, H, W)");
        fixed (float* pw = w, pdy = dy, pdx = dx)
        {
            if (s.Stride == 1 && s.Padding < s.Kernel)
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
            SgemmEngine.Run(SgemmMicroKernel.Auto, Gemm.CpuMaxThreads, false, false, s.OutC, s.ColumnRows, s.N * s.ColumnCols, 1f,
                null, 0, ImageColumns.Pointwise(s.N, s.OutC, s.OutH, s.OutW, pdy), null, 0, new ImageColumns(s, px, transposed: true),
                0f, pdw, new SgemmOutput(s.ColumnRows));
        }
    }

    // y (N, OutC, OutH, OutW) seen as (OutC, N*OutH*OutW) = W (OutC, InC*K*K) * cols(x): one GEMM over the
    // whole batch, its B panels gathered straight from x and its tiles written straight into y.
    private static void ForwardGemm(in Conv2dShape s, float* x, float* w, float* y)
    {
        int pixels = s.ColumnCols;
        var output = s.N == 1 ? new SgemmOutput(pixels) : new SgemmOutput(pixels, pixels, (nint)s.OutC * pixels);
        SgemmEngine.Run(SgemmMicroKernel.Auto, Gemm.CpuMaxThreads, false, false, s.OutC, s.N * pixels, s.ColumnRows, 1f,
            w, s.ColumnRows, null, null, 0, new ImageColumns(s, x, transposed: false), 0f, y, output);
    }

    // Stride 1: dx = conv(dy, w') with w'[c, oc, kh, kw] = w[oc, c, K-1-kh, K-1-kw] and padding K-1-P,
    // a forward convolution (no column matrix, no col2im); its output is exactly H x W.
    private static void BackwardDataAsConvolution(in Conv2dShape s, float* w, float* dy, float* dx)
    {
        int k = s.Kernel, taps = k * k;
        var transposed = new Conv2dShape(s.N, s.OutC, s.OutH, s.OutW, s.InC, k, 1, k - 1 - s.Padding);
        float[] flipped = ArrayPool<float>.Shared.Rent(s.WeightLength);
        try
        {
            fixed (float* pf = flipped)
            {
                // Written in order; the reads stride over w's rows, whose lines stay cached across c.
                float* dst = pf;
                for (int c = 0; c < s.InC; c++)
                {
                    for (int oc = 0; oc < s.OutC; oc++, dst += taps)
                    {
                        float* src = w + ((long)oc * s.InC + c) * taps + taps - 1;
                        for (int t = 0; t < taps; t++)
                        {
                            dst[t] = src[-t];
                        }
                    }
                }
                ForwardGemm(transposed, dy, pf, dx);
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(flipped);
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
    private sealed class ImageColumns : SgemmOperand
    {
        // Floats of one panel's row block kept on the stack (a 16 x 256 panel is 16 KB).
        private const int MaxStackBlock = 1 << 13;

        private readonly float* _x; // (N, InC, H, W)
        private readonly bool _transposed;
        private readonly int _h, _w, _k, _stride, _pad, _outH, _outW, _pixels, _plane, _image;

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
            nint panelSize = (nint)width * kc;
            int n0 = col0 / _pixels, pix0 = col0 - n0 * _pixels, oh0 = pix0 / _outW, ow0 = pix0 - oh0 * _outW;
            for (int p = 0; p < kc; p++)
            {
                Tap(row0 + p, out float* plane, out int kh, out int kw, out int lo, out int hi);
                float* d = dst + (nint)p * width; // this row in the current panel
                int i = 0;                         // column inside the panel
                int n = n0, oh = oh0, ow = ow0;
                for (int j = 0; j < cols;)
                {
                    int len = Math.Min(Math.Min(_outW - ow, cols - j), width - i);
                    int ih = oh * _stride - _pad + kh;
                    if ((uint)ih >= (uint)_h)
                    {
                        Zero(d + i, len);
                    }
                    else
                    {
                        // src[o * S] is x at output column o; inside the image only for o in [lo, hi).
                        float* src = plane + (long)n * _image + ih * _w - _pad + kw;
                        int a = Math.Clamp(lo, ow, ow + len), b = Math.Clamp(hi, a, ow + len);
                        float* di = d + i - ow;
                        Zero(di + ow, a - ow);
                        if (_stride == 1)
                        {
                            Copy(src + a, di + a, b - a);
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
                    j += len;
                    i += len;
                    if (i == width)
                    {
                        i = 0;
                        d += panelSize;
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
                Zero(d + i, i == 0 ? 0 : width - i); // the last panel's columns past the matrix edge
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

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Copy(float* src, float* dst, int count)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i + 8 <= count; i += 8)
            {
                Vector256.Store(Vector256.Load(src + i), dst + i);
            }
        }
        for (; i < count; i++)
        {
            dst[i] = src[i];
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

    // ---- Kernels: implicit GEMM ----
    //
    // Each product is a tiled GEMM whose operands are gathered straight from the tensors (no im2col
    // buffer, one launch per call): a block of 16x16 threads computes a 64x64 tile of C, each thread a
    // 4x4 register block, over K in slices of 16 staged in shared memory (rows padded to 65 floats
    // against bank conflicts). Index arithmetic is hoisted: a thread's gather column is fixed for the
    // whole launch, and the 16 rows of each K slice are decoded once per slice into a small shared table.
    //   forward         y  (OutC x N*OH*OW)  = W (OutC x InC*K*K) * cols(x)
    //   backward data   dx (InC x N*H*W)     = W^T (rows (oc, kh, kw)) * dy gathered through the taps
    //   backward weight dw (OutC x InC*K*K)  = dy (OutC x N*OH*OW) * cols(x)^T, the long N*OH*OW split
    //                   across gridDim.z with atomic adds into a cleared dw when that fills the GPU better.

    private const int TileM = 64;
    private const int TileN = 64;
    private const int TileK = 16;
    private const int TilePitch = 65;
    private const int TileThreads = 16;
    private const int TileLength = TileK * TilePitch;

    [Kernel]
    private static void ConvForwardTile(KernelContext ctx, View<float> w, View<float> x, View<float> y,
        int inC, int h, int wd, int outC, int kernel, int stride, int padding, int outH, int outW, int batch)
    {
        var tileA = ctx.Shared<float>(TileLength);
        var tileB = ctx.Shared<float>(TileLength);
        var rowOffset = ctx.Shared<int>(TileK);
        var rowKh = ctx.Shared<int>(TileK);
        var rowKw = ctx.Shared<int>(TileK);
        int tx = ctx.ThreadIdx.X;
        int ty = ctx.ThreadIdx.Y;
        int tid = ty * TileThreads + tx;
        int rowBase = ctx.BlockIdx.Y * TileM;
        int colBase = ctx.BlockIdx.X * TileN;
        int kk = kernel * kernel;
        int kDim = inC * kk;
        int outHW = outH * outW;
        int nDim = batch * outHW;
        // This thread's gather column: output pixel (n, oh, ow).
        int column = colBase + tid % TileN;
        bool columnValid = column < nDim;
        int image = columnValid ? column / outHW : 0;
        int pixel = column - image * outHW;
        int ihBase = pixel / outW * stride - padding;
        int iwBase = pixel % outW * stride - padding;
        int columnOffset = image * inC * h * wd + ihBase * wd + iwBase;
        int bRow = tid / TileN;
        int aCol = tid % TileK;
        int aRow = tid / TileK;
        Span<float> acc = stackalloc float[16]; // acc[4 i + j]: rows m0 + 16 i, columns n0 + 16 j
        for (int k0 = 0; k0 < kDim; k0 += TileK)
        {
            if (tid < TileK)
            {
                int k = k0 + tid;
                int c = k / kk;
                int r = k - c * kk;
                int kh = r / kernel;
                int kw = r - kh * kernel;
                rowOffset[tid] = (c * h + kh) * wd + kw;
                rowKh[tid] = k < kDim ? kh : -1000000;
                rowKw[tid] = kw;
            }
            ctx.Barrier();
            for (int i = 0; i < 4; i++)
            {
                int m = rowBase + aRow + 16 * i;
                int ka = k0 + aCol;
                tileA[aCol * TilePitch + aRow + 16 * i] = m < outC && ka < kDim ? w[m * kDim + ka] : 0f;
                int row = bRow + 4 * i;
                int ih = ihBase + rowKh[row];
                int iw = iwBase + rowKw[row];
                bool inside = columnValid && ih >= 0 && ih < h && iw >= 0 && iw < wd;
                tileB[row * TilePitch + tid % TileN] = inside ? x[columnOffset + rowOffset[row]] : 0f;
            }
            ctx.Barrier();
            AccumulateTile(tileA, tileB, ty, tx, acc);
            ctx.Barrier();
        }
        int m0 = rowBase + ty;
        int n0 = colBase + tx;
        for (int j = 0; j < 4; j++)
        {
            StoreImageMajor(y, m0, n0 + 16 * j, acc[j], acc[4 + j], acc[8 + j], acc[12 + j], outC, nDim, outHW);
        }
    }

    [Kernel]
    private static void ConvBackwardDataTile(KernelContext ctx, View<float> w, View<float> dy, View<float> dx,
        int inC, int h, int wd, int outC, int kernel, int stride, int padding, int outH, int outW, int batch)
    {
        var tileA = ctx.Shared<float>(TileLength);
        var tileB = ctx.Shared<float>(TileLength);
        var rowWeight = ctx.Shared<int>(TileK);
        var rowGrad = ctx.Shared<int>(TileK);
        var rowKh = ctx.Shared<int>(TileK);
        var rowKw = ctx.Shared<int>(TileK);
        int tx = ctx.ThreadIdx.X;
        int ty = ctx.ThreadIdx.Y;
        int tid = ty * TileThreads + tx;
        int rowBase = ctx.BlockIdx.Y * TileM;
        int colBase = ctx.BlockIdx.X * TileN;
        int kk = kernel * kernel;
        int kDim = outC * kk;
        int hw = h * wd;
        int outHW = outH * outW;
        int nDim = batch * hw;
        // This thread's gather column: input pixel (n, ih, iw).
        int column = colBase + tid % TileN;
        bool columnValid = column < nDim;
        int image = columnValid ? column / hw : 0;
        int pixel = column - image * hw;
        int ihPadded = pixel / wd + padding;
        int iwPadded = pixel % wd + padding;
        int gradBase = image * outC * outHW;
        int bRow = tid / TileN;
        int aCol = tid % TileK;
        int aRow = tid / TileK;
        Span<float> acc = stackalloc float[16]; // acc[4 i + j]: rows m0 + 16 i, columns n0 + 16 j
        for (int k0 = 0; k0 < kDim; k0 += TileK)
        {
            if (tid < TileK)
            {
                int k = k0 + tid;
                int oc = k / kk;
                int r = k - oc * kk;
                int kh = r / kernel;
                rowWeight[tid] = oc * inC * kk + r;
                rowGrad[tid] = oc * outHW;
                rowKh[tid] = k < kDim ? kh : 1000000;
                rowKw[tid] = r - kh * kernel;
            }
            ctx.Barrier();
            for (int i = 0; i < 4; i++)
            {
                int m = rowBase + aRow + 16 * i;
                tileA[aCol * TilePitch + aRow + 16 * i] = m < inC && k0 + aCol < kDim ? w[rowWeight[aCol] + m * kk] : 0f;
                int row = bRow + 4 * i;
                int th = ihPadded - rowKh[row];
                int tw = iwPadded - rowKw[row];
                int oh = th / stride;
                int ow = tw / stride;
                bool hit = columnValid && th >= 0 && tw >= 0 && oh * stride == th && ow * stride == tw && oh < outH && ow < outW;
                tileB[row * TilePitch + tid % TileN] = hit ? dy[gradBase + rowGrad[row] + oh * outW + ow] : 0f;
            }
            ctx.Barrier();
            AccumulateTile(tileA, tileB, ty, tx, acc);
            ctx.Barrier();
        }
        int m0 = rowBase + ty;
        int n0 = colBase + tx;
        for (int j = 0; j < 4; j++)
        {
            StoreImageMajor(dx, m0, n0 + 16 * j, acc[j], acc[4 + j], acc[8 + j], acc[12 + j], inC, nDim, hw);
        }
    }

    [Kernel]
    private static void ConvBackwardWeightTile(KernelContext ctx, View<float> x, View<float> dy, View<float> dw,
        int inC, int h, int wd, int outC, int kernel, int stride, int padding, int outH, int outW, int batch, int kPerSplit, int atomicStore)
    {
        var tileA = ctx.Shared<float>(TileLength);
        var tileB = ctx.Shared<float>(TileLength);
        var rowImage = ctx.Shared<int>(TileK);
        var rowGrad = ctx.Shared<int>(TileK);
        var rowIh = ctx.Shared<int>(TileK);
        var rowIw = ctx.Shared<int>(TileK);
        int tx = ctx.ThreadIdx.X;
        int ty = ctx.ThreadIdx.Y;
        int tid = ty * TileThreads + tx;
        int rowBase = ctx.BlockIdx.Y * TileM;
        int colBase = ctx.BlockIdx.X * TileN;
        int kk = kernel * kernel;
        int nDim = inC * kk;
        int outHW = outH * outW;
        int kDim = batch * outHW;
        int kBegin = ctx.BlockIdx.Z * kPerSplit;
        int kEnd = Math.Min(kDim, kBegin + kPerSplit);
        // This thread's four gather columns (c, kh, kw) of x, fixed for the launch.
        int kSlot = tid % TileK;
        int nSlot = tid / TileK;
        int j0 = colBase + nSlot;
        int j1 = j0 + 16;
        int j2 = j0 + 32;
        int j3 = j0 + 48;
        int kh0 = j0 % kk / kernel;
        int kh1 = j1 % kk / kernel;
        int kh2 = j2 % kk / kernel;
        int kh3 = j3 % kk / kernel;
        int kw0 = j0 % kernel;
        int kw1 = j1 % kernel;
        int kw2 = j2 % kernel;
        int kw3 = j3 % kernel;
        int off0 = (j0 / kk * h + kh0) * wd + kw0;
        int off1 = (j1 / kk * h + kh1) * wd + kw1;
        int off2 = (j2 / kk * h + kh2) * wd + kw2;
        int off3 = (j3 / kk * h + kh3) * wd + kw3;
        Span<float> acc = stackalloc float[16]; // acc[4 i + j]: rows m0 + 16 i, columns n0 + 16 j
        for (int k0 = kBegin; k0 < kEnd; k0 += TileK)
        {
            if (tid < TileK)
            {
                int k = k0 + tid;
                int image = k / outHW;
                int p = k - image * outHW;
                int oh = p / outW;
                rowImage[tid] = image * inC * h * wd;
                rowGrad[tid] = image * outC * outHW + p;
                rowIh[tid] = k < kEnd ? oh * stride - padding : -1000000;
                rowIw[tid] = (p - oh * outW) * stride - padding;
            }
            ctx.Barrier();
            bool rowValid = k0 + kSlot < kEnd;
            int ihBase = rowIh[kSlot];
            int iwBase = rowIw[kSlot];
            int imageBase = rowImage[kSlot] + ihBase * wd + iwBase;
            int gradRow = rowGrad[kSlot];
            for (int i = 0; i < 4; i++)
            {
                int m = rowBase + nSlot + 16 * i;
                tileA[kSlot * TilePitch + nSlot + 16 * i] = rowValid && m < outC ? dy[gradRow + m * outHW] : 0f;
            }
            tileB[kSlot * TilePitch + nSlot] = LoadTap(x, j0 < nDim, imageBase, off0, ihBase + kh0, iwBase + kw0, h, wd);
            tileB[kSlot * TilePitch + nSlot + 16] = LoadTap(x, j1 < nDim, imageBase, off1, ihBase + kh1, iwBase + kw1, h, wd);
            tileB[kSlot * TilePitch + nSlot + 32] = LoadTap(x, j2 < nDim, imageBase, off2, ihBase + kh2, iwBase + kw2, h, wd);
            tileB[kSlot * TilePitch + nSlot + 48] = LoadTap(x, j3 < nDim, imageBase, off3, ihBase + kh3, iwBase + kw3, h, wd);
            ctx.Barrier();
            AccumulateTile(tileA, tileB, ty, tx, acc);
            ctx.Barrier();
        }
        int m0 = rowBase + ty;
        int n0 = colBase + tx;
        for (int j = 0; j < 4; j++)
        {
            StoreRowMajor(dw, m0, n0 + 16 * j, acc[j], acc[4 + j], acc[8 + j], acc[12 + j], outC, nDim, atomicStore);
        }
    }

    /// <summary>
    /// acc[4 i + j] += A[q][ty + 16 i] * B[q][tx + 16 j] over the TileK staged rows q: this thread's 4 x 4
    /// block of the 64 x 64 tile, in registers (the loops unroll fully in CUDA).
    /// </summary>
    private static void AccumulateTile(View<float> tileA, View<float> tileB, int ty, int tx, Span<float> acc)
    {
        Span<float> a = stackalloc float[4];
        Span<float> b = stackalloc float[4];
        for (int q = 0; q < TileK; q++)
        {
            for (int i = 0; i < 4; i++)
            {
                a[i] = tileA[q * TilePitch + ty + 16 * i];
                b[i] = tileB[q * TilePitch + tx + 16 * i];
            }
            for (int i = 0; i < 4; i++)
            {
                for (int j = 0; j < 4; j++)
                {
                    acc[4 * i + j] += a[i] * b[j];
                }
            }
        }
    }

    // x at (ih, iw) of the tap, 0 in the padding or for a column past the end.
    private static float LoadTap(View<float> x, bool columnValid, int imageBase, int tapOffset, int ih, int iw, int h, int wd)
    {
        if (!columnValid || ih < 0 || ih >= h || iw < 0 || iw >= wd)
        {
            return 0f;
        }
        return x[imageBase + tapOffset];
    }

    // Column j = (n, pixel) of C stored as out[n, m, pixel] for the rows m0, m0+16, m0+32, m0+48.
    private static void StoreImageMajor(View<float> output, int m0, int j, float v0, float v1, float v2, float v3, int mDim, int nDim, int plane)
    {
        if (j >= nDim)
        {
            return;
        }
        int image = j / plane;
        int at = image * mDim * plane + (j - image * plane) + m0 * plane;
        if (m0 < mDim)
        {
            output[at] = v0;
        }
        if (m0 + 16 < mDim)
        {
            output[at + 16 * plane] = v1;
        }
        if (m0 + 32 < mDim)
        {
            output[at + 32 * plane] = v2;
        }
        if (m0 + 48 < mDim)
        {
            output[at + 48 * plane] = v3;
        }
    }

    private static void StoreRowMajor(View<float> output, int m0, int j, float v0, float v1, float v2, float v3, int mDim, int nDim, int atomicStore)
    {
        if (j >= nDim)
        {
            return;
        }
        StoreOne(output, m0 < mDim, m0 * nDim + j, v0, atomicStore);
        StoreOne(output, m0 + 16 < mDim, (m0 + 16) * nDim + j, v1, atomicStore);
        StoreOne(output, m0 + 32 < mDim, (m0 + 32) * nDim + j, v2, atomicStore);
        StoreOne(output, m0 + 48 < mDim, (m0 + 48) * nDim + j, v3, atomicStore);
    }

    private static void StoreOne(View<float> output, bool valid, int at, float value, int atomicStore)
    {
        if (!valid)
        {
            return;
        }
        if (atomicStore != 0)
        {
            Atomic.Add(ref output[at], value);
        }
        else
        {
            output[at] = value;
        }
    }

    private static LaunchConfig TileConfig(int mDim, int nDim, int splits) =>
        new(new Dim3((nDim + TileN - 1) / TileN, (mDim + TileM - 1) / TileM, splits), new Dim3(TileThreads, TileThreads));

    private static void ForwardKernels(Accelerator accelerator, in Conv2dShape s, View<float> x, View<float> w, View<float> y)
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
        ConvForwardTileKernel.Launch(accelerator, ForwardConfig(s), w, x, y,
            s.InC, s.H, s.W, s.OutC, s.Kernel, s.Stride, s.Padding, s.OutH, s.OutW, s.N);
    }

    private static void BackwardDataKernels(Accelerator accelerator, in Conv2dShape s, View<float> w, View<float> dy, View<float> dx)
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
        ConvBackwardDataTileKernel.Launch(accelerator, BackwardDataConfig(s), w, dy, dx,
            s.InC, s.H, s.W, s.OutC, s.Kernel, s.Stride, s.Padding, s.OutH, s.OutW, s.N);
    }

    private static void BackwardWeightKernels(Accelerator accelerator, in Conv2dShape s, View<float> x, View<float> dy, View<float> dw)
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
        var (config, kPerSplit, splits) = BackwardWeightPlan(s);
        if (splits > 1)
        {
            accelerator.Clear(dw);
        }
        ConvBackwardWeightTileKernel.Launch(accelerator, config, x, dy, dw,
            s.InC, s.H, s.W, s.OutC, s.Kernel, s.Stride, s.Padding, s.OutH, s.OutW, s.N, kPerSplit, splits > 1 ? 1 : 0);
    }

    private static LaunchConfig ForwardConfig(in Conv2dShape s) => TileConfig(s.OutC, s.N * s.ColumnCols, 1);

    private static LaunchConfig BackwardDataConfig(in Conv2dShape s) => TileConfig(s.InC, s.N * s.H * s.W, 1);

    /// <summary>The weight gradient's launch, the batch slice each block row sums and the number of slices.</summary>
    private static (LaunchConfig Config, int KPerSplit, int Splits) BackwardWeightPlan(in Conv2dShape s)
    {
        int mDim = s.OutC, nDim = s.ColumnRows, kDim = s.N * s.ColumnCols;
        int splits = WeightGradientSplits(mDim, nDim, kDim);
        int kPerSplit = (kDim + splits - 1) / splits;
        kPerSplit = (kPerSplit + TileK - 1) / TileK * TileK;
        splits = (kDim + kPerSplit - 1) / kPerSplit;
        return (TileConfig(mDim, nDim, splits), kPerSplit, splits);
    }

    [LaunchShapes]
    private static IEnumerable<LaunchShape> LaunchShapes()
    {
        foreach (var (layer, s) in ResNet18Shapes.Convolutions)
        {
            yield return new LaunchShape(ConvForwardTileKernel.Definition, layer, ForwardConfig(s));
            yield return new LaunchShape(ConvBackwardDataTileKernel.Definition, layer, BackwardDataConfig(s));
            yield return new LaunchShape(ConvBackwardWeightTileKernel.Definition, layer, BackwardWeightPlan(s).Config);
        }
    }

    /// <summary>
    /// How many slices the long batch dimension of the weight gradient is cut into: enough blocks to
    /// fill a large GPU (~512), each slice at least 512 deep so the atomic adds stay a small share.
    /// </summary>
    internal static int WeightGradientSplits(int mDim, int nDim, int kDim)
    {
        long tiles = (long)((mDim + TileM - 1) / TileM) * ((nDim + TileN - 1) / TileN);
        long wanted = Math.Max(1, 512 / tiles);
        long deepest = Math.Max(1, kDim / 512);
        return (int)Math.Clamp(Math.Min(wanted, deepest), 1, 65535);
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
        foreach (var s in shapes)
        {
            string shape = $"x({s.N},{s.InC},{s.H},{s.W}) w({s.OutC},{s.InC},{s.Kernel},{s.Kernel}) s{s.Stride} p{s.Padding}";
            // Sums of ColumnRows products of values in [-1, 1): tolerance grows with their count.
            double tolerance = 2e-6 * Math.Max(s.ColumnRows, s.OutC * s.Kernel * s.Kernel) + 1e-5;
            yield return new SelfTestCase("Conv2d.Forward", shape, (acc, seed) => OperatorSelfTest.Compare(acc,
                [OperatorSelfTest.Random(seed, s.InputLength), OperatorSelfTest.Random(seed + 1, s.WeightLength), new float[s.OutputLength]], [2],
                (a, v) => Forward(a, s, v[0], v[1], v[2]), h => ForwardCpu(s, h[0], h[1], h[2]), tolerance));
            yield return new SelfTestCase("Conv2d.BackwardData", shape, (acc, seed) => OperatorSelfTest.Compare(acc,
                [OperatorSelfTest.Random(seed, s.WeightLength), OperatorSelfTest.Random(seed + 1, s.OutputLength), new float[s.InputLength]], [2],
                (a, v) => BackwardData(a, s, v[0], v[1], v[2]), h => BackwardDataCpu(s, h[0], h[1], h[2]), tolerance));
            double weightTolerance = 2e-6 * s.N * s.ColumnCols + 1e-5;
            yield return new SelfTestCase("Conv2d.BackwardWeight", shape, (acc, seed) => OperatorSelfTest.Compare(acc,
                [OperatorSelfTest.Random(seed, s.InputLength), OperatorSelfTest.Random(seed + 1, s.OutputLength), OperatorSelfTest.Random(seed + 2, s.WeightLength)], [2],
                (a, v) => BackwardWeight(a, s, v[0], v[1], v[2]), h => BackwardWeightCpu(s, h[0], h[1], h[2]), weightTolerance));
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
            for (int ks = 0; ks < Gemm.TcUnits; ks += 8)
            {
                for (int tile = 0; tile < 8; tile++)
                {
                    Gemm.TcFragments(tileA, tileB, (warpRow + (tile >> 2) * 16 + g) * Gemm.TcPitch + ks + t, (warpCol + (tile & 3) * 8 + g) * Gemm.TcPitch + ks + t, ua, fa, ub, fb);
                    for (int i = 0; i < 4; i++)
                    {
                        d[i] = acc[tile * 4 + i];
                    }
                    if (bf16)
                    {
                        ctx.MmaBf16(d, ua, ub);
                    }
                    else
                    {
                        ctx.MmaTf32(d, fa, fb);
                    }
                    for (int i = 0; i < 4; i++)
                    {
                        acc[tile * 4 + i] = d[i];
                    }
                }
            }
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
