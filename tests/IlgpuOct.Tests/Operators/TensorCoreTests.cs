using System.Reflection;
using FluentAssertions;
using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Cuda;
using IlgpuOct.Kernels.CudaHost;
using IlgpuOct.Kernels.Fuzzing;
using IlgpuOct.Kernels.Operators;
using IlgpuOct.Tests.Cuda;
using IlgpuOct.Tests.Support;
using Microsoft.CodeAnalysis;
using Xunit;
using Xunit.Sdk;

namespace IlgpuOct.Tests.Operators;

/// <summary>
/// Tensor cores from C#: the operand conversions (cvt.rna.tf32.f32, cvt.rn.bf16x2.f32), the fragment
/// layouts of mma.sync m16n8k8 (TF32) and m16n8k16 (BF16) through one warp's product against a scalar
/// reference on cpu-kernels and cuda-host, the warp rule (all 32 lanes), NVRTC accepting the PTX for
/// sm_80 and sm_90, and the TF32/BF16 variants of GEMM and of the three convolution products against
/// the FP32 CPU reference at the format's tolerance.
/// </summary>
public sealed class TensorCoreTests
{
    public static TheoryData<AcceleratorKind, MatmulPrecision> Devices => new()
    {
        { AcceleratorKind.CpuKernels, MatmulPrecision.Tf32 },
        { AcceleratorKind.CpuKernels, MatmulPrecision.Bf16 },
        { AcceleratorKind.CudaHost, MatmulPrecision.Tf32 },
        { AcceleratorKind.CudaHost, MatmulPrecision.Bf16 },
    };

    // ---- conversions ----

    [Theory]
    [InlineData(0x3f801000u, 0x3f802000u)] // 1 + 2^-11: a tie, rounded away from zero (RNE would give 1)
    [InlineData(0xbf801000u, 0xbf802000u)] // -(1 + 2^-11): away from zero too
    [InlineData(0x3f800fffu, 0x3f800000u)] // just below the tie: down
    [InlineData(0x3f803000u, 0x3f804000u)] // a tie above an odd mantissa: away (RNE agrees here)
    [InlineData(0x7f7fffffu, 0x7f800000u)] // the largest float rounds past the largest TF32: infinity
    [InlineData(0x7f800000u, 0x7f800000u)] // infinity stays
    [InlineData(0x00000fffu, 0x00000000u)] // a subnormal below half a TF32 ulp: +0
    [InlineData(0x7fc00001u, 0x7fffe000u)] // NaN: a NaN with the low 13 bits clear
    public void Tf32_rounding_is_to_nearest_ties_away_with_the_low_13_bits_clear(uint input, uint expected)
    {
        TensorCore.RoundToTf32Bits(BitConverter.UInt32BitsToSingle(input)).Should().Be(expected);
        BitConverter.SingleToUInt32Bits(KernelMath.RoundToTf32(BitConverter.UInt32BitsToSingle(input))).Should().Be(expected);
    }

    [Theory]
    [InlineData(0x3f808000u, (ushort)0x3f80)] // 1 + 2^-8: a tie, to even (down)
    [InlineData(0x3f818000u, (ushort)0x3f82)] // 1 + 3 2^-8: a tie, to even (up)
    [InlineData(0xbf818000u, (ushort)0xbf82)] // negative tie, to even
    [InlineData(0x3f808001u, (ushort)0x3f81)] // above the tie: up
    [InlineData(0x7f7fffffu, (ushort)0x7f80)] // overflow: infinity
    [InlineData(0xff800000u, (ushort)0xff80)] // -infinity stays
    [InlineData(0x7f800001u, (ushort)0x7fff)] // NaN: the canonical BF16 NaN
    public void Bf16_rounding_is_to_nearest_even(uint input, ushort expected) =>
        TensorCore.RoundToBf16Bits(BitConverter.UInt32BitsToSingle(input)).Should().Be(expected);

    [Fact]
    public void PackBf16x2_puts_the_first_argument_in_the_low_half()
    {
        KernelMath.PackBf16x2(1f, -2f).Should().Be(0xc0003f80u);
        TensorCore.Bf16ToFloat(KernelMath.PackBf16x2(1f, -2f)).Should().Be(1f);
        TensorCore.Bf16ToFloat(KernelMath.PackBf16x2(1f, -2f) >> 16).Should().Be(-2f);
    }

