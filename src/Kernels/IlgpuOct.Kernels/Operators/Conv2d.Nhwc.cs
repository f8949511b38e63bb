using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using IlgpuOct.Kernels.Cpu;

namespace IlgpuOct.Kernels.Operators;

/// <summary>
/// Direct NHWC convolution for inference on the CPU (eval-mode ResNet-18 with BN folded into the weights).
/// Activations are NHWC with a zero border at least as wide as the padding, so every output pixel reads
/// the same window offsets and there is no boundary code, no im2col and no packing of activations.
/// The weights are packed once per weights version into panels of 16 output channels, one 16-float row
/// per reduction step in (kh, kw, ic) order, the order in which a window row of NHWC input lies in memory.
/// A register tile of 6 output pixels x 16 channels (12 accumulators, 6 broadcasts and 2 weight loads
/// per 12 FMAs) walks the pixels in flattened (n, oh, ow) order, so tiles cross rows and images; on small
/// maps it walks them position-major, (oh, ow, n), so a tile's pixels share one position and skip together
/// the window taps that fall on the border (layer4 at 64x64 input: 2x2 maps, 4 of 9 taps real).
/// Every output element is one FMA chain in (kh, kw, ic) order: the bits do not depend on the threads, and
/// a skipped tap would only have added zero products (the same bits for finite weights).
/// </summary>
public static unsafe partial class Conv2d
{
    // Output channels per packed panel and per register tile: two Vector256 of floats.
    private const int NhwcChannelBlock = 16;

    // Output pixels per register tile (6 x 2 accumulators + 2 weight rows + 1 broadcast = 15 of 16 ymm).
    private const int NhwcTilePixels = 6;

    // Output pixels per work item: 32 tiles share each weight panel while it is in L2.
    private const int NhwcChunkPixels = 32 * NhwcTilePixels;

    // Work items wanted per call, so that the threads finish together however their cores are shared.
    private const int NhwcMinItems = 16;

    // Below this many multiply-adds one thread finishes before a second one would start.
    private const long NhwcParallelWork = 1L << 20;

    // Output maps up to this many pixels walk position-major: their border taps are a large share of the
    // window (8x8 maps: 16 %, 4x4: 31 %, 2x2: 56 %). bench conv at 64x64: layer2's 8x8 maps 1.1-1.2x faster
    // position-major; layer1's 16x16 (8 %) within the noise either way.
    private const int NhwcPositionMajorMaxPixels = 64;

    /// <summary>Floats of the packed weights of shape <paramref name="s"/> for <see cref="ForwardNhwcCpu(in Conv2dShape, ReadOnlySpan{float}, int, ReadOnlySpan{float}, ReadOnlySpan{float}, ReadOnlySpan{float}, bool, Span{float}, int)"/>: OutC rounded up to 16, times InC K^2.</summary>
    public static int NhwcPackedWeightLength(in Conv2dShape s)
    {
        s.Validate();
        return checked(NhwcChannelBlocks(s.OutC) * NhwcChannelBlock * s.ColumnRows);
    }

    /// <summary>
    /// w (OutC, InC, K, K) (PyTorch layout) -> packed [OutC/16 panels][kh][kw][ic][16 channels], the
    /// channels past OutC in the last panel zero.
    /// </summary>
    public static void PackWeightsNhwc(in Conv2dShape s, ReadOnlySpan<float> w, Span<float> packed)
    {
        int length = NhwcPackedWeightLength(s);
        RequireNhwcLength(w.Length, s.WeightLength, s, nameof(w), "(OutC, InC, K, K)");
        RequireNhwcLength(packed.Length, length, s, nameof(packed), "NhwcPackedWeightLength(s)");
        int k = s.Kernel, inC = s.InC;
        packed.Clear();
        for (int oc = 0; oc < s.OutC; oc++)
        {
            int panel = oc / NhwcChannelBlock * s.ColumnRows * NhwcChannelBlock, lane = oc % NhwcChannelBlock;
            for (int ic = 0; ic < inC; ic++)
            {
                for (int kh = 0; kh < k; kh++)
                {
                    for (int kw = 0; kw < k; kw++)
                    {
                        int step = (kh * k + kw) * inC + ic;
                        packed[panel + step * NhwcChannelBlock + lane] = w[((oc * inC + ic) * k + kh) * k + kw];
                    }
                }
            }
        }
    }

