using IlgpuOct.Kernels.Profiling;

namespace IlgpuOct.Kernels.Operators;

/// <summary>
/// One warp's tensor-core product D = A B + C (A 16 x K row-major, B K x 8 row-major, C and D 16 x 8
/// row-major; K = 8 for TF32, 16 for BF16): the smallest use of <see cref="KernelContext.MmaTf32"/> and
/// <see cref="KernelContext.MmaBf16"/>, whose kernels load every fragment register straight from the
/// matrices by the PTX layout (<see cref="TensorCore"/>). The CPU implementation computes the same
/// product from the matrices without fragments, with the inputs rounded as the hardware rounds them,
/// so it checks the fragment layouts, and equals the emulation bit for bit.
/// </summary>
public static partial class MmaTile
{
    /// <summary>Rows of A, C and D.</summary>
    public const int Rows = 16;

    /// <summary>Columns of B, C and D.</summary>
    public const int Cols = 8;

    /// <summary>The k extent of one mma: 8 (TF32) or 16 (BF16).</summary>
    public static int Depth(MatmulPrecision precision) => precision switch
    {
        MatmulPrecision.Tf32 => 8,
        MatmulPrecision.Bf16 => 16,
        _ => throw new ArgumentOutOfRangeException(nameof(precision), $"MmaTile runs tf32 or bf16, not {precision}."),
    };

    /// <summary>The reference: inputs rounded (TF32 ties away, BF16 ties to even), then d = c and d = fma(a, b, d) in k order in FP32.</summary>
    public static void Cpu(MatmulPrecision precision, ReadOnlySpan<float> a, ReadOnlySpan<float> b, ReadOnlySpan<float> c, Span<float> d)
    {
        int k = Depth(precision);
        CheckLengths(k, a.Length, b.Length, c.Length, d.Length);
        for (int row = 0; row < Rows; row++)
        {
            for (int col = 0; col < Cols; col++)
            {
                float sum = c[row * Cols + col];
                for (int p = 0; p < k; p++)
                {
                    sum = MathF.FusedMultiplyAdd(Round(precision, a[row * k + p]), Round(precision, b[p * Cols + col]), sum);
                }
                d[row * Cols + col] = sum;
            }
        }
    }

    private static float Round(MatmulPrecision precision, float x) => precision == MatmulPrecision.Tf32
        ? KernelMath.RoundToTf32(x)
        : TensorCore.Bf16ToFloat(TensorCore.RoundToBf16Bits(x));

    /// <summary>D = A B + C on the accelerator: the CPU implementation on cpu, one warp's mma.sync elsewhere.</summary>
    public static void Run(Accelerator accelerator, MatmulPrecision precision, View<float> a, View<float> b, View<float> c, View<float> d)
    {
        int k = Depth(precision);
        OperatorDispatch.Run(accelerator, "MmaTile.Run", new OperatorCost(2.0 * Rows * Cols * k, 4.0 * (Rows * k + k * Cols + 2 * Rows * Cols)),
            () => Cpu(precision, a.AsSpan(), b.AsSpan(), c.AsSpan(), d.AsSpan()),
            () =>
            {
                CheckLengths(k, a.Length, b.Length, c.Length, d.Length);
                if (precision == MatmulPrecision.Tf32)
                {
                    MmaTileTf32Kernel.Launch(accelerator, Warp, a, b, c, d);
                }
                else
                {
                    MmaTileBf16Kernel.Launch(accelerator, Warp, a, b, c, d);
                }
            });
    }

    private static readonly LaunchConfig Warp = new(1, KernelContext.WarpSize);