    [Fact]
    public void The_cpu_engine_refuses_reduced_precision_in_one_line()
    {
        using var cpu = new HostAccelerator(AcceleratorKind.Cpu);
        var act = () => cpu.Precision = MatmulPrecision.Bf16;
        act.Should().Throw<NotSupportedException>().Which.Message.Should().Contain("--precision bf16").And.NotContain("\n");
        cpu.Precision.Should().Be(MatmulPrecision.Fp32);
        Accelerator.ParsePrecision("TF32").Should().Be(MatmulPrecision.Tf32);
        ((Action)(() => Accelerator.ParsePrecision("fp16"))).Should().Throw<ArgumentException>().WithMessage("*fp32, tf32 or bf16*");
    }

    // ---- one warp: the fragment layouts ----

    /// <summary>
    /// D = A B + C of one warp on the device equals, bit for bit, the scalar reference computed from the
    /// matrices (inputs rounded, FP32 fma in k order): every fragment register sits where the PTX ISA
    /// puts it, and the device's conversions round as the reference does (the inputs include ties).
    /// </summary>
    [Theory]
    [MemberData(nameof(Devices))]
    public void One_warp_mma_matches_the_scalar_reference_bit_for_bit(AcceleratorKind kind, MatmulPrecision precision)
    {
        int k = MmaTile.Depth(precision);
        var rng = new Random(11);
        var a = Values(rng, MmaTile.Rows * k);
        var b = Values(rng, k * MmaTile.Cols);
        var c = Values(rng, MmaTile.Rows * MmaTile.Cols);
        // Ties of both formats, so a device conversion that rounded them differently would show.
        a[0] = BitConverter.UInt32BitsToSingle(0x3f801000u);
        a[k + 1] = BitConverter.UInt32BitsToSingle(0xbf808000u);
        b[3] = BitConverter.UInt32BitsToSingle(0x3f818000u);
        b[k * MmaTile.Cols - 1] = BitConverter.UInt32BitsToSingle(0x3f803000u);
        var expected = new float[MmaTile.Rows * MmaTile.Cols];
        MmaTile.Cpu(precision, a, b, c, expected);
        using var device = TestDevice.Open(kind);
        var d = new float[expected.Length];
        MmaTile.Run(device.Accelerator, precision, device.V(a), device.V(b), device.V(c), device.V(d));
        device.Sync();
        for (int i = 0; i < d.Length; i++)
        {
            if (BitConverter.SingleToUInt32Bits(d[i]) != BitConverter.SingleToUInt32Bits(expected[i]))
            {
                throw new XunitException($"MmaTile {precision} on {kind}: D[{i / MmaTile.Cols}, {i % MmaTile.Cols}] = {d[i]:R}, the reference gives {expected[i]:R} (first differing element)");
            }
        }
        // And the reference is the product it claims to be: within the format's rounding of the exact one.
        var exact = new double[d.Length];
        var magnitude = new double[d.Length];
        for (int row = 0; row < MmaTile.Rows; row++)
        {
            for (int col = 0; col < MmaTile.Cols; col++)
            {
                exact[row * MmaTile.Cols + col] = c[row * MmaTile.Cols + col];
                for (int p = 0; p < k; p++)
                {
                    exact[row * MmaTile.Cols + col] += (double)a[row * k + p] * b[p * MmaTile.Cols + col];
                    magnitude[row * MmaTile.Cols + col] += Math.Abs((double)a[row * k + p] * b[p * MmaTile.Cols + col]);
                }
            }
        }
        AssertWithinBound(d, Array.ConvertAll(exact, v => (float)v), magnitude, precision, k, $"MmaTile {precision} on {kind} against the exact product");
    }