    /// <summary>
    /// y = act(conv(x, w) + bias[oc] (+ residual)), activations NHWC with a zero border:
    /// x (N, H + 2 inputBorder, W + 2 inputBorder, InC), inputBorder &gt;= Padding, its border zeros (read, never written);
    /// y (N, OutH + 2 outputBorder, OutW + 2 outputBorder, OutC), only the interior written;
    /// residual empty or laid out as y (its border ignored); bias (OutC); relu: max(v, 0) last.
    /// packedWeights from <see cref="PackWeightsNhwc"/>. Threads: <see cref="Gemm.CpuMaxThreads"/>.
    /// </summary>
    public static void ForwardNhwcCpu(in Conv2dShape s, ReadOnlySpan<float> x, int inputBorder, ReadOnlySpan<float> packedWeights,
        ReadOnlySpan<float> bias, ReadOnlySpan<float> residual, bool relu, Span<float> y, int outputBorder) =>
        ForwardNhwcCpu(s, x, inputBorder, packedWeights, bias, residual, relu, y, outputBorder, Gemm.CpuMaxThreads);

    /// <summary><see cref="ForwardNhwcCpu(in Conv2dShape, ReadOnlySpan{float}, int, ReadOnlySpan{float}, ReadOnlySpan{float}, ReadOnlySpan{float}, bool, Span{float}, int)"/> with a chosen thread limit (tests, benchmarks).</summary>
    public static void ForwardNhwcCpu(in Conv2dShape s, ReadOnlySpan<float> x, int inputBorder, ReadOnlySpan<float> packedWeights,
        ReadOnlySpan<float> bias, ReadOnlySpan<float> residual, bool relu, Span<float> y, int outputBorder, int maxThreads)
    {
        s.Validate();
        if (inputBorder < s.Padding || outputBorder < 0)
        {
            throw new ArgumentOutOfRangeException(inputBorder < s.Padding ? nameof(inputBorder) : nameof(outputBorder),
                $"Conv2d.ForwardNhwcCpu {s}: inputBorder {inputBorder} and outputBorder {outputBorder}; the input border must be >= the padding {s.Padding} and the output border >= 0.");
        }
        ArgumentOutOfRangeException.ThrowIfLessThan(maxThreads, 1);
        RequireNhwcArguments(s, x.Length, inputBorder, packedWeights.Length, NhwcPackedWeightLength(s), "NhwcPackedWeightLength(s), from PackWeightsNhwc",
            bias.Length, residual.Length, y.Length, outputBorder);
        fixed (float* px = x, pw = packedWeights, pb = bias, pr = residual, py = y)
        {
            var plan = new NhwcPlan(s, px, inputBorder, pw, pb, residual.IsEmpty ? null : pr, relu, py, outputBorder);
            plan.Run(maxThreads);
        }
    }

    /// <summary>The buffer checks of an NHWC convolution call (direct or Winograd): x, the packed weights, bias, residual (0 = none) and y.</summary>
    private static void RequireNhwcArguments(in Conv2dShape s, int xLength, int inputBorder, int packedLength, int expectedPacked, string packedLayout,
        int biasLength, int residualLength, int yLength, int outputBorder)
    {
        RequireNhwcLength(xLength, NhwcLength(s.N, s.H, s.W, s.InC, inputBorder), s, "x", $"(N, H + {2 * inputBorder}, W + {2 * inputBorder}, InC)");
        RequireNhwcLength(packedLength, expectedPacked, s, "packedWeights", packedLayout);
        RequireNhwcLength(biasLength, s.OutC, s, "bias", "(OutC)");
        int outputLength = NhwcLength(s.N, s.OutH, s.OutW, s.OutC, outputBorder);
        if (residualLength != 0)
        {
            RequireNhwcLength(residualLength, outputLength, s, "residual", $"(N, OutH + {2 * outputBorder}, OutW + {2 * outputBorder}, OutC) or empty");
        }
        RequireNhwcLength(yLength, outputLength, s, "y", $"(N, OutH + {2 * outputBorder}, OutW + {2 * outputBorder}, OutC)");
    }

    /// <summary>The taps [lo, hi) of a K-wide window at output index o whose input index o stride - padding + k lies in [0, extent).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (int Lo, int Hi) WindowInside(int o, int stride, int padding, int kernel, int extent)
    {
        int first = o * stride - padding;
        return (Math.Max(0, -first), Math.Min(kernel, extent - first));
    }