    /// <summary>mma.sync m16n8k8 TF32: every lane loads its A (4), B (2) and C (4) registers from the matrices.</summary>
    [Kernel]
    private static void MmaTileTf32(KernelContext ctx, View<float> a, View<float> b, View<float> c, View<float> d)
    {
        Span<float> acc = stackalloc float[4];
        Span<float> fa = stackalloc float[4];
        Span<float> fb = stackalloc float[2];
        int g = ctx.LaneIdx >> 2;
        int t = ctx.LaneIdx & 3;
        for (int i = 0; i < 4; i++)
        {
            fa[i] = KernelMath.RoundToTf32(a[(g + 8 * (i & 1)) * 8 + t + 4 * (i >> 1)]);
            acc[i] = c[(g + 8 * (i >> 1)) * Cols + 2 * t + (i & 1)];
        }
        for (int i = 0; i < 2; i++)
        {
            fb[i] = KernelMath.RoundToTf32(b[(t + 4 * i) * Cols + g]);
        }
        ctx.MmaTf32(acc, fa, fb);
        for (int i = 0; i < 4; i++)
        {
            d[(g + 8 * (i >> 1)) * Cols + 2 * t + (i & 1)] = acc[i];
        }
    }

    /// <summary>mma.sync m16n8k16 BF16: A register r holds (row g + 8 (r % 2), columns 2 t + 8 (r / 2) and the next); B register r holds k 2 t + 8 r and the next.</summary>
    [Kernel]
    private static void MmaTileBf16(KernelContext ctx, View<float> a, View<float> b, View<float> c, View<float> d)
    {
        Span<float> acc = stackalloc float[4];
        Span<uint> ua = stackalloc uint[4];
        Span<uint> ub = stackalloc uint[2];
        int g = ctx.LaneIdx >> 2;
        int t = ctx.LaneIdx & 3;
        for (int r = 0; r < 4; r++)
        {
            int at = (g + 8 * (r & 1)) * 16 + 2 * t + 8 * (r >> 1);
            ua[r] = KernelMath.PackBf16x2(a[at], a[at + 1]);
            acc[r] = c[(g + 8 * (r >> 1)) * Cols + 2 * t + (r & 1)];
        }
        for (int r = 0; r < 2; r++)
        {
            int k = 2 * t + 8 * r;
            ub[r] = KernelMath.PackBf16x2(b[k * Cols + g], b[(k + 1) * Cols + g]);
        }
        ctx.MmaBf16(acc, ua, ub);
        for (int i = 0; i < 4; i++)
        {
            d[(g + 8 * (i >> 1)) * Cols + 2 * t + (i & 1)] = acc[i];
        }
    }

    private static void CheckLengths(int k, int a, int b, int c, int d)
    {
        if (a != Rows * k || b != k * Cols || c != Rows * Cols || d != Rows * Cols)
        {
            throw new ArgumentException($"MmaTile (k = {k}): A must be {Rows} x {k} ({Rows * k} floats), B {k} x {Cols} ({k * Cols}), C and D {Rows} x {Cols} ({Rows * Cols}); got {a}, {b}, {c} and {d}.");
        }
    }

    [LaunchShapes]
    private static IEnumerable<LaunchShape> LaunchShapes()
    {
        yield return new LaunchShape(MmaTileTf32Kernel.Definition, "one warp", Warp);
        yield return new LaunchShape(MmaTileBf16Kernel.Definition, "one warp", Warp);
    }

    [SelfTests]
    private static IEnumerable<SelfTestCase> SelfTests()
    {
        foreach (var precision in new[] { MatmulPrecision.Tf32, MatmulPrecision.Bf16 })
        {
            int k = Depth(precision);
            // The reference fixes one FP32 summation order; hardware may sum the k exact products in
            // another: k roundings of a sum of magnitude <= k + 1 (inputs in [-1, 1)).
            double tolerance = k * (k + 1) * Math.Pow(2, -24);
            yield return new SelfTestCase($"MmaTile.{Accelerator.PrecisionName(precision)}", $"m16n8k{k}", (acc, seed) => OperatorSelfTest.Compare(acc,
                [OperatorSelfTest.Random(seed, Rows * k), OperatorSelfTest.Random(seed + 1, k * Cols), OperatorSelfTest.Random(seed + 2, Rows * Cols), new float[Rows * Cols]], [3],
                (a, v) => Run(a, precision, v[0], v[1], v[2], v[3]), h => Cpu(precision, h[0], h[1], h[2], h[3]), tolerance));
        }
    }
}
