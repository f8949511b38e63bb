using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using IlgpuOct.Kernels.Cpu;

namespace IlgpuOct.Kernels.Operators;

/// <summary>
/// Winograd F(2x2, 3x3) for the 3x3, stride-1, padding-1 convolutions of the cpu engine's NHWC path: each
/// 2x2 output block costs 16 multiplies per (input, output) channel pair instead of 36. Three passes per
/// chunk of images: the input transform V = B^T d B of every 4x4 window (8 channels per vector), sixteen
/// products M_t = V_t U_t that are 1x1 direct NHWC convolutions of the tiles (the register tile of
/// <see cref="ForwardNhwcCpu(in Conv2dShape, ReadOnlySpan{float}, int, ReadOnlySpan{float}, ReadOnlySpan{float}, ReadOnlySpan{float}, bool, Span{float}, int)"/>),
/// then the output transform A^T M A with bias, residual and ReLU. U = G g G^T is computed once per weights
/// version, in double. Results differ from the direct convolution by float32 rounding (the transforms add
/// and subtract window values before the products); every sum's order is fixed by the shape, so the bits
/// do not depend on the thread count.
/// </summary>
public static unsafe partial class Conv2d
{
    // Winograd pays off once the products dominate the transforms and the scratch traffic: from 256 input channels
    // (bench conv: 1.4-1.5x the direct convolution there; at 128 channels it lost at 224x224, at 64 at both sizes).
    private const int WinogradMinChannels = 256;

    // Scratch floats per pass (V and M each) before the batch is cut into chunks of images.
    private const long WinogradChunkFloats = 1L << 22;

    /// <summary>
    /// Whether <see cref="ForwardWinogradNhwcCpu"/> takes <paramref name="s"/>: 3x3, stride 1, padding 1, channel
    /// counts multiples of 8 (whole vectors) and at least <see cref="WinogradMinChannels"/> input channels.
    /// </summary>
    public static bool WinogradApplies(in Conv2dShape s) =>
        s.Kernel == 3 && s.Stride == 1 && s.Padding == 1 && s.InC % 8 == 0 && s.OutC % 8 == 0 && s.InC >= WinogradMinChannels;

    // What one of Winograd's product multiply-adds costs in direct ones (the transforms, 16/9 the weights, V and M
    // through memory). bench conv, batch 32, direct with border taps skipped against Winograd: 256 channels on 4x4
    // maps (64 products vs 100 taps) direct ~1.1x faster, 512 on 7x7 (256 vs 361) a tie, 256 on 14x14 (784 vs 1600)
    // Winograd 1.35x faster: 1.4-1.7 fits all three.
    private const double WinogradProductCost = 1.6;

    /// <summary>
    /// Whether the NHWC path (<see cref="ForwardNhwc"/>) runs <paramref name="s"/> as Winograd: it applies, and its
    /// 16 products per 2x2 tile, weighted by their extra cost, are fewer than the direct convolution's taps
    /// inside the map (<see cref="NhwcDirectTaps"/>). At 64x64 input every ResNet-18 convolution runs direct (layer3's 4x4 maps:
    /// 64 products against 100 taps, layer4's 2x2: 16 against 16); at 224x224 layer3 (14x14) runs Winograd.
    /// </summary>
    public static bool NhwcUsesWinograd(in Conv2dShape s)
    {
        var (rows, columns) = WinogradTileGrid(s);
        return WinogradApplies(s) && WinogradProductCost * 16 * rows * columns < NhwcDirectTaps(s);
    }

    // The 2x2 output tiles of one image (stride 1, padding 1: the output is as large as the input).
    private static (int Rows, int Columns) WinogradTileGrid(in Conv2dShape s) => ((s.H + 1) / 2, (s.W + 1) / 2);

    // The 1x1 product of one transform position over `tiles` tiles: (tiles, InC) x (InC, OutC).
    private static Conv2dShape WinogradProduct(in Conv2dShape s, int tiles) => new(1, s.InC, 1, tiles, s.OutC, 1, 1, 0);

