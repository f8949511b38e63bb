using System.Buffers;
using System.Numerics.Tensors;
using IlgpuOct.Kernels.Cpu;

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
            int gemmThreads = GemmThreadsPerWorker(shape);
            ForEachImage(shape, n =>
            {
                var image = new ReadOnlySpan<float>((float*)ax + (long)n * inImage, inImage);
                var weight = new ReadOnlySpan<float>((float*)aw, shape.WeightLength);
                var output = new Span<float>((float*)ay + (long)n * outImage, outImage);
                if (shape.IsPointwise)
                {
                    Gemm.Cpu(false, false, shape.OutC, shape.ColumnCols, shape.InC, 1f, weight, shape.InC, image, shape.ColumnCols, 0f, output, shape.ColumnCols, SgemmMicroKernel.Auto, gemmThreads);
                    return;
                }
                int colLength = shape.ColumnRows * shape.ColumnCols;
                float[] col = ArrayPool<float>.Shared.Rent(colLength);
                try
                {
                    var columns = col.AsSpan(0, colLength);
                    Im2Col(shape, image, columns);
                    Gemm.Cpu(false, false, shape.OutC, shape.ColumnCols, shape.ColumnRows, 1f, weight, shape.ColumnRows, columns, shape.ColumnCols, 0f, output, shape.ColumnCols, SgemmMicroKernel.Auto, gemmThreads);
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
            int gemmThreads = GemmThreadsPerWorker(shape);
            ForEachImage(shape, n =>
            {
                var weight = new ReadOnlySpan<float>((float*)aw, shape.WeightLength);
                var gradOut = new ReadOnlySpan<float>((float*)ady + (long)n * outImage, outImage);
                var gradIn = new Span<float>((float*)adx + (long)n * inImage, inImage);
                if (shape.IsPointwise)
                {
                    Gemm.Cpu(true, false, shape.InC, shape.ColumnCols, shape.OutC, 1f, weight, shape.InC, gradOut, shape.ColumnCols, 0f, gradIn, shape.ColumnCols, SgemmMicroKernel.Auto, gemmThreads);
                    return;
                }
                int colLength = shape.ColumnRows * shape.ColumnCols;
                float[] col = ArrayPool<float>.Shared.Rent(colLength);
                try
                {
                    var columns = col.AsSpan(0, colLength);
                    Gemm.Cpu(true, false, shape.ColumnRows, shape.ColumnCols, shape.OutC, 1f, weight, shape.ColumnRows, gradOut, shape.ColumnCols, 0f, columns, shape.ColumnCols, SgemmMicroKernel.Auto, gemmThreads);
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
        int parts = work < ParallelWorkThreshold ? 1 : Math.Min(s.N, Gemm.CpuMaxThreads);
        int gemmThreads = Math.Max(1, Gemm.CpuMaxThreads / parts);
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
                            Gemm.Cpu(false, true, shape.OutC, shape.ColumnRows, shape.ColumnCols, 1f, gradOut, shape.ColumnCols, columns, shape.ColumnCols, beta, target, shape.ColumnRows, SgemmMicroKernel.Auto, gemmThreads);
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

    // Images run on up to Gemm.CpuMaxThreads workers; the threads left over go to each image's GEMM
    // (a batch smaller than the core count then still uses every core).
    private static int ImageWorkers(in Conv2dShape s)
    {
        long work = (long)s.N * s.OutC * s.ColumnRows * s.ColumnCols;
        return work < ParallelWorkThreshold ? 1 : Math.Min(s.N, Gemm.CpuMaxThreads);
    }

    private static int GemmThreadsPerWorker(in Conv2dShape s) => Math.Max(1, Gemm.CpuMaxThreads / ImageWorkers(s));

    private static void ForEachImage(in Conv2dShape s, Action<int> body)
    {
        int workers = ImageWorkers(s);
        if (workers == 1)
        {
            for (int n = 0; n < s.N; n++)
            {
                body(n);
            }
        }
        else
        {
            Parallel.For(0, s.N, new ParallelOptions { MaxDegreeOfParallelism = workers }, body);
        }
    }

    // ---- Kernels: implicit GEMM ----
    //
    // All three products run through one tiled kernel that gathers its operands straight from the
    // tensors (no im2col buffer, one launch per call): a block of 16x16 threads computes a 64x64 tile
    // of C, each thread a 4x4 register block, over K in slices of 16 staged in shared memory.
    //   forward         C (OutC x N*OH*OW)    = W (OutC x InC*K*K) * cols(x)
    //   backward data   C (InC x N*H*W)       = W^T (rearranged)   * gathered dy
    //   backward weight C (OutC x InC*K*K)    = dy (OutC x N*OH*OW) * cols(x)^T, split over K across
    //                   gridDim.z with atomic adds into a cleared dw when the batch is long.

    private const int TileM = 64;
    private const int TileN = 64;
    private const int TileK = 16;
    private const int TilePitch = 65; // padded against shared-memory bank conflicts
    private const int TileThreads = 16;
    private const int ModeForward = 0;
    private const int ModeBackwardData = 1;
    private const int ModeBackwardWeight = 2;

    [Kernel]
    private static void ConvGemm(KernelContext ctx, View<float> a, View<float> b, View<float> c, int mode,
        int inC, int h, int w, int outC, int kernel, int stride, int padding, int outH, int outW,
        int mDim, int nDim, int kDim, int kPerSplit, int atomicStore)
    {
        var tileA = ctx.Shared<float>(TileK * TilePitch); // [k][m]
        var tileB = ctx.Shared<float>(TileK * TilePitch); // [k][n]
        int tx = ctx.ThreadIdx.X;
        int ty = ctx.ThreadIdx.Y;
        int tid = ty * TileThreads + tx;
        int rowBase = ctx.BlockIdx.Y * TileM;
        int colBase = ctx.BlockIdx.X * TileN;
        int kBegin = ctx.BlockIdx.Z * kPerSplit;
        int kEnd = Math.Min(kDim, kBegin + kPerSplit);
        float c00 = 0f;
        float c01 = 0f;
        float c02 = 0f;
        float c03 = 0f;
        float c10 = 0f;
        float c11 = 0f;
        float c12 = 0f;
        float c13 = 0f;
        float c20 = 0f;
        float c21 = 0f;
        float c22 = 0f;
        float c23 = 0f;
        float c30 = 0f;
        float c31 = 0f;
        float c32 = 0f;
        float c33 = 0f;
        for (int k0 = kBegin; k0 < kEnd; k0 += TileK)
        {
            for (int i = 0; i < 4; i++)
            {
                int e = tid + i * TileThreads * TileThreads;
                // A is read along k (contiguous in every mode).
                int ak = e % TileK;
                int am = e / TileK;
                int gm = rowBase + am;
                int gka = k0 + ak;
                tileA[ak * TilePitch + am] = gm < mDim && gka < kEnd ? LoadA(a, mode, gm, gka, inC, outC, kernel, outH * outW) : 0f;
                // B is read along n, except for the weight gradient where k runs along the image.
                int bk = mode == ModeBackwardWeight ? e % TileK : e / TileN;
                int bn = mode == ModeBackwardWeight ? e / TileK : e % TileN;
                int gn = colBase + bn;
                int gkb = k0 + bk;
                tileB[bk * TilePitch + bn] = gn < nDim && gkb < kEnd ? LoadB(b, mode, gkb, gn, inC, h, w, outC, kernel, stride, padding, outH, outW) : 0f;
            }
            ctx.Barrier();
            for (int kk = 0; kk < TileK; kk++)
            {
                int ra = kk * TilePitch + ty;
                int rb = kk * TilePitch + tx;
                float a0 = tileA[ra];
                float a1 = tileA[ra + 16];
                float a2 = tileA[ra + 32];
                float a3 = tileA[ra + 48];
                float b0 = tileB[rb];
                float b1 = tileB[rb + 16];
                float b2 = tileB[rb + 32];
                float b3 = tileB[rb + 48];
                c00 += a0 * b0;
                c01 += a0 * b1;
                c02 += a0 * b2;
                c03 += a0 * b3;
                c10 += a1 * b0;
                c11 += a1 * b1;
                c12 += a1 * b2;
                c13 += a1 * b3;
                c20 += a2 * b0;
                c21 += a2 * b1;
                c22 += a2 * b2;
                c23 += a2 * b3;
                c30 += a3 * b0;
                c31 += a3 * b1;
                c32 += a3 * b2;
                c33 += a3 * b3;
            }
            ctx.Barrier();
        }
        int m0 = rowBase + ty;
        int n0 = colBase + tx;
        StoreC(c, mode, m0, n0, c00, mDim, nDim, inC, h * w, outC, outH * outW, atomicStore);
        StoreC(c, mode, m0, n0 + 16, c01, mDim, nDim, inC, h * w, outC, outH * outW, atomicStore);
        StoreC(c, mode, m0, n0 + 32, c02, mDim, nDim, inC, h * w, outC, outH * outW, atomicStore);
        StoreC(c, mode, m0, n0 + 48, c03, mDim, nDim, inC, h * w, outC, outH * outW, atomicStore);
        StoreC(c, mode, m0 + 16, n0, c10, mDim, nDim, inC, h * w, outC, outH * outW, atomicStore);
        StoreC(c, mode, m0 + 16, n0 + 16, c11, mDim, nDim, inC, h * w, outC, outH * outW, atomicStore);
        StoreC(c, mode, m0 + 16, n0 + 32, c12, mDim, nDim, inC, h * w, outC, outH * outW, atomicStore);
        StoreC(c, mode, m0 + 16, n0 + 48, c13, mDim, nDim, inC, h * w, outC, outH * outW, atomicStore);
        StoreC(c, mode, m0 + 32, n0, c20, mDim, nDim, inC, h * w, outC, outH * outW, atomicStore);
        StoreC(c, mode, m0 + 32, n0 + 16, c21, mDim, nDim, inC, h * w, outC, outH * outW, atomicStore);
        StoreC(c, mode, m0 + 32, n0 + 32, c22, mDim, nDim, inC, h * w, outC, outH * outW, atomicStore);
        StoreC(c, mode, m0 + 32, n0 + 48, c23, mDim, nDim, inC, h * w, outC, outH * outW, atomicStore);
        StoreC(c, mode, m0 + 48, n0, c30, mDim, nDim, inC, h * w, outC, outH * outW, atomicStore);
        StoreC(c, mode, m0 + 48, n0 + 16, c31, mDim, nDim, inC, h * w, outC, outH * outW, atomicStore);
        StoreC(c, mode, m0 + 48, n0 + 32, c32, mDim, nDim, inC, h * w, outC, outH * outW, atomicStore);
        StoreC(c, mode, m0 + 48, n0 + 48, c33, mDim, nDim, inC, h * w, outC, outH * outW, atomicStore);
    }

    // A(m, k): the weights (forward: W; backward data: W^T with k = (oc, kh, kw)) or dy (backward weight, k = (n, p)).
    private static float LoadA(View<float> a, int mode, int m, int k, int inC, int outC, int kernel, int outHW)
    {
        if (mode == ModeForward)
        {
            return a[m * inC * kernel * kernel + k];
        }
        if (mode == ModeBackwardData)
        {
            int kk = kernel * kernel;
            int oc = k / kk;
            return a[(oc * inC + m) * kk + (k - oc * kk)];
        }
        int image = k / outHW;
        return a[(image * outC + m) * outHW + (k - image * outHW)];
    }

    // B(k, j): im2col of x (forward: k = (c, kh, kw), j = (n, p); backward weight: the transpose) or
    // the dy value that input pixel j = (n, ih, iw) receives through tap k = (oc, kh, kw) (backward data).
    private static float LoadB(View<float> b, int mode, int k, int j, int inC, int h, int w, int outC, int kernel, int stride, int padding, int outH, int outW)
    {
        int kk = kernel * kernel;
        if (mode == ModeBackwardData)
        {
            int hw = h * w;
            int image = j / hw;
            int q = j - image * hw;
            int ih = q / w;
            int iw = q - ih * w;
            int oc = k / kk;
            int r = k - oc * kk;
            int kh = r / kernel;
            int kw = r - kh * kernel;
            int th = ih + padding - kh;
            int tw = iw + padding - kw;
            if (th < 0 || tw < 0 || th % stride != 0 || tw % stride != 0)
            {
                return 0f;
            }
            int oh = th / stride;
            int ow = tw / stride;
            if (oh >= outH || ow >= outW)
            {
                return 0f;
            }
            return b[((image * outC + oc) * outH + oh) * outW + ow];
        }
        int column = mode == ModeForward ? j : k; // (n, p)
        int row = mode == ModeForward ? k : j;    // (c, kh, kw)
        int outHW = outH * outW;
        int n = column / outHW;
        int p = column - n * outHW;
        int oh2 = p / outW;
        int ow2 = p - oh2 * outW;
        int c = row / kk;
        int r2 = row - c * kk;
        int kh2 = r2 / kernel;
        int kw2 = r2 - kh2 * kernel;
        int y = oh2 * stride - padding + kh2;
        int x = ow2 * stride - padding + kw2;
        if (y < 0 || y >= h || x < 0 || x >= w)
        {
            return 0f;
        }
        return b[((n * inC + c) * h + y) * w + x];
    }

    private static void StoreC(View<float> c, int mode, int m, int j, float value, int mDim, int nDim, int inC, int hw, int outC, int outHW, int atomicStore)
    {
        if (m >= mDim || j >= nDim)
        {
            return;
        }
        if (mode == ModeForward)
        {
            int image = j / outHW;
            c[(image * outC + m) * outHW + (j - image * outHW)] = value;
        }
        else if (mode == ModeBackwardData)
        {
            int image = j / hw;
            c[(image * inC + m) * hw + (j - image * hw)] = value;
        }
        else if (atomicStore != 0)
        {
            Atomic.Add(ref c[m * nDim + j], value);
        }
        else
        {
            c[m * nDim + j] = value;
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
        int mDim = s.OutC, nDim = s.N * s.ColumnCols, kDim = s.ColumnRows;
        ConvGemmKernel.Launch(accelerator, TileConfig(mDim, nDim, 1), w, x, y, ModeForward,
            s.InC, s.H, s.W, s.OutC, s.Kernel, s.Stride, s.Padding, s.OutH, s.OutW, mDim, nDim, kDim, kDim, 0);
    }

    private static void BackwardDataKernels(Accelerator accelerator, in Conv2dShape s, View<float> w, View<float> dy, View<float> dx)
    {
        s.Validate();
        RequireLength(w.Length, s.WeightLength, nameof(w), "(OutC, InC, K, K)");
        RequireLength(dy.Length, s.OutputLength, nameof(dy), "(N, OutC, OutH, OutW)");
        RequireLength(dx.Length, s.InputLength, nameof(dx), "(N, InC, H, W)");
        int mDim = s.InC, nDim = s.N * s.H * s.W, kDim = s.OutC * s.Kernel * s.Kernel;
        ConvGemmKernel.Launch(accelerator, TileConfig(mDim, nDim, 1), w, dy, dx, ModeBackwardData,
            s.InC, s.H, s.W, s.OutC, s.Kernel, s.Stride, s.Padding, s.OutH, s.OutW, mDim, nDim, kDim, kDim, 0);
    }

    private static void BackwardWeightKernels(Accelerator accelerator, in Conv2dShape s, View<float> x, View<float> dy, View<float> dw)
    {
        s.Validate();
        RequireLength(x.Length, s.InputLength, nameof(x), "(N, InC, H, W)");
        RequireLength(dy.Length, s.OutputLength, nameof(dy), "(N, OutC, OutH, OutW)");
        RequireLength(dw.Length, s.WeightLength, nameof(dw), "(OutC, InC, K, K)");
        int mDim = s.OutC, nDim = s.ColumnRows, kDim = s.N * s.ColumnCols;
        int splits = WeightGradientSplits(mDim, nDim, kDim);
        int kPerSplit = (kDim + splits - 1) / splits;
        kPerSplit = (kPerSplit + TileK - 1) / TileK * TileK;
        splits = (kDim + kPerSplit - 1) / kPerSplit;
        if (splits > 1)
        {
            accelerator.Clear(dw);
        }
        ConvGemmKernel.Launch(accelerator, TileConfig(mDim, nDim, splits), dy, x, dw, ModeBackwardWeight,
            s.InC, s.H, s.W, s.OutC, s.Kernel, s.Stride, s.Padding, s.OutH, s.OutW, mDim, nDim, kDim, kPerSplit, splits > 1 ? 1 : 0);
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

    private static void RequireLength(int actual, int expected, string name, string layout)
    {
        if (actual != expected)
        {
            throw new ArgumentException($"Conv2d: {name} has {actual} elements but the shape needs {expected} {layout}; allocate it from the same Conv2dShape.", name);
        }
    }

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
