namespace IlgpuOct.Kernels;

/// <summary>
/// Warp-level matrix multiply-accumulate (<c>mma.sync</c>) as the PTX ISA defines it, for the host
/// accelerators, plus the operand conversions kernels call through <see cref="KernelMath"/>. The
/// fragment layouts are those of "Matrix Fragments for mma.m16n8k8" (.tf32) and "for mma.m16n8k16"
/// (.bf16): with <c>g = lane / 4</c> and <c>t = lane % 4</c> every lane holds
/// <list type="bullet">
/// <item>TF32 m16n8k8: A (16 x 8, row) 4 registers, register i at row g + 8 (i % 2), column t + 4 (i / 2);
/// B (8 x 8, col) 2 registers, register i at k t + 4 i, column g;</item>
/// <item>BF16 m16n8k16: A (16 x 16, row) 4 registers of 2 bf16 each (low half first), register r half h at
/// row g + 8 (r % 2), column 2 t + h + 8 (r / 2); B (16 x 8, col) 2 registers, register r half h at
/// k 2 t + h + 8 r, column g;</item>
/// <item>C and D (16 x 8, f32) in both: 4 floats, element i at row g + 8 (i / 2), column 2 t + i % 2.</item>
/// </list>
/// Arithmetic: the hardware's internal summation order and intermediate precision are not specified
/// bit for bit. The emulation computes each output as <c>d = c</c>, then <c>d = fma(a[k], b[k], d)</c>
/// for k = 0, 1, ... in FP32 (products of TF32 or BF16 operands are exact in FP32, so each step rounds
/// once). A GPU result may differ from it by a few FP32 roundings of the running sum: tests compare
/// the GPU path against FP32 references at the format's tolerance, never bit for bit.
/// TF32 operands: the mma reads the top 19 bits of each register (the low 13 bits are ignored, as on
/// the hardware); BF16 operands are the 16-bit halves as they are. Subnormal operands are kept.
/// </summary>
public static class TensorCore
{
    /// <summary>Lanes that take part in one mma.sync: the whole warp.</summary>
    public const int Lanes = KernelContext.WarpSize;

    /// <summary>Registers per lane of the TF32 m16n8k8 A fragment.</summary>
    public const int Tf32AFragment = 4;

    /// <summary>Registers per lane of the TF32 m16n8k8 B fragment.</summary>
    public const int Tf32BFragment = 2;

    /// <summary>Registers per lane of the BF16 m16n8k16 A fragment (2 bf16 each).</summary>
    public const int Bf16AFragment = 4;

    /// <summary>Registers per lane of the BF16 m16n8k16 B fragment (2 bf16 each).</summary>
    public const int Bf16BFragment = 2;

    /// <summary>Floats per lane of the C/D (accumulator) fragment of both shapes.</summary>
    public const int AccumulatorFragment = 4;

    /// <summary>
    /// <c>cvt.rna.tf32.f32</c>: round to the nearest TF32 value (10 explicit mantissa bits), ties away
    /// from zero; the low 13 bits of the result are 0. Infinities stay, NaN becomes 0x7fffe000, finite
    /// values that round past the largest TF32 become infinity.
    /// </summary>
    public static uint RoundToTf32Bits(float x)
    {
        uint bits = BitConverter.SingleToUInt32Bits(x);
        if ((bits & 0x7f800000u) == 0x7f800000u)
        {
            return (bits & 0x007fffffu) != 0 ? 0x7fffe000u : bits;
        }
        return (bits + 0x1000u) & 0xffffe000u;
    }