    /// <summary>Floats of <see cref="PackWeightsWinograd"/>'s output: 16 packed 1x1 weight sets.</summary>
    public static int WinogradPackedWeightLength(in Conv2dShape s) => checked(16 * NhwcPackedWeightLength(WinogradProduct(s, 1)));

    /// <summary>w (OutC, InC, 3, 3) to U_t = (G g G^T)[t] for the 16 positions t, each packed as a 1x1 NHWC weight set.</summary>
    public static void PackWeightsWinograd(in Conv2dShape s, ReadOnlySpan<float> w, Span<float> packed)
    {
        if (!WinogradApplies(s))
        {
            throw new ArgumentException($"Conv2d.PackWeightsWinograd: {s} is not a Winograd shape (3x3, stride 1, padding 1, channels multiples of 8, >= {WinogradMinChannels} inputs); use PackWeightsNhwc.");
        }
        RequireNhwcLength(w.Length, s.WeightLength, s, nameof(w), "(OutC, InC, 3, 3)");
        RequireNhwcLength(packed.Length, WinogradPackedWeightLength(s), s, nameof(packed), "WinogradPackedWeightLength(s)");
        var product = WinogradProduct(s, 1);
        int per = NhwcPackedWeightLength(product), pairs = s.OutC * s.InC;
        float[] positions = new float[16 * pairs]; // [t][oc][ic]
        Span<double> gg = stackalloc double[12];
        for (int pair = 0; pair < pairs; pair++)
        {
            var g = w.Slice(pair * 9, 9);
            // G g: 4 x 3 with G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1].
            for (int c = 0; c < 3; c++)
            {
                double g0 = g[c], g1 = g[3 + c], g2 = g[6 + c];
                gg[c] = g0;
                gg[3 + c] = 0.5 * (g0 + g1 + g2);
                gg[6 + c] = 0.5 * (g0 - g1 + g2);
                gg[9 + c] = g2;
            }
            for (int r = 0; r < 4; r++)
            {
                double a0 = gg[3 * r], a1 = gg[3 * r + 1], a2 = gg[3 * r + 2];
                positions[(4 * r + 0) * pairs + pair] = (float)a0;
                positions[(4 * r + 1) * pairs + pair] = (float)(0.5 * (a0 + a1 + a2));
                positions[(4 * r + 2) * pairs + pair] = (float)(0.5 * (a0 - a1 + a2));
                positions[(4 * r + 3) * pairs + pair] = (float)a2;
            }
        }
        for (int t = 0; t < 16; t++)
        {
            PackWeightsNhwc(product, positions.AsSpan(t * pairs, pairs), packed.Slice(t * per, per));
        }
    }