    /// <summary>
    /// Multiply-adds per (image, input channel, output channel) of the direct NHWC convolution: the window taps
    /// inside the map, summed over the output pixels (border taps are skipped, up to the tiles' sharing).
    /// </summary>
    public static long NhwcDirectTaps(in Conv2dShape s)
    {
        long rows = 0, columns = 0;
        for (int oh = 0; oh < s.OutH; oh++)
        {
            var (lo, hi) = WindowInside(oh, s.Stride, s.Padding, s.Kernel, s.H);
            rows += Math.Max(0, hi - lo);
        }
        for (int ow = 0; ow < s.OutW; ow++)
        {
            var (lo, hi) = WindowInside(ow, s.Stride, s.Padding, s.Kernel, s.W);
            columns += Math.Max(0, hi - lo);
        }
        return rows * columns;
    }

    private static int NhwcChannelBlocks(int outC) => (outC + NhwcChannelBlock - 1) / NhwcChannelBlock;

    // Elements of a bordered NHWC tensor (NhwcShape checks the extents and the 2^31 - 1 limit).
    private static int NhwcLength(int n, int h, int w, int c, int border)
    {
        var shape = new NhwcShape(n, h, w, c, border);
        shape.Validate();
        return shape.Length;
    }

    private static void RequireNhwcLength(int actual, int expected, in Conv2dShape s, string name, string layout) =>
        ShapeCheck.RequireLength($"Conv2d NHWC {s}", nameof(Conv2dShape), actual, expected, name, layout);