    /// <summary>
    /// <c>cvt.rn.bf16.f32</c>: round to the nearest BF16 value (7 explicit mantissa bits), ties to even.
    /// NaN becomes 0x7fff (the canonical NaN CUDA's conversion returns).
    /// </summary>
    public static ushort RoundToBf16Bits(float x)
    {
        uint bits = BitConverter.SingleToUInt32Bits(x);
        if ((bits & 0x7fffffffu) > 0x7f800000u)
        {
            return 0x7fff;
        }
        return (ushort)((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
    }

    /// <summary>The float a BF16 value stands for (exact).</summary>
    public static float Bf16ToFloat(uint bf16) => BitConverter.UInt32BitsToSingle((bf16 & 0xffffu) << 16);

    /// <summary>The float the mma reads from a TF32 operand register (its low 13 bits ignored).</summary>
    public static float Tf32OperandValue(float register) =>
        BitConverter.UInt32BitsToSingle(BitConverter.SingleToUInt32Bits(register) & 0xffffe000u);

    /// <summary>
    /// <c>mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 d, a, b, d</c> for the 32 lanes of a warp:
    /// <paramref name="d"/>[lane] is read as C and overwritten with D.
    /// </summary>
    public static void MmaM16N8K8Tf32(IReadOnlyList<float[]> d, IReadOnlyList<float[]> a, IReadOnlyList<float[]> b)
    {
        CheckFragments("m16n8k8.tf32", d.Count, a.Count, b.Count);
        Span<float> matA = stackalloc float[16 * 8];   // [row][k]
        Span<float> matB = stackalloc float[8 * 8];    // [k][col]
        for (int lane = 0; lane < Lanes; lane++)
        {
            CheckLengths("m16n8k8.tf32", lane, d[lane].Length, a[lane].Length, Tf32AFragment, b[lane].Length, Tf32BFragment);
            int g = lane >> 2, t = lane & 3;
            for (int i = 0; i < Tf32AFragment; i++)
            {
                matA[(g + 8 * (i & 1)) * 8 + t + 4 * (i >> 1)] = Tf32OperandValue(a[lane][i]);
            }
            for (int i = 0; i < Tf32BFragment; i++)
            {
                matB[(t + 4 * i) * 8 + g] = Tf32OperandValue(b[lane][i]);
            }
        }
        Accumulate(d, matA, matB, 8);
    }

    /// <summary>
    /// <c>mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 d, a, b, d</c> for the 32 lanes of a warp
    /// (each A/B register holds two bf16, the lower-indexed element in the low 16 bits).
    /// </summary>
    public static void MmaM16N8K16Bf16(IReadOnlyList<float[]> d, IReadOnlyList<uint[]> a, IReadOnlyList<uint[]> b)
    {
        CheckFragments("m16n8k16.bf16", d.Count, a.Count, b.Count);
        Span<float> matA = stackalloc float[16 * 16];  // [row][k]
        Span<float> matB = stackalloc float[16 * 8];   // [k][col]
        for (int lane = 0; lane < Lanes; lane++)
        {
            CheckLengths("m16n8k16.bf16", lane, d[lane].Length, a[lane].Length, Bf16AFragment, b[lane].Length, Bf16BFragment);
            int g = lane >> 2, t = lane & 3;
            for (int r = 0; r < Bf16AFragment; r++)
            {
                for (int h = 0; h < 2; h++)
                {
                    matA[(g + 8 * (r & 1)) * 16 + 2 * t + h + 8 * (r >> 1)] = Bf16ToFloat(a[lane][r] >> (16 * h));
                }
            }
            for (int r = 0; r < Bf16BFragment; r++)
            {
                for (int h = 0; h < 2; h++)
                {
                    matB[(2 * t + h + 8 * r) * 8 + g] = Bf16ToFloat(b[lane][r] >> (16 * h));
                }
            }
        }
        Accumulate(d, matA, matB, 16);
    }

    // D = A B + C over a 16 x 8 output, FP32 fma in k order (see the class comment).
    private static void Accumulate(IReadOnlyList<float[]> d, ReadOnlySpan<float> matA, ReadOnlySpan<float> matB, int k)
    {
        for (int lane = 0; lane < Lanes; lane++)
        {
            int g = lane >> 2, t = lane & 3;
            for (int i = 0; i < AccumulatorFragment; i++)
            {
                int row = g + 8 * (i >> 1);
                int col = 2 * t + (i & 1);
                float sum = d[lane][i];
                for (int p = 0; p < k; p++)
                {
                    sum = MathF.FusedMultiplyAdd(matA[row * k + p], matB[p * 8 + col], sum);
                }
                d[lane][i] = sum;
            }
        }
    }

    private static void CheckFragments(string shape, int d, int a, int b)
    {
        if (d != Lanes || a != Lanes || b != Lanes)
        {
            throw new ArgumentException($"mma.sync.{shape} takes the fragments of all {Lanes} lanes of a warp; got {d}, {a} and {b}.");
        }
    }

    private static void CheckLengths(string shape, int lane, int d, int a, int aWant, int b, int bWant)
    {
        if (d != AccumulatorFragment || a != aWant || b != bWant)
        {
            throw new ArgumentException($"mma.sync.{shape}: lane {lane} passes fragments of {d}, {a} and {b} registers; D/C needs {AccumulatorFragment}, A {aWant}, B {bWant}.");
        }
    }
}