    /// <summary>
    /// <see cref="ForwardNhwcCpu(in Conv2dShape, ReadOnlySpan{float}, int, ReadOnlySpan{float}, ReadOnlySpan{float}, ReadOnlySpan{float}, bool, Span{float}, int)"/>'s
    /// contract (layouts, borders, epilogue) for a shape where <see cref="WinogradApplies"/>, with weights from
    /// <see cref="PackWeightsWinograd"/>.
    /// </summary>
    public static void ForwardWinogradNhwcCpu(in Conv2dShape s, ReadOnlySpan<float> x, int inputBorder, ReadOnlySpan<float> packedWeights,
        ReadOnlySpan<float> bias, ReadOnlySpan<float> residual, bool relu, Span<float> y, int outputBorder)
    {
        s.Validate();
        if (!WinogradApplies(s) || inputBorder < 1 || outputBorder < 0)
        {
            throw new ArgumentException($"Conv2d.ForwardWinogradNhwcCpu: {s} with input border {inputBorder}, output border {outputBorder} is not a Winograd call (3x3, stride 1, padding 1, channels multiples of 8, >= {WinogradMinChannels} inputs, input border >= 1); use ForwardNhwcCpu.");
        }
        RequireNhwcArguments(s, x.Length, inputBorder, packedWeights.Length, WinogradPackedWeightLength(s), "WinogradPackedWeightLength(s), from PackWeightsWinograd",
            bias.Length, residual.Length, y.Length, outputBorder);

        var (tilesH, tilesW) = WinogradTileGrid(s);
        int perImage = tilesH * tilesW;
        int images = (int)Math.Clamp(WinogradChunkFloats / (16L * perImage * Math.Max(s.InC, s.OutC)), 1, s.N);
        int per = NhwcPackedWeightLength(WinogradProduct(s, 1));
        float[] v = ArrayPool<float>.Shared.Rent(16 * images * perImage * s.InC);
        float[] m = ArrayPool<float>.Shared.Rent(16 * images * perImage * s.OutC);
        float[] zeros = new float[s.OutC];
        try
        {
            fixed (float* px = x, pw = packedWeights, pb = bias, pr = residual, py = y, pv = v, pm = m)
            {
                for (int first = 0; first < s.N; first += images)
                {
                    int count = Math.Min(images, s.N - first), tiles = count * perImage;
                    var g = new WinogradGeometry(s, px, inputBorder, pb, residual.IsEmpty ? null : pr, relu, py, outputBorder, pv, pm, first, tiles);
                    CpuParallel.For(count * tilesH, (long)tiles * 16 * s.InC, row => g.InputRow(row));
                    var product = WinogradProduct(s, tiles);
                    nint av = (nint)pv, aw = (nint)pw, am = (nint)pm;
                    int inC = s.InC, outC = s.OutC;
                    // The 16 products in one parallel region, one thread each (16 equal items; no region per product).
                    void Product(int t) => ForwardNhwcCpu(product, new ReadOnlySpan<float>((float*)av + (nint)t * tiles * inC, tiles * inC), 0,
                        new ReadOnlySpan<float>((float*)aw + (nint)t * per, per), zeros, default, relu: false,
                        new Span<float>((float*)am + (nint)t * tiles * outC, tiles * outC), 0, maxThreads: 1);
                    CpuParallel.For(16, (long)tiles * inC * outC, Product);
                    CpuParallel.For(count * tilesH, (long)tiles * 16 * s.OutC, row => g.OutputRow(row));
                }
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(v);
            ArrayPool<float>.Shared.Return(m);
        }
    }

    /// <summary>One call's layouts: x and y bordered NHWC, V [16][tiles][InC] and M [16][tiles][OutC] for the current chunk of images.</summary>
    private readonly struct WinogradGeometry
    {
        private readonly float* _x, _bias, _residual, _y, _v, _m;
        private readonly bool _relu;
        private readonly int _inC, _outC, _h, _w, _tilesH, _tilesW, _xBorder;
        private readonly nint _xRow, _xImage, _yRow, _yImage, _yOrigin;

        public WinogradGeometry(in Conv2dShape s, float* x, int inputBorder, float* bias, float* residual, bool relu, float* y, int outputBorder, float* v, float* m,
            int firstImage, int tiles)
        {
            FirstImage = firstImage;
            Tiles = tiles;
            _x = x;
            _bias = bias;
            _residual = residual;
            _relu = relu;
            _y = y;
            _v = v;
            _m = m;
            _inC = s.InC;
            _outC = s.OutC;
            _h = s.H;
            _w = s.W;
            (_tilesH, _tilesW) = WinogradTileGrid(s);
            _xBorder = inputBorder;
            _xRow = (nint)(s.W + 2 * inputBorder) * s.InC;
            _xImage = _xRow * (s.H + 2 * inputBorder);
            _yRow = (nint)(s.W + 2 * outputBorder) * s.OutC;
            _yImage = _yRow * (s.H + 2 * outputBorder);
            _yOrigin = outputBorder * (_yRow + s.OutC);
        }

        /// <summary>The chunk's first image in the batch.</summary>
        public int FirstImage { get; }

        /// <summary>Tiles of the chunk: its images x tile rows x tile columns.</summary>
        public int Tiles { get; }

        /// <summary>V for the tiles of one tile row (image, th) of the chunk: 4x4 windows from (2 th - 1, 2 tw - 1), outside the buffer zero.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void InputRow(int row)
        {
            int image = row / _tilesH, th = row % _tilesH;
            float* origin = _x + (nint)(FirstImage + image) * _xImage + (nint)(_xBorder - 1) * (_xRow + _inC);
            nint stride = (nint)Tiles * _inC;
            var d = stackalloc Vector256<float>[16];
            for (int tw = 0; tw < _tilesW; tw++)
            {
                int tile = row * _tilesW + tw;
                // Rows and columns of the window that lie past the buffer (odd sizes with a border of 1) read as zero.
                int rows = Math.Min(4, _h + _xBorder - (2 * th - 1)), cols = Math.Min(4, _w + _xBorder - (2 * tw - 1));
                float* window = origin + 2 * th * _xRow + 2 * tw * _inC;
                float* dst = _v + (nint)tile * _inC;
                for (int c = 0; c < _inC; c += 8)
                {
                    for (int r = 0; r < 4; r++)
                    {
                        for (int q = 0; q < 4; q++)
                        {
                            d[4 * r + q] = r < rows && q < cols ? Vector256.Load(window + r * _xRow + q * _inC + c) : Vector256<float>.Zero;
                        }
                    }
                    // B^T d B with B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], rows first, then columns.
                    for (int q = 0; q < 4; q++)
                    {
                        var d0 = d[q]; var d1 = d[4 + q]; var d2 = d[8 + q]; var d3 = d[12 + q];
                        d[q] = d0 - d2;
                        d[4 + q] = d1 + d2;
                        d[8 + q] = d2 - d1;
                        d[12 + q] = d1 - d3;
                    }
                    for (int r = 0; r < 4; r++)
                    {
                        var d0 = d[4 * r]; var d1 = d[4 * r + 1]; var d2 = d[4 * r + 2]; var d3 = d[4 * r + 3];
                        float* o = dst + c + (nint)(4 * r) * stride;
                        (d0 - d2).Store(o);
                        (d1 + d2).Store(o + stride);
                        (d2 - d1).Store(o + 2 * stride);
                        (d1 - d3).Store(o + 3 * stride);
                    }
                }
            }
        }

        /// <summary>y for the tiles of one tile row: A^T M A (A^T = [1 1 1 0; 0 1 -1 -1]), + bias (+ residual), ReLU; outputs past H or W dropped.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void OutputRow(int row)
        {
            int image = row / _tilesH, th = row % _tilesH;
            nint stride = (nint)Tiles * _outC;
            var s0 = stackalloc Vector256<float>[4];
            var s1 = stackalloc Vector256<float>[4];
            for (int tw = 0; tw < _tilesW; tw++)
            {
                int tile = row * _tilesW + tw;
                int rows = Math.Min(2, _h - 2 * th), cols = Math.Min(2, _w - 2 * tw);
                float* src = _m + (nint)tile * _outC;
                nint outBase = (nint)(FirstImage + image) * _yImage + _yOrigin + 2 * th * _yRow + 2 * tw * _outC;
                for (int c = 0; c < _outC; c += 8)
                {
                    for (int q = 0; q < 4; q++)
                    {
                        var m0 = Vector256.Load(src + c + q * stride);
                        var m1 = Vector256.Load(src + c + (4 + q) * stride);
                        var m2 = Vector256.Load(src + c + (8 + q) * stride);
                        var m3 = Vector256.Load(src + c + (12 + q) * stride);
                        s0[q] = m0 + m1 + m2;
                        s1[q] = m1 - m2 - m3;
                    }
                    var b = Vector256.Load(_bias + c);
                    for (int i = 0; i < rows; i++)
                    {
                        var sr = i == 0 ? s0 : s1;
                        for (int j = 0; j < cols; j++)
                        {
                            var value = (j == 0 ? sr[0] + sr[1] + sr[2] : sr[1] - sr[2] - sr[3]) + b;
                            nint at = outBase + i * _yRow + j * _outC + c;
                            if (_residual != null)
                            {
                                value += Vector256.Load(_residual + at);
                            }
                            if (_relu)
                            {
                                value = SgemmEpilogue.ReluKeepingNaN(value);
                            }
                            value.Store(_y + at);
                        }
                    }
                }
            }
        }
    }
}
