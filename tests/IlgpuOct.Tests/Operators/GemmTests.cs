using System.Numerics.Tensors;
using FluentAssertions;
using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Cpu;
using IlgpuOct.Kernels.Operators;
using IlgpuOct.Tests.Support;
using Xunit;

namespace IlgpuOct.Tests.Operators;

/// <summary>The CPU SGEMM against a double-precision triple loop: shapes, transposes, strides, alpha/beta, kernels, threads.</summary>
public sealed class GemmTests
{
    /// <summary>A stored matrix of op(X) with a padded row stride, filled with seeded values in [-1, 1).</summary>
    internal sealed record Operand(float[] Data, int Ld);

    internal static Operand Random(int rows, int cols, int pad, Random rng)
    {
        int ld = cols + pad;
        var data = new float[Math.Max(0, (rows - 1) * ld + cols) + pad];
        for (int i = 0; i < data.Length; i++)
        {
            data[i] = (float)(rng.NextDouble() * 2 - 1);
        }
        return new Operand(data, ld);
    }

    /// <summary>C = alpha * op(A) op(B) + beta * C in double, beta == 0 ignoring C.</summary>
    internal static float[] Reference(bool transA, bool transB, int m, int n, int k, float alpha,
        float[] a, int lda, float[] b, int ldb, float beta, float[] c, int ldc)
    {
        // op(A) row by row and op(B) column by column, contiguous, so the dot products run fast.
        var rowsA = new double[m * k];
        var colsB = new double[n * k];
        for (int i = 0; i < m; i++)
        {
            for (int p = 0; p < k; p++)
            {
                rowsA[i * k + p] = transA ? a[p * lda + i] : a[i * lda + p];
            }
        }
        for (int j = 0; j < n; j++)
        {
            for (int p = 0; p < k; p++)
            {
                colsB[j * k + p] = transB ? b[j * ldb + p] : b[p * ldb + j];
            }
        }
        var result = (float[])c.Clone();
        for (int i = 0; i < m; i++)
        {
            var row = new ReadOnlySpan<double>(rowsA, i * k, k);
            for (int j = 0; j < n; j++)
            {
                // TensorPrimitives is a Release-built package: fast even when the tests are a Debug build.
                double sum = TensorPrimitives.Dot(row, new ReadOnlySpan<double>(colsB, j * k, k));
                double old = beta == 0 ? 0 : (double)beta * c[i * ldc + j];
                result[i * ldc + j] = (float)(alpha * sum + old);
            }
        }
        return result;
    }

    /// <summary>fp32 accumulation over k terms of size <= 1: error grows with k.</summary>
    internal static double AbsTolerance(int k) => 1e-6 + 2.5e-7 * k;

    private static void CheckCase(bool transA, bool transB, int m, int n, int k, float alpha, float beta, int seed,
        SgemmMicroKernel kernel = SgemmMicroKernel.Auto, int threads = 2, int pad = 0)
    {
        var rng = new Random(seed);
        var a = transA ? Random(k, m, pad, rng) : Random(m, k, pad, rng);
        var b = transB ? Random(n, k, pad, rng) : Random(k, n, pad, rng);
        var c = Random(m, n, pad, rng);
        var expected = Reference(transA, transB, m, n, k, alpha, a.Data, a.Ld, b.Data, b.Ld, beta, c.Data, c.Ld);
        var actual = (float[])c.Data.Clone();
        Gemm.Cpu(transA, transB, m, n, k, alpha, a.Data, a.Ld, b.Data, b.Ld, beta, actual, c.Ld, kernel, threads);
        Tolerance.AssertClose(actual, expected, AbsTolerance(k), 1e-5,
            $"gemm {(transA ? "T" : "N")}{(transB ? "T" : "N")} m={m} n={n} k={k} alpha={alpha} beta={beta} {kernel} threads={threads} pad={pad}");
    }