    /// <summary>One call's geometry; work items are (pixel chunk, channel-block chunk) pairs taken by the threads in turn.</summary>
    private readonly struct NhwcPlan
    {
        private readonly float* _x;
        private readonly float* _w;
        private readonly float* _bias;
        private readonly float* _residual; // laid out as y, or null
        private readonly float* _y;
        private readonly bool _relu;
        private readonly int _inC, _kernel, _stride, _padding, _inH, _inW, _n, _outC, _outH, _outW, _pixels, _blocks;
        private readonly bool _positionMajor; // pixels in (oh, ow, n) order, else (n, oh, ow)
        private readonly nint _xRow, _xImage, _xOrigin, _yRow, _yImage, _yOrigin;
        private readonly int _chunkPixels, _chunkBlocks, _pixelChunks, _blockChunks;

        public NhwcPlan(in Conv2dShape s, float* x, int inputBorder, float* w, float* bias, float* residual, bool relu, float* y, int outputBorder)
        {
            _x = x;
            _w = w;
            _bias = bias;
            _residual = residual;
            _y = y;
            _relu = relu;
            _inC = s.InC;
            _kernel = s.Kernel;
            _stride = s.Stride;
            _padding = s.Padding;
            _inH = s.H;
            _inW = s.W;
            _n = s.N;
            _outC = s.OutC;
            _outH = s.OutH;
            _outW = s.OutW;
            _pixels = s.N * _outH * _outW;
            _blocks = NhwcChannelBlocks(s.OutC);
            _positionMajor = s.Padding > 0 && _outH * _outW <= NhwcPositionMajorMaxPixels;
            _xRow = (nint)(s.W + 2 * inputBorder) * s.InC;
            _xImage = _xRow * (s.H + 2 * inputBorder);
            _xOrigin = (inputBorder - s.Padding) * (_xRow + s.InC);
            _yRow = (nint)(_outW + 2 * outputBorder) * s.OutC;
            _yImage = _yRow * (_outH + 2 * outputBorder);
            _yOrigin = outputBorder * (_yRow + s.OutC);
            // A chunk's input rows stay in L2 while each weight panel of the item streams over its tiles.
            _chunkPixels = NhwcChunkPixels;
            _pixelChunks = (_pixels + _chunkPixels - 1) / _chunkPixels;
            // Few pixel chunks (the small late maps): split the channel blocks too, so there are items for every thread.
            int groups = Math.Clamp((NhwcMinItems + _pixelChunks - 1) / _pixelChunks, 1, _blocks);
            _chunkBlocks = (_blocks + groups - 1) / groups;
            _blockChunks = (_blocks + _chunkBlocks - 1) / _chunkBlocks;
        }

        public void Run(int maxThreads)
        {
            int items = _pixelChunks * _blockChunks;
            long work = (long)_pixels * _blocks * NhwcChannelBlock * _inC * _kernel * _kernel;
            int threads = work < NhwcParallelWork ? 1 : Math.Min(maxThreads, items);
            if (threads == 1)
            {
                for (int item = 0; item < items; item++)
                {
                    RunItem(item);
                }
                return;
            }
            // Items are handed out one at a time, so a thread that loses its core holds up one item, not a share.
            int next = -1;
            var plan = this;
            Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, _ =>
            {
                for (int item = Interlocked.Increment(ref next); item < items; item = Interlocked.Increment(ref next))
                {
                    plan.RunItem(item);
                }
            });
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void RunItem(int item)
        {
            int pixelBegin = item % _pixelChunks * _chunkPixels;
            int pixelEnd = Math.Min(_pixels, pixelBegin + _chunkPixels);
            int blockBegin = item / _pixelChunks * _chunkBlocks;
            int blockEnd = Math.Min(_blocks, blockBegin + _chunkBlocks);
            int count = pixelEnd - pixelBegin;
            // Two tiles of padding: the short last tile, and the prefetch one tile past it.
            int slots = count + 2 * NhwcTilePixels;
            nint* xs = stackalloc nint[slots];
            nint* ys = stackalloc nint[slots];
            int* ohs = stackalloc int[slots];
            int* ows = stackalloc int[slots];
            int n, oh, ow;
            if (_positionMajor)
            {
                n = pixelBegin % _n;
                oh = Math.DivRem(pixelBegin / _n, _outW, out ow);
            }
            else
            {
                n = Math.DivRem(pixelBegin, _outH * _outW, out int position);
                oh = Math.DivRem(position, _outW, out ow);
            }
            for (int p = 0; p < count; p++)
            {
                xs[p] = n * _xImage + oh * _stride * _xRow + ow * _stride * _inC + _xOrigin;
                ys[p] = n * _yImage + oh * _yRow + ow * _outC + _yOrigin;
                ohs[p] = oh;
                ows[p] = ow;
                if (_positionMajor)
                {
                    Advance(ref n, _n, ref ow, _outW, ref oh);
                }
                else
                {
                    Advance(ref ow, _outW, ref oh, _outH, ref n);
                }
            }
            // A short last tile repeats its last pixel (computed, not stored).
            for (int p = count; p < slots; p++)
            {
                xs[p] = xs[count - 1];
                ys[p] = ys[count - 1];
                ohs[p] = ohs[count - 1];
                ows[p] = ows[count - 1];
            }
            // Each tile's window: the taps that some pixel of the tile reads inside the map (the rest read the zero border).
            int rowLength = _kernel * _inC;
            int panel = _kernel * rowLength * NhwcChannelBlock;
            int tiles = (count + NhwcTilePixels - 1) / NhwcTilePixels;
            var windows = stackalloc NhwcTileWindow[tiles];
            var full = new NhwcTileWindow(0, 0, _kernel, rowLength);
            for (int t = 0; t < tiles; t++)
            {
                windows[t] = _padding == 0 ? full : TileWindow(ohs + t * NhwcTilePixels, ows + t * NhwcTilePixels, rowLength);
            }
            // The tile goes to the stack and straight back: on a 64-byte boundary no store or load of it splits a cache line.
            float* tileSpace = stackalloc float[NhwcTilePixels * NhwcChannelBlock + 16];
            float* tile = (float*)(((nint)tileSpace + 63) & ~(nint)63);
            for (int block = blockBegin; block < blockEnd; block++)
            {
                int oc = block * NhwcChannelBlock;
                int channels = Math.Min(NhwcChannelBlock, _outC - oc);
                float* w = _w + (nint)block * panel;
                PrefetchOutputs(ys, oc);
                for (int t = 0, p = 0; t < tiles; t++, p += NhwcTilePixels)
                {
                    PrefetchOutputs(ys + p + NhwcTilePixels, oc);
                    var window = windows[t];
                    Tile6x16(_x + window.InputOffset, xs + p, w + window.WeightOffset, window.Rows, window.RowLength,
                        (nint)(rowLength - window.RowLength) * NhwcChannelBlock, _xRow, tile);
                    Epilogue(tile, ys + p, Math.Min(NhwcTilePixels, count - p), oc, channels);
                }
            }
        }

        // The next of three counters in odometer order: inner fastest, outer never wraps.
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void Advance(ref int inner, int innerEnd, ref int middle, int middleEnd, ref int outer)
        {
            if (++inner == innerEnd)
            {
                inner = 0;
                if (++middle == middleEnd)
                {
                    middle = 0;
                    outer++;
                }
            }
        }

        /// <summary>The window rows [khLo, khHi) and columns [kwLo, kwHi) that any of the tile's 6 pixels reads inside the map.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private NhwcTileWindow TileWindow(int* ohs, int* ows, int rowLength)
        {
            int khLo = _kernel, khHi = 0, kwLo = _kernel, kwHi = 0;
            for (int i = 0; i < NhwcTilePixels; i++)
            {
                var (rowLo, rowHi) = WindowInside(ohs[i], _stride, _padding, _kernel, _inH);
                var (columnLo, columnHi) = WindowInside(ows[i], _stride, _padding, _kernel, _inW);
                khLo = Math.Min(khLo, rowLo);
                khHi = Math.Max(khHi, rowHi);
                kwLo = Math.Min(kwLo, columnLo);
                kwHi = Math.Max(kwHi, columnHi);
            }
            int skipped = khLo * rowLength + kwLo * _inC;
            return new NhwcTileWindow(khLo * _xRow + kwLo * _inC, (nint)skipped * NhwcChannelBlock, khHi - khLo, (kwHi - kwLo) * _inC);
        }

        /// <summary>
        /// Asks for the cache lines a tile will store (and the residual lines it will read) one tile ahead: a
        /// large output (the stem's) is otherwise not in cache, and the tile's stores wait for memory.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private void PrefetchOutputs(nint* ys, int oc)
        {
            if (!Sse.IsSupported)
            {
                return;
            }
            for (int i = 0; i < NhwcTilePixels; i++)
            {
                float* dst = _y + ys[i] + oc;
                Sse.Prefetch0(dst);
                Sse.Prefetch0(dst + NhwcChannelBlock - 1);
                if (_residual != null)
                {
                    Sse.Prefetch0(_residual + ys[i] + oc);
                    Sse.Prefetch0(_residual + ys[i] + oc + NhwcChannelBlock - 1);
                }
            }
        }

        /// <summary>bias, residual and ReLU on a computed tile, stored into y's interior.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private void Epilogue(float* tile, nint* ys, int pixels, int oc, int channels)
        {
            for (int i = 0; i < pixels; i++)
            {
                float* dst = _y + ys[i] + oc;
                float* res = _residual == null ? null : _residual + ys[i] + oc;
                float* src = tile + i * NhwcChannelBlock;
                if (channels == NhwcChannelBlock)
                {
                    var v0 = Vector256.Load(src) + Vector256.Load(_bias + oc);
                    var v1 = Vector256.Load(src + 8) + Vector256.Load(_bias + oc + 8);
                    if (res != null)
                    {
                        v0 += Vector256.Load(res);
                        v1 += Vector256.Load(res + 8);
                    }
                    if (_relu)
                    {
                        v0 = SgemmEpilogue.ReluKeepingNaN(v0);
                        v1 = SgemmEpilogue.ReluKeepingNaN(v1);
                    }
                    v0.Store(dst);
                    v1.Store(dst + 8);
                    continue;
                }
                for (int c = 0; c < channels; c++)
                {
                    float v = src[c] + _bias[oc + c];
                    if (res != null)
                    {
                        v += res[c];
                    }
                    dst[c] = _relu ? MathF.Max(v, 0f) : v;
                }
            }
        }
    }