    /// <summary>mma.sync is warp-wide: a lane that leaves before it is a clear error on both host accelerators, not a hang or garbage.</summary>
    [Theory]
    [InlineData(AcceleratorKind.CpuKernels)]
    [InlineData(AcceleratorKind.CudaHost)]
    public void An_mma_that_not_all_32_lanes_reach_is_an_error_naming_mma(AcceleratorKind kind)
    {
        const string source = """
            namespace IlgpuOct.MmaProbe;
            public static partial class C
            {
                [Kernel]
                public static void K(KernelContext ctx, View<float> o, View<int> x)
                {
                    Span<float> acc = stackalloc float[4];
                    Span<float> a = stackalloc float[4];
                    Span<float> b = stackalloc float[2];
                    int t = ctx.ThreadIdx.X;
                    if (x[t] >= 16)
                    {
                        return;
                    }
                    ctx.MmaTf32(acc, a, b);
                    o[t] = acc[0];
                }
            }
            """;
        var build = KernelSourceBuild.Run(source, "MmaProbe" + Guid.NewGuid().ToString("N"));
        build.GeneratorDiagnostics.Where(d => d.Severity == DiagnosticSeverity.Error).Should().BeEmpty();
        build.Errors.Should().BeEmpty();
        var launch = build.Load().GetType("IlgpuOct.MmaProbe.C+KKernel")!.GetMethod("Launch")!;
        using Accelerator accelerator = kind == AcceleratorKind.CudaHost ? CudaHostAccelerator.Open(false, new KernelCache(enabled: false)) : new HostAccelerator(kind);
        using var o = accelerator.Upload<float>(new float[32]);
        using var x = accelerator.Upload<int>(Enumerable.Range(0, 32).ToArray());
        var act = () =>
        {
            try
            {
                launch.Invoke(null, [accelerator, new LaunchConfig(1, 32), o.View, x.View]);
                accelerator.Synchronize();
            }
            catch (TargetInvocationException e) when (e.InnerException is not null)
            {
                throw e.InnerException;
            }
        };
        act.Should().Throw<KernelExecutionException>().Which.Message.Should().Contain("mma.sync").And.Contain("lane");
    }

    [NvrtcFact]
    public void Nvrtc_assembles_the_mma_kernels_for_sm_80_and_sm_90()
    {
        var nvrtc = Nvrtc.Get();
        var kernels = KernelRegistry.All.Where(k => k.Name.Contains("MmaTile", StringComparison.Ordinal) || k.Name.Contains("TensorCore1", StringComparison.Ordinal)).ToList();
        kernels.Select(k => k.Name).Should().Contain(n => n.EndsWith("MmaTileTf32", StringComparison.Ordinal)).And.Contain(n => n.EndsWith("ConvTensorCore1", StringComparison.Ordinal));
        foreach (int arch in new[] { 80, 90 })
        {
            var target = nvrtc.ChooseTarget(arch);
            foreach (var kernel in kernels)
            {
                nvrtc.Compile(kernel.CudaSource, kernel.Name, target).Image.Should().NotBeEmpty($"{kernel.Name} for sm_{arch}");
            }
        }
    }

    /// <summary>What <c>ilgpuoct selftest</c> runs for the tensor-core kernels passes on cpu-kernels.</summary>
    [Fact]
    public void Tensor_core_self_tests_pass_on_cpu_kernels()
    {
        var cases = SelfTestCatalog.Discover(typeof(Gemm).Assembly)
            .Where(c => c.Kernel.StartsWith("GemmTensorCore1.", StringComparison.Ordinal) || c.Kernel.StartsWith("ConvTensorCore1.", StringComparison.Ordinal) || c.Kernel.StartsWith("MmaTile.", StringComparison.Ordinal))
            .ToList();
        cases.Should().HaveCount(2 * 3 * 4 + 2 * 3 * 3 + 2, "GEMM: 2 precisions x 3 shapes x 4 transposes; convolutions: 2 x 3 shapes x 3 passes; MmaTile: 2");
        using var acc = new HostAccelerator(AcceleratorKind.CpuKernels);
        foreach (var c in cases)
        {
            var result = c.Run(acc, 5);
            result.Passed.Should().BeTrue($"{c.Kernel} {c.Shape}: max error {result.MaxAbsError} > {result.Tolerance}");
        }
    }

    // ---- the variants against the FP32 CPU reference ----