    public static TheoryData<int, int, int> Shapes => new()
    {
        { 1, 1, 1 },
        { 1, 37, 5 },
        { 29, 1, 17 },
        { 6, 16, 8 },     // exactly one 6 x 16 tile
        { 7, 17, 3 },     // one past the tile in both directions
        { 13, 33, 29 },
        { 12, 32, 1 },    // exactly one 12 x 32 tile, k = 1
        { 50, 70, 257 },  // k one past a KC block
        { 145, 20, 40 },  // m one past an MC block
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void All_transposes_match_the_double_reference(int m, int n, int k)
    {
        int seed = 1000 * m + 10 * n + k;
        foreach (bool transA in new[] { false, true })
        {
            foreach (bool transB in new[] { false, true })
            {
                CheckCase(transA, transB, m, n, k, 1f, 0f, seed);
            }
        }
    }

    [Fact]
    public void Resnet_shaped_product_matches_in_every_transpose_multithreaded()
    {
        // layer1 conv of a 32x32 image: Cout 64, 32*32 output pixels, Cin*3*3 = 576; big enough to go parallel.
        foreach (bool transA in new[] { false, true })
        {
            foreach (bool transB in new[] { false, true })
            {
                CheckCase(transA, transB, 64, 1024, 576, 1f, 0f, seed: 7, threads: 2);
            }
        }
    }

    [Theory]
    [InlineData(8, 4100, 260, false)]  // n > NC (4080 for 6x16) and k > KC (256): column panels and k slices loop
    [InlineData(4040, 20, 10, true)]   // m > the packed-A group (4032 rows for 6x16): row groups reuse packed B
    [InlineData(300, 100, 30, true)]   // several MC blocks: B packed in its own phase, not fused into tasks
    public void Products_crossing_block_boundaries_match(int m, int n, int k, bool transA)
    {
        CheckCase(transA, true, m, n, k, 0.75f, 0.5f, seed: m + n, threads: 3);
        CheckCase(transA, false, m, n, k, 0.75f, 0.5f, seed: m + n + 1, threads: 1);
    }

    [Theory]
    [InlineData(SgemmMicroKernel.Vector512x12x32)]
    [InlineData(SgemmMicroKernel.Vector256x6x16)]
    [InlineData(SgemmMicroKernel.Vector128x6x8)]
    public void Every_micro_kernel_matches_whatever_the_hardware(SgemmMicroKernel kernel)
    {
        // A micro-kernel the CPU does not accelerate runs in .NET's software vectors: slow, so small shapes.
        foreach (var (m, n, k) in new[] { (1, 1, 1), (13, 35, 9), (25, 70, 200), (12, 32, 7) })
        {
            foreach (bool transA in new[] { false, true })
            {
                foreach (bool transB in new[] { false, true })
                {
                    CheckCase(transA, transB, m, n, k, 1.25f, -0.5f, seed: m + n + k, kernel: kernel, threads: 1, pad: 3);
                }
            }
        }
    }

    [Theory]
    [InlineData(1f, 0f)]
    [InlineData(1f, 1f)]
    [InlineData(-0.5f, 2f)]
    [InlineData(3f, -1f)]
    public void Alpha_and_beta_scale_product_and_old_C(float alpha, float beta)
    {
        CheckCase(false, true, 31, 45, 67, alpha, beta, seed: 3, pad: 2);
        CheckCase(true, false, 150, 160, 100, alpha, beta, seed: 4, threads: 2); // parallel path
    }

    [Fact]
    public void Row_strides_leave_padding_columns_untouched()
    {
        var rng = new Random(5);
        int m = 9, n = 21, k = 14, pad = 4;
        var a = Random(m, k, pad, rng);
        var b = Random(k, n, pad, rng);
        var c = Random(m, n, pad, rng);
        var before = (float[])c.Data.Clone();
        Gemm.Cpu(false, false, m, n, k, 1f, a.Data, a.Ld, b.Data, b.Ld, 0.5f, c.Data, c.Ld);
        for (int i = 0; i < m - 1; i++)
        {
            for (int j = n; j < c.Ld; j++)
            {
                c.Data[i * c.Ld + j].Should().Be(before[i * c.Ld + j], $"padding at row {i}, column {j} is not part of C");
            }
        }
        for (int j = (m - 1) * c.Ld + n; j < c.Data.Length; j++)
        {
            c.Data[j].Should().Be(before[j], "floats after the last row are not part of C");
        }
    }

    [Theory]
    [InlineData(5, 7, 3, 1)]
    [InlineData(100, 130, 200, 2)]
    public void Beta_zero_ignores_NaN_in_C(int m, int n, int k, int threads)
    {
        var rng = new Random(6);
        var a = Random(m, k, 0, rng);
        var b = Random(k, n, 0, rng);
        var c = new float[m * n];
        Array.Fill(c, float.NaN);
        Gemm.Cpu(false, false, m, n, k, 1f, a.Data, k, b.Data, n, 0f, c, n, SgemmMicroKernel.Auto, threads);
        var expected = Reference(false, false, m, n, k, 1f, a.Data, k, b.Data, n, 0f, new float[m * n], n);
        Tolerance.AssertClose(c, expected, AbsTolerance(k), 1e-5, "beta = 0 over a C full of NaN");
    }

    [Fact]
    public void Alpha_zero_or_k_zero_only_scale_C()
    {
        var a = new[] { float.NaN, float.NaN, float.NaN, float.NaN };
        var b = new[] { float.NaN, float.NaN, float.NaN, float.NaN };
        var c = new[] { 1f, 2f, 3f, 4f };
        Gemm.Cpu(false, false, 2, 2, 2, 0f, a, 2, b, 2, 3f, c, 2);
        c.Should().Equal(3f, 6f, 9f, 12f);

        var c0 = new[] { float.NaN, 2f, 3f, 4f };
        Gemm.Cpu(false, false, 2, 2, 0, 1f, [], 0, [], 2, 0f, c0, 2);
        c0.Should().Equal(0f, 0f, 0f, 0f);
    }

    [Fact]
    public void Threads_do_not_change_a_single_bit()
    {
        var rng = new Random(8);
        int m = 130, n = 300, k = 300;
        var a = Random(m, k, 0, rng);
        var b = Random(n, k, 0, rng);
        var one = new float[m * n];
        var three = new float[m * n];
        Gemm.Cpu(false, true, m, n, k, 1f, a.Data, k, b.Data, k, 0f, one, n, SgemmMicroKernel.Auto, 1);
        Gemm.Cpu(false, true, m, n, k, 1f, a.Data, k, b.Data, k, 0f, three, n, SgemmMicroKernel.Auto, 3);
        three.Should().Equal(one, "every element of C is summed in the same order whatever the thread split");
    }

    [Fact]
    public void Batched_products_match_one_by_one_with_a_shared_A()
    {
        var rng = new Random(9);
        int batch = 5, m = 16, n = 49, k = 27;
        var w = Random(m, k, 0, rng);          // shared weights (strideA = 0)
        var cols = Random(batch * k, n, 0, rng); // batch of (k, n) im2col matrices
        var c = Random(batch * m, n, 0, rng);
        var expected = (float[])c.Data.Clone();
        for (int i = 0; i < batch; i++)
        {
            Gemm.Cpu(false, false, m, n, k, 1f, w.Data, k, cols.Data.AsSpan(i * k * n), n, 0.5f, expected.AsSpan(i * m * n), n);
        }
        Gemm.CpuBatched(false, false, batch, m, n, k, 1f, w.Data, k, 0, cols.Data, n, (long)k * n, 0.5f, c.Data, n, (long)m * n);
        c.Data.Should().Equal(expected);
    }

    [Fact]
    public void Too_short_operands_and_bad_strides_are_rejected_with_a_fix()
    {
        var small = new float[5];
        var act = () => Gemm.Cpu(false, false, 2, 3, 4, 1f, small, 4, new float[12], 3, 0f, new float[6], 3);
        act.Should().Throw<ArgumentException>().WithMessage("*A holds 5 floats*needs 8*");
        var stride = () => Gemm.Cpu(true, false, 2, 3, 4, 1f, new float[8], 1, new float[12], 3, 0f, new float[6], 3);
        stride.Should().Throw<ArgumentOutOfRangeException>().WithMessage("*Row stride of A (1)*stride >= 2*");
        var negative = () => Gemm.Cpu(false, false, -1, 3, 4, 1f, small, 4, new float[12], 3, 0f, new float[6], 3);
        negative.Should().Throw<ArgumentOutOfRangeException>();
    }
}

/// <summary>The GEMM kernels on cpu-kernels (exact grid/block/barrier semantics) against Gemm.Cpu.</summary>
public sealed class GemmKernelTests
{
    public static TheoryData<GemmVariant, int, int, int> Cases()
    {
        var data = new TheoryData<GemmVariant, int, int, int>();
        foreach (var variant in new[] { GemmVariant.Gemm1Naive, GemmVariant.Gemm2Tiled64, GemmVariant.Gemm3Tiled128 })
        {
            data.Add(variant, 1, 1, 1);
            data.Add(variant, 5, 7, 3);     // smaller than every tile, k below one k-slice
            data.Add(variant, 33, 70, 19);  // ragged in every direction, k across slices of 8 and 16
        }
        data.Add(GemmVariant.Gemm2Tiled64, 65, 130, 17);  // 2 x 3 blocks of 64, one row/column past a tile
        data.Add(GemmVariant.Gemm3Tiled128, 130, 129, 9); // 2 x 2 blocks of 128
        return data;
    }