    /// <summary>
    /// A tile's window: where its first tap lies in x (from each pixel's origin) and in the weight panel, and
    /// how many window rows of how many consecutive floats it reads.
    /// </summary>
    private readonly record struct NhwcTileWindow(nint InputOffset, nint WeightOffset, int Rows, int RowLength);

    /// <summary>
    /// tile[6][16] = sum over r &lt; rows, j &lt; rowLength of x[xs[i] + r xRow + j] * w[r (rowLength + wSkip / 16) + j][16]:
    /// the window row r of pixel i is rowLength consecutive floats of NHWC input; wSkip is the panel's floats
    /// of the taps a row leaves out. Unrolled by two reduction steps (fewer loop instructions per 12 FMAs);
    /// each accumulator still adds its products in order.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile6x16(float* x, nint* xs, float* w, int rows, int rowLength, nint wSkip, nint xRow, float* tile)
    {
        float* x0 = x + xs[0], x1 = x + xs[1], x2 = x + xs[2], x3 = x + xs[3], x4 = x + xs[4], x5 = x + xs[5];
        var c00 = Vector256<float>.Zero; var c01 = Vector256<float>.Zero;
        var c10 = Vector256<float>.Zero; var c11 = Vector256<float>.Zero;
        var c20 = Vector256<float>.Zero; var c21 = Vector256<float>.Zero;
        var c30 = Vector256<float>.Zero; var c31 = Vector256<float>.Zero;
        var c40 = Vector256<float>.Zero; var c41 = Vector256<float>.Zero;
        var c50 = Vector256<float>.Zero; var c51 = Vector256<float>.Zero;
        nint length = rowLength, pairs = length & ~(nint)1;
        for (int r = 0; r < rows; r++)
        {
            nint j = 0;
            for (; j < pairs; j += 2)
            {
                Step6x16(w, x0 + j, x1 + j, x2 + j, x3 + j, x4 + j, x5 + j,
                    ref c00, ref c01, ref c10, ref c11, ref c20, ref c21, ref c30, ref c31, ref c40, ref c41, ref c50, ref c51);
                Step6x16(w + NhwcChannelBlock, x0 + j + 1, x1 + j + 1, x2 + j + 1, x3 + j + 1, x4 + j + 1, x5 + j + 1,
                    ref c00, ref c01, ref c10, ref c11, ref c20, ref c21, ref c30, ref c31, ref c40, ref c41, ref c50, ref c51);
                w += 2 * NhwcChannelBlock;
            }
            if (j < length)
            {
                Step6x16(w, x0 + j, x1 + j, x2 + j, x3 + j, x4 + j, x5 + j,
                    ref c00, ref c01, ref c10, ref c11, ref c20, ref c21, ref c30, ref c31, ref c40, ref c41, ref c50, ref c51);
                w += NhwcChannelBlock;
            }
            w += wSkip;
            x0 += xRow; x1 += xRow; x2 += xRow; x3 += xRow; x4 += xRow; x5 += xRow;
        }
        c00.Store(tile + 0); c01.Store(tile + 8);
        c10.Store(tile + 16); c11.Store(tile + 24);
        c20.Store(tile + 32); c21.Store(tile + 40);
        c30.Store(tile + 48); c31.Store(tile + 56);
        c40.Store(tile + 64); c41.Store(tile + 72);
        c50.Store(tile + 80); c51.Store(tile + 88);
    }