    public static TheoryData<AcceleratorKind, MatmulPrecision, int, int, int, bool, bool> GemmCases()
    {
        var data = new TheoryData<AcceleratorKind, MatmulPrecision, int, int, int, bool, bool>();
        foreach (var (kind, precision) in new[] { (AcceleratorKind.CpuKernels, MatmulPrecision.Tf32), (AcceleratorKind.CpuKernels, MatmulPrecision.Bf16), (AcceleratorKind.CudaHost, MatmulPrecision.Tf32), (AcceleratorKind.CudaHost, MatmulPrecision.Bf16) })
        {
            // Edge shapes: single element, k = 1, odd k (a half-empty BF16 pair), partial tiles on every side, several k slices.
            data.Add(kind, precision, 1, 1, 1, false, false);
            data.Add(kind, precision, 17, 9, 1, true, false);
            data.Add(kind, precision, 65, 63, 35, false, true);
            data.Add(kind, precision, 70, 129, 100, true, true);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(GemmCases))]
    public void Gemm_variant_is_the_fp32_product_within_the_format_rounding(AcceleratorKind kind, MatmulPrecision precision, int m, int n, int k, bool transA, bool transB)
    {
        var rng = new Random(m * 1000 + n * 10 + k);
        var a = GemmTests.Random(transA ? k : m, transA ? m : k, 1, rng);
        var b = GemmTests.Random(transB ? n : k, transB ? k : n, 2, rng);
        var c = GemmTests.Random(m, n, 0, rng);
        const float alpha = 1.25f, beta = -0.5f;
        var expected = (float[])c.Data.Clone();
        Gemm.Cpu(transA, transB, m, n, k, alpha, a.Data, a.Ld, b.Data, b.Ld, beta, expected, c.Ld);
        // |alpha| sum |a||b| per element: the scale of each output's rounding error.
        var magnitude = new float[m * n];
        Gemm.Cpu(transA, transB, m, n, k, Math.Abs(alpha), Abs(a.Data), a.Ld, Abs(b.Data), b.Ld, 0f, magnitude, n);
        using var device = TestDevice.Open(kind);
        device.Accelerator.Precision = precision;
        var actual = (float[])c.Data.Clone();
        Gemm.Run(device.Accelerator, transA, transB, m, n, k, alpha, device.V(a.Data), a.Ld, device.V(b.Data), b.Ld, beta, device.V(actual), c.Ld);
        device.Sync();
        AssertWithinBound(actual, expected, Array.ConvertAll(magnitude, v => (double)v), precision, k, $"Gemm {precision} on {kind} {(transA ? "T" : "N")}{(transB ? "T" : "N")} m={m} n={n} k={k}");
    }

    public static TheoryData<AcceleratorKind, MatmulPrecision, int> ConvCases()
    {
        var data = new TheoryData<AcceleratorKind, MatmulPrecision, int>();
        foreach (var kind in new[] { AcceleratorKind.CpuKernels, AcceleratorKind.CudaHost })
        {
            foreach (var precision in new[] { MatmulPrecision.Tf32, MatmulPrecision.Bf16 })
            {
                for (int shape = 0; shape < ConvShapes.Length; shape++)
                {
                    data.Add(kind, precision, shape);
                }
            }
        }
        return data;
    }

    // Edge shapes: one channel in and out with a 7x7 stride-2 padded kernel, a pointwise convolution, odd
    // reduction lengths (half-empty BF16 pairs) and channel counts that leave partial 64 x 64 tiles.
    private static readonly Conv2dShape[] ConvShapes =
    {
        new(1, 1, 9, 9, 1, 7, 2, 3),
        new(2, 5, 6, 7, 3, 1, 1, 0),
        new(2, 13, 8, 8, 70, 3, 2, 1),
        new(3, 66, 5, 5, 9, 3, 1, 1),
    };

