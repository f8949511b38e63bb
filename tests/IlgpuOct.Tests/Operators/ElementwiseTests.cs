using FluentAssertions;
using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Operators;
using IlgpuOct.Tests.Support;
using Xunit;

namespace IlgpuOct.Tests.Operators;

/// <summary>Element-wise kernels on cpu-kernels against the CPU implementations, and the cpu engine against scalar loops.</summary>
public sealed class ElementwiseTests
{
    // 1 element, a partial block, many blocks, and more than MaxBlocks*BlockSize so the grid-stride loop wraps.
    public static TheoryData<int> Sizes => new() { 1, 255, 1000, 300_001 };

    private static float[] Random(int n, int seed)
    {
        var r = new Random(seed);
        var a = new float[n];
        for (int i = 0; i < n; i++)
        {
            a[i] = (float)(r.NextDouble() * 4 - 2);
        }
        return a;
    }

    [Theory]
    [MemberData(nameof(Sizes))]
    public void Axpy_kernel_matches_cpu(int n)
    {
        using var acc = new HostAccelerator(AcceleratorKind.CpuKernels);
        var x = Random(n, 1);
        var y = Random(n, 2);
        var expected = (float[])y.Clone();
        Elementwise.AxpyCpu(0.5f, x, expected);
        using var dx = acc.Upload<float>(x);
        using var dy = acc.Upload<float>(y);
        Elementwise.Axpy(acc, 0.5f, dx, dy);
        Tolerance.AssertClose(acc.Download(dy.View), expected, 1e-6, 1e-6, "axpy");
    }

    [Theory]
    [MemberData(nameof(Sizes))]
    public void Relu_forward_and_backward_kernels_match_cpu(int n)
    {
        using var acc = new HostAccelerator(AcceleratorKind.CpuKernels);
        var x = Random(n, 3);
        x[0] = float.NaN; // MathF.Max and TensorPrimitives.Max both propagate NaN
        var dyHost = Random(n, 4);
        var expectedY = new float[n];
        var expectedDx = new float[n];
        Elementwise.ReluForwardCpu(x, expectedY);
        Elementwise.ReluBackwardCpu(x, dyHost, expectedDx);
        using var dx = acc.Upload<float>(x);
        using var y = acc.Allocate<float>(n);
        using var dy = acc.Upload<float>(dyHost);
        using var grad = acc.Allocate<float>(n);
        Elementwise.ReluForward(acc, dx, y);
        Elementwise.ReluBackward(acc, dx, dy, grad);
        var actualY = acc.Download(y.View);
        float.IsNaN(actualY[0]).Should().BeTrue("NaN propagates through ReLU as through MathF.Max");
        float.IsNaN(expectedY[0]).Should().BeTrue();
        Tolerance.AssertClose(actualY.AsSpan(1), expectedY.AsSpan(1), 0, 0, "relu forward");
        Tolerance.AssertClose(acc.Download(grad.View), expectedDx, 0, 0, "relu backward");
    }

    [Theory]
    [MemberData(nameof(Sizes))]
    public void Add_and_scale_kernels_match_cpu(int n)
    {
        using var acc = new HostAccelerator(AcceleratorKind.CpuKernels);
        var x = Random(n, 5);
        var y = Random(n, 6);
        var sum = new float[n];
        var scaled = new float[n];
        Elementwise.AddCpu(x, y, sum);
        Elementwise.ScaleCpu(-3f, x, scaled);
        using var dx = acc.Upload<float>(x);
        using var dy = acc.Upload<float>(y);
        using var z = acc.Allocate<float>(n);
        using var s = acc.Allocate<float>(n);
        Elementwise.Add(acc, dx, dy, z);
        Elementwise.Scale(acc, -3f, dx, s);
        Tolerance.AssertClose(acc.Download(z.View), sum, 0, 0, "add");
        Tolerance.AssertClose(acc.Download(s.View), scaled, 0, 0, "scale");
        Elementwise.AddInPlace(acc, dx, dy);
        Tolerance.AssertClose(acc.Download(dy.View), sum, 0, 0, "add in place");
    }