    /// <summary>One reduction step of the 6 x 16 tile: 2 weight loads, 6 broadcasts, 12 FMAs (inlined: the accumulators stay in registers).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Step6x16(float* w, float* x0, float* x1, float* x2, float* x3, float* x4, float* x5,
        ref Vector256<float> c00, ref Vector256<float> c01, ref Vector256<float> c10, ref Vector256<float> c11,
        ref Vector256<float> c20, ref Vector256<float> c21, ref Vector256<float> c30, ref Vector256<float> c31,
        ref Vector256<float> c40, ref Vector256<float> c41, ref Vector256<float> c50, ref Vector256<float> c51)
    {
        var w0 = Vector256.Load(w);
        var w1 = Vector256.Load(w + 8);
        var a = Vector256.Create(*x0);
        c00 = Vector256.FusedMultiplyAdd(a, w0, c00);
        c01 = Vector256.FusedMultiplyAdd(a, w1, c01);
        a = Vector256.Create(*x1);
        c10 = Vector256.FusedMultiplyAdd(a, w0, c10);
        c11 = Vector256.FusedMultiplyAdd(a, w1, c11);
        a = Vector256.Create(*x2);
        c20 = Vector256.FusedMultiplyAdd(a, w0, c20);
        c21 = Vector256.FusedMultiplyAdd(a, w1, c21);
        a = Vector256.Create(*x3);
        c30 = Vector256.FusedMultiplyAdd(a, w0, c30);
        c31 = Vector256.FusedMultiplyAdd(a, w1, c31);
        a = Vector256.Create(*x4);
        c40 = Vector256.FusedMultiplyAdd(a, w0, c40);
        c41 = Vector256.FusedMultiplyAdd(a, w1, c41);
        a = Vector256.Create(*x5);
        c50 = Vector256.FusedMultiplyAdd(a, w0, c50);
        c51 = Vector256.FusedMultiplyAdd(a, w1, c51);
    }
}