    private static void Check(GemmVariant variant, bool transA, bool transB, int m, int n, int k, float alpha, float beta, bool nanInC, int seed)
    {
        using var acc = new HostAccelerator(AcceleratorKind.CpuKernels);
        var rng = new Random(seed);
        // Padded strides check the index math against lda/ldb/ldc rather than the matrix widths.
        var a = transA ? GemmTests.Random(k, m, 2, rng) : GemmTests.Random(m, k, 2, rng);
        var b = transB ? GemmTests.Random(n, k, 1, rng) : GemmTests.Random(k, n, 1, rng);
        var c = GemmTests.Random(m, n, 3, rng);
        if (nanInC)
        {
            for (int i = 0; i < m; i++)
            {
                c.Data.AsSpan(i * c.Ld, n).Fill(float.NaN); // the matrix only: padding must stay comparable
            }
        }
        var expected = (float[])c.Data.Clone();
        Gemm.Cpu(transA, transB, m, n, k, alpha, a.Data, a.Ld, b.Data, b.Ld, beta, expected, c.Ld);
        using var da = acc.Upload<float>(a.Data);
        using var db = acc.Upload<float>(b.Data);
        using var dc = acc.Upload<float>(c.Data);
        Gemm.Run(acc, transA, transB, m, n, k, alpha, da, a.Ld, db, b.Ld, beta, dc, c.Ld, variant);
        var actual = acc.Download(dc.View);
        Tolerance.AssertClose(actual, expected, GemmTests.AbsTolerance(k), 1e-5,
            $"{variant} {(transA ? "T" : "N")}{(transB ? "T" : "N")} m={m} n={n} k={k} alpha={alpha} beta={beta}");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Kernel_matches_the_CPU_GEMM_in_every_transpose(GemmVariant variant, int m, int n, int k)
    {
        foreach (bool transA in new[] { false, true })
        {
            foreach (bool transB in new[] { false, true })
            {
                Check(variant, transA, transB, m, n, k, 1.5f, -0.5f, nanInC: false, seed: m * 31 + n * 7 + k);
            }
        }
    }

    [Theory]
    [InlineData(GemmVariant.Gemm1Naive)]
    [InlineData(GemmVariant.Gemm2Tiled64)]
    [InlineData(GemmVariant.Gemm3Tiled128)]
    [InlineData(GemmVariant.Gemm4WarpTiled)]
    public void Beta_zero_ignores_NaN_in_C_and_k_zero_only_scales(GemmVariant variant)
    {
        Check(variant, false, true, 17, 20, 11, 1f, 0f, nanInC: true, seed: 1);
        Check(variant, true, false, 9, 12, 0, 2f, 0.25f, nanInC: false, seed: 2);
    }

    [Fact]
    public void Auto_picks_the_128_tile_kernel_only_for_grids_that_fill_a_GPU()
    {
        Gemm.ResolveVariant(GemmVariant.Auto, 1024, 1024).Should().Be(GemmVariant.Gemm2Tiled64);   // 8 x 8 = 64 blocks of 128 < 66
        Gemm.ResolveVariant(GemmVariant.Auto, 2048, 2048).Should().Be(GemmVariant.Gemm4WarpTiled); // 256 blocks
        Gemm.ResolveVariant(GemmVariant.Auto, 64, 100352).Should().Be(GemmVariant.Gemm4WarpTiled);
        Gemm.ResolveVariant(GemmVariant.Gemm3Tiled128, 64, 100352).Should().Be(GemmVariant.Gemm3Tiled128); // older variants stay selectable
        Gemm.ResolveVariant(GemmVariant.Auto, 512, 128).Should().Be(GemmVariant.Gemm2Tiled64);
        Gemm.ResolveVariant(GemmVariant.Gemm1Naive, 4096, 4096).Should().Be(GemmVariant.Gemm1Naive);
    }

    [Fact]
    public void Dispatcher_checks_view_lengths_before_launching()
    {
        using var acc = new HostAccelerator(AcceleratorKind.CpuKernels);
        using var a = acc.Allocate<float>(5);
        using var b = acc.Allocate<float>(12);
        using var c = acc.Allocate<float>(6);
        var act = () => Gemm.Run(acc, false, false, 2, 3, 4, 1f, a, 4, b, 3, 0f, c, 3);
        act.Should().Throw<ArgumentException>().WithMessage("*A holds 5 floats*");
    }

    [Fact]
    public void Self_tests_pass_on_cpu_kernels_for_the_small_shapes()
    {
        using var acc = new HostAccelerator(AcceleratorKind.CpuKernels);
        var cases = SelfTestCatalog.Discover(typeof(Gemm).Assembly).Where(c => c.Kernel.StartsWith("Gemm.", StringComparison.Ordinal)).ToList();
        cases.Should().HaveCount(4 * 4 * 4);
        foreach (var selfTest in cases.Where(c => !c.Shape.Contains("m=300", StringComparison.Ordinal)))
        {
            var result = selfTest.Run(acc, 42);
            result.Passed.Should().BeTrue($"{selfTest.Kernel} {selfTest.Shape}: max error {result.MaxAbsError} > {result.Tolerance}");
        }
    }
}

/// <summary>
/// Gemm4 (warp tiles, Float4 loads and stores, double-buffered shared tiles) on cpu-kernels and on
/// its CUDA C (cuda-host) against the double-precision reference: whole aligned tiles (every Float4
/// path), ragged edges with aligned strides (Float4 inside, scalars at the edges), odd strides and a
/// view that starts one float into its buffer (scalar paths), in every transpose.
/// </summary>
public sealed class Gemm4WarpTiledTests
{
    public static TheoryData<AcceleratorKind, int, int, int, int, int> Cases()
    {
        var data = new TheoryData<AcceleratorKind, int, int, int, int, int>();
        foreach (var kind in new[] { AcceleratorKind.CpuKernels, AcceleratorKind.CudaHost })
        {
            data.Add(kind, 128, 256, 64, 0, 0);  // 1 x 2 blocks, 8 k-slices, aligned: all Float4
            data.Add(kind, 132, 136, 20, 4, 0);  // 4 rows/columns past a tile, k 2.5 slices; strides multiples of 4: Float4 up to the k edge
            data.Add(kind, 130, 129, 20, 4, 0);  // partial Float4s at the m/n edges (scalar there), some strides odd
            data.Add(kind, 67, 45, 33, 1, 0);    // odd strides: scalar loads and stores
            data.Add(kind, 40, 36, 16, 0, 1);    // views one float into their buffers: misaligned starts
            data.Add(kind, 5, 3, 0, 0, 0);       // k == 0: C only scaled
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Gemm4_matches_the_double_reference(AcceleratorKind kind, int m, int n, int k, int pad, int offset)
    {
        foreach (bool transA in new[] { false, true })
        {
            foreach (bool transB in new[] { false, true })
            {
                var rng = new Random(m * 131 + n * 17 + k + pad);
                // pad 4 keeps strides multiples of 4 when the widths are; pad 0 uses the widths themselves.
                var a = transA ? GemmTests.Random(k, m, pad, rng) : GemmTests.Random(m, k, pad, rng);
                var b = transB ? GemmTests.Random(n, k, pad, rng) : GemmTests.Random(k, n, pad, rng);
                var c = GemmTests.Random(m, n, pad, rng);
                var expected = GemmTests.Reference(transA, transB, m, n, k, 1.25f, a.Data, a.Ld, b.Data, b.Ld, -0.5f, c.Data, c.Ld);
                using var device = TestDevice.Open(kind);
                float[] Shifted(float[] data) => offset == 0 ? data : [0f, .. data];
                var ca = Shifted(c.Data);
                var va = device.V(Shifted(a.Data));
                var vb = device.V(Shifted(b.Data));
                var vc = device.V(ca);
                Gemm.Run(device.Accelerator, transA, transB, m, n, k, 1.25f,
                    va.Slice(offset, va.Length - offset), a.Ld, vb.Slice(offset, vb.Length - offset), b.Ld, -0.5f, vc.Slice(offset, vc.Length - offset), c.Ld,
                    GemmVariant.Gemm4WarpTiled);
                device.Sync();
                Tolerance.AssertClose(ca.AsSpan(offset), expected, GemmTests.AbsTolerance(k), 1e-5,
                    $"Gemm4 on {kind} {(transA ? "T" : "N")}{(transB ? "T" : "N")} m={m} n={n} k={k} pad={pad} offset={offset}");
            }
        }
    }

    [Fact]
    public void Float4_alignment_follows_the_view_start_and_the_row_stride()
    {
        var data = new float[16];
        Float4.IsAligned(new View<float>(data), 8).Should().BeTrue();
        Float4.IsAligned(new View<float>(data), 6).Should().BeFalse();
        Float4.IsAligned(new View<float>(data, 4, 12), 4).Should().BeTrue();
        Float4.IsAligned(new View<float>(data, 1, 12), 4).Should().BeFalse();
        Float4.IsAligned(new View<float>(0x1000UL, 4), 4).Should().BeTrue();
        Float4.IsAligned(new View<float>(0x1004UL, 4), 4).Should().BeFalse();
        var misaligned = () => Float4.LoadAligned(new View<float>(data, 1, 12), 4);
        misaligned.Should().Throw<InvalidOperationException>().WithMessage("*not 16-byte aligned*IsAligned*");
        var past = () => Float4.LoadAligned(new View<float>(data), 16);
        past.Should().Throw<IndexOutOfRangeException>();
    }
}

/// <summary>The products <c>ilgpuoct bench gemm</c> times are ResNet-18's im2col GEMMs.</summary>
public sealed class BenchGemmShapeTests
{
    [Fact]
    public void Resnet_shapes_are_the_im2col_products_of_batch_32()
    {
        var r64 = IlgpuOct.Cli.Commands.BenchGemmCommand.ResnetShapes(64);
        r64.Select(s => (s.M, s.N, s.K)).Should().Equal((64, 32 * 32 * 32, 147), (64, 32 * 16 * 16, 576), (128, 32 * 8 * 8, 1152), (256, 32 * 4 * 4, 2304), (512, 32 * 2 * 2, 4608));
        r64[1].Name.Should().Be("r64 layer1.conv 64x(32*16*16)x576");
        var r224 = IlgpuOct.Cli.Commands.BenchGemmCommand.ResnetShapes(224);
        r224.Select(s => (s.M, s.N, s.K)).Should().Equal((64, 32 * 112 * 112, 147), (64, 32 * 56 * 56, 576), (128, 32 * 28 * 28, 1152), (256, 32 * 14 * 14, 2304), (512, 32 * 7 * 7, 4608));
    }
}