    [Fact]
    public void Cpu_engine_matches_scalar_loops_including_parallel_sizes()
    {
        using var acc = new HostAccelerator(AcceleratorKind.Cpu);
        int n = 300_001;
        var x = Random(n, 7);
        var y = Random(n, 8);
        var expectedAxpy = new float[n];
        var expectedRelu = new float[n];
        var expectedBack = new float[n];
        for (int i = 0; i < n; i++)
        {
            expectedAxpy[i] = y[i] + 2f * x[i];
            expectedRelu[i] = x[i] > 0 ? x[i] : 0f;
            expectedBack[i] = x[i] > 0 ? y[i] : 0f;
        }
        using var dx = acc.Upload<float>(x);
        using var dy = acc.Upload<float>(y);
        using var relu = acc.Allocate<float>(n);
        using var back = acc.Allocate<float>(n);
        Elementwise.ReluForward(acc, dx, relu);
        Elementwise.ReluBackward(acc, dx, dy, back);
        Elementwise.Axpy(acc, 2f, dx, dy);
        Tolerance.AssertClose(acc.Download(dy.View), expectedAxpy, 1e-6, 1e-6, "cpu axpy");
        Tolerance.AssertClose(acc.Download(relu.View), expectedRelu, 0, 0, "cpu relu");
        Tolerance.AssertClose(acc.Download(back.View), expectedBack, 0, 0, "cpu relu backward");
    }

    [Fact]
    public void Relu_and_add_relu_match_MathF_Max_bit_for_bit_including_nan_and_signed_zero()
    {
        // 37 values: the SIMD body and the scalar tail both see every special value.
        float[] special = [float.NaN, -0f, 0f, -1e-40f, 1e-40f, float.NegativeInfinity, float.PositiveInfinity, -2f, 3f];
        var x = Random(37, 9);
        var y = Random(37, 10);
        for (int i = 0; i < x.Length; i++)
        {
            if (i % 4 == 0)
            {
                x[i] = special[i / 4 % special.Length];
                y[i] = i % 8 == 0 ? -0f : 0f;
            }
        }
        var relu = new float[x.Length];
        var addRelu = new float[x.Length];
        var tensorPrimitives = new float[x.Length];
        Elementwise.ReluForwardCpu(x, relu);
        Elementwise.AddReluCpu(x, y, addRelu);
        System.Numerics.Tensors.TensorPrimitives.Max(x, 0f, tensorPrimitives);
        for (int i = 0; i < x.Length; i++)
        {
            BitConverter.SingleToInt32Bits(relu[i]).Should().Be(BitConverter.SingleToInt32Bits(MathF.Max(x[i], 0f)), $"relu of {x[i]} at {i}");
            BitConverter.SingleToInt32Bits(relu[i]).Should().Be(BitConverter.SingleToInt32Bits(tensorPrimitives[i]), $"relu of {x[i]} at {i} vs TensorPrimitives.Max");
            BitConverter.SingleToInt32Bits(addRelu[i]).Should().Be(BitConverter.SingleToInt32Bits(MathF.Max(x[i] + y[i], 0f)), $"add-relu of {x[i]} + {y[i]} at {i}");
        }
    }

    [Theory]
    [MemberData(nameof(Sizes))]
    public void Add_relu_is_add_then_relu_on_cpu_and_on_cpu_kernels(int n)
    {
        var x = Random(n, 11);
        var y = Random(n, 12);
        var pair = new float[n];
        Elementwise.AddCpu(x, y, pair);
        Elementwise.ReluForwardCpu(pair, pair);
        foreach (var kind in new[] { AcceleratorKind.Cpu, AcceleratorKind.CpuKernels })
        {
            using var acc = new HostAccelerator(kind);
            using var dx = acc.Upload<float>(x);
            using var dy = acc.Upload<float>(y);
            using var z = acc.Allocate<float>(n);
            Elementwise.AddRelu(acc, dx, dy, z);
            Tolerance.AssertClose(acc.Download(z.View), pair, 0, 0, $"{kind} add-relu");
        }
    }

    [Fact]
    public void Mismatched_lengths_are_rejected_with_both_lengths()
    {
        using var acc = new HostAccelerator(AcceleratorKind.CpuKernels);
        using var a = acc.Allocate<float>(3);
        using var b = acc.Allocate<float>(4);
        var act = () => Elementwise.Add(acc, a, b, b);
        act.Should().Throw<ArgumentException>().WithMessage("*3 and 4*equal length*");
    }

    [Fact]
    public void Self_tests_pass_on_cpu_kernels()
    {
        using var acc = new HostAccelerator(AcceleratorKind.CpuKernels);
        var cases = SelfTestCatalog.Discover(typeof(Elementwise).Assembly).Where(c => c.Kernel.StartsWith("Elementwise.", StringComparison.Ordinal)).ToList();
        cases.Should().HaveCount(14); // 7 operators x 2 sizes
        foreach (var c in cases)
        {
            var result = c.Run(acc, 11);
            result.Passed.Should().BeTrue($"{c.Kernel} {c.Shape}: max error {result.MaxAbsError}");
        }
    }
}