    [Theory]
    [MemberData(nameof(ConvCases))]
    public void Convolution_variants_are_the_fp32_products_within_the_format_rounding(AcceleratorKind kind, MatmulPrecision precision, int shapeIndex)
    {
        var s = ConvShapes[shapeIndex];
        var rng = new Random(shapeIndex + 7);
        var x = Values(rng, s.InputLength);
        var w = Values(rng, s.WeightLength);
        var dy = Values(rng, s.OutputLength);
        using var device = TestDevice.Open(kind);
        device.Accelerator.Precision = precision;

        var y = new float[s.OutputLength];
        Conv2d.Forward(device.Accelerator, s, device.V(x), device.V(w), device.V(y));
        var dx = new float[s.InputLength];
        Conv2d.BackwardData(device.Accelerator, s, device.V(w), device.V(dy), device.V(dx));
        var dw = Values(rng, s.WeightLength); // overwritten
        Conv2d.BackwardWeight(device.Accelerator, s, device.V(x), device.V(dy), device.V(dw));
        device.Sync();

        var yRef = new float[y.Length];
        var yMag = new float[y.Length];
        Conv2d.ForwardCpu(s, x, w, yRef);
        Conv2d.ForwardCpu(s, Abs(x), Abs(w), yMag);
        AssertWithinBound(y, yRef, Array.ConvertAll(yMag, v => (double)v), precision, s.ColumnRows, $"Conv2d.Forward {precision} on {kind} {s}");
        var dxRef = new float[dx.Length];
        var dxMag = new float[dx.Length];
        Conv2d.BackwardDataCpu(s, w, dy, dxRef);
        Conv2d.BackwardDataCpu(s, Abs(w), Abs(dy), dxMag);
        AssertWithinBound(dx, dxRef, Array.ConvertAll(dxMag, v => (double)v), precision, s.OutC * s.Kernel * s.Kernel, $"Conv2d.BackwardData {precision} on {kind} {s}");
        var dwRef = new float[dw.Length];
        var dwMag = new float[dw.Length];
        Conv2d.BackwardWeightCpu(s, x, dy, dwRef);
        Conv2d.BackwardWeightCpu(s, Abs(x), Abs(dy), dwMag);
        AssertWithinBound(dw, dwRef, Array.ConvertAll(dwMag, v => (double)v), precision, s.N * s.ColumnCols, $"Conv2d.BackwardWeight {precision} on {kind} {s}");
    }

    /// <summary>
    /// The format's error bound per element: rounding each input costs a relative u (2^-11 for TF32's
    /// 10-bit mantissa rounded to nearest, 2^-8 for BF16's 7 bits), so each product a b is off by at most
    /// (2u + u^2) |a b|; the reduced-precision sum and the FP32 reference each add at most about
    /// k 2^-24 sum |a b| (FP32 accumulation of k terms). With S = sum |a b| (<paramref name="magnitude"/>,
    /// scaled by |alpha| where there is one): |actual - expected| &lt;= (2u + u^2 + 2.2 k 2^-24) S + 1e-6.
    /// Linear in k (the worst case, errors of one sign); random signs would give sqrt(k), but the bound
    /// must hold for every input, and S already shrinks it where terms cancel in magnitude.
    /// </summary>
    private static void AssertWithinBound(float[] actual, float[] expected, double[] magnitude, MatmulPrecision precision, int k, string what)
    {
        double u = precision == MatmulPrecision.Tf32 ? Math.Pow(2, -11) : Math.Pow(2, -8);
        double factor = 2 * u + u * u + 2.2 * k * Math.Pow(2, -24);
        for (int i = 0; i < actual.Length; i++)
        {
            double bound = factor * magnitude[i] + 1e-6;
            double error = Math.Abs((double)actual[i] - expected[i]);
            if (!(error <= bound))
            {
                throw new XunitException($"{what}: element {i}: {actual[i]:R} vs FP32 {expected[i]:R}, |diff| {error:G3} > bound {bound:G3} ((2u + u^2 + 2.2 k 2^-24) sum|a b|, k = {k}) (first bad index)");
            }
        }
        // The bound is not vacuous: a reduced-precision run differs from FP32 somewhere when k > 0.
        if (magnitude.Any(m => m > 0))
        {
            actual.Zip(expected).Any(p => p.First != p.Second).Should().BeTrue($"{what}: a {precision} product that equals FP32 everywhere would mean the inputs were not rounded");
        }
    }

    private static float[] Values(Random rng, int length)
    {
        var values = new float[length];
        for (int i = 0; i < length; i++)
        {
            values[i] = (float)(rng.NextDouble() * 2 - 1);
        }
        return values;
    }

    private static float[] Abs(float[] values) => Array.ConvertAll(values, MathF.Abs);
}
