using FluentAssertions;
using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Operators;
using IlgpuOct.Tests.Support;
using Xunit;

namespace IlgpuOct.Tests.Operators;

/// <summary>
/// Conv2d.ConvWarpTiled (the three FP32 convolution products) and ConvSplitKReduce on cpu-kernels and
/// cuda-host against the CPU implementation, on shapes chosen to take and to miss each Float4 path and
/// the split weight gradient.
/// </summary>
public sealed class Conv2dWarpTiledTests
{
    public static TheoryData<AcceleratorKind, Conv2dShape, int> Cases()
    {
        var shapes = new (Conv2dShape Shape, int Offset)[]
        {
            (new Conv2dShape(2, 3, 17, 17, 5, 7, 2, 3), 0),    // 7x7 stride 2 pad 3, odd sizes: scalar everywhere
            (new Conv2dShape(2, 8, 8, 8, 16, 1, 1, 0), 0),     // pointwise, every Float4 path (w rows, y/dx planes, dy rows, dw rows)
            (new Conv2dShape(2, 8, 8, 8, 16, 1, 1, 0), 1),     // same, views one float into their buffers: scalar fallbacks
            (new Conv2dShape(3, 16, 6, 6, 24, 1, 2, 0), 0),    // 1x1 stride 2
            (new Conv2dShape(2, 20, 5, 5, 66, 3, 1, 1), 0),    // two row tiles, 23 k slices, Float4 w rows, odd planes
            (new Conv2dShape(1, 70, 9, 7, 130, 3, 2, 1), 0),   // N = 1, three row tiles forward, odd width, stride 2
            (new Conv2dShape(8, 4, 16, 16, 8, 3, 1, 1), 0),    // weight gradient in 4 splits, Float4 dy rows
            (new Conv2dShape(4, 3, 33, 33, 4, 3, 2, 1), 0),    // weight gradient in 2 splits, scalar
            (new Conv2dShape(2, 3, 9, 8, 5, 3, 2, 1), 0),      // (moved from Conv2dTests' cpu-kernels case list)
            (new Conv2dShape(2, 4, 6, 6, 6, 1, 1, 0), 0),
            (new Conv2dShape(1, 3, 11, 11, 4, 7, 2, 3), 0),
            (new Conv2dShape(2, 3, 7, 7, 4, 1, 2, 0), 0),
            (new Conv2dShape(4, 2, 16, 16, 3, 3, 1, 1), 0),    // weight gradient in 2 splits, Float4 dy rows, scalar dw rows
        };
        var data = new TheoryData<AcceleratorKind, Conv2dShape, int>();
        foreach (var kind in new[] { AcceleratorKind.CpuKernels, AcceleratorKind.CudaHost })
        {
            foreach (var (shape, offset) in shapes)
            {
                data.Add(kind, shape, offset);
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Kernels_match_the_cpu_implementation(AcceleratorKind kind, Conv2dShape s, int offset) => Check(kind, s, offset, default);

    /// <summary>Every kernel variant, unsplit and split (forward and backward data too), on shapes that cross its tile edges.</summary>
    public static TheoryData<AcceleratorKind, Conv2dShape, int, string> VariantCases()
    {
        var shapes = new (Conv2dShape Shape, int Offset)[]
        {
            (new Conv2dShape(1, 70, 9, 7, 130, 3, 2, 1), 0),   // two 128-row tiles, odd width, stride 2
            (new Conv2dShape(2, 8, 8, 8, 16, 1, 1, 0), 0),     // every Float4 path
            (new Conv2dShape(2, 8, 8, 8, 16, 1, 1, 0), 1),     // scalar fallbacks
            (new Conv2dShape(2, 3, 17, 17, 5, 7, 2, 3), 0),    // 7x7 stride 2, 147-deep forward reduction
            (new Conv2dShape(8, 4, 16, 16, 8, 3, 1, 1), 0),    // 512 columns of y: eight 64-column tiles
        };
        var variants = new[] { "ConvWarpTiled splits=3", "ConvWarpTiled128 splits=1", "ConvWarpTiled128 splits=3", "ConvWarpTiled64 splits=1", "ConvWarpTiled64 splits=3" };
        var data = new TheoryData<AcceleratorKind, Conv2dShape, int, string>();
        foreach (var kind in new[] { AcceleratorKind.CpuKernels, AcceleratorKind.CudaHost })
        {
            foreach (var (shape, offset) in shapes)
            {
                foreach (string variant in variants)
                {
                    data.Add(kind, shape, offset, variant);
                }
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(VariantCases))]
    public void Every_variant_matches_the_cpu_implementation(AcceleratorKind kind, Conv2dShape s, int offset, string variant) =>
        Check(kind, s, offset, ConvVariant.Parse(variant));

    private static void Check(AcceleratorKind kind, Conv2dShape s, int offset, ConvVariant variant)
    {
        var random = new Random(s.InC * 31 + s.OutC + offset);
        float[] x = GradientCheck.ToFloat(GradientCheck.Random(random, s.InputLength));
        float[] w = GradientCheck.ToFloat(GradientCheck.Random(random, s.WeightLength));
        float[] dy = GradientCheck.ToFloat(GradientCheck.Random(random, s.OutputLength));
        var y = new float[s.OutputLength];
        var dx = new float[s.InputLength];
        var dw = new float[s.WeightLength];
        Conv2d.ForwardCpu(s, x, w, y);
        Conv2d.BackwardDataCpu(s, w, dy, dx);
        Conv2d.BackwardWeightCpu(s, x, dy, dw);

        using var device = TestDevice.Open(kind);
        float[] Shifted(float[] data) => [.. Enumerable.Repeat(float.NaN, offset), .. data];
        View<float> At(float[] array)
        {
            var v = device.V(array);
            return v.Slice(offset, v.Length - offset);
        }
        float[] ky = Shifted(Poisoned(s.OutputLength)), kdx = Shifted(Poisoned(s.InputLength)), kdw = Shifted(Poisoned(s.WeightLength));
        float[] kdwAgain = Shifted(Poisoned(s.WeightLength));
        var vx = At(Shifted(x));
        var vw = At(Shifted(w));
        var vdy = At(Shifted(dy));
        if (offset != 0)
        {
            Float4.IsAligned(vw, 4).Should().BeFalse("the shifted views must exercise the scalar paths");
        }
        Conv2d.Forward(device.Accelerator, s, vx, vw, At(ky), variant);
        Conv2d.BackwardData(device.Accelerator, s, vw, vdy, At(kdx), variant);
        Conv2d.BackwardWeight(device.Accelerator, s, vx, vdy, At(kdw), variant);
        Conv2d.BackwardWeight(device.Accelerator, s, vx, vdy, At(kdwAgain), variant);
        device.Sync();

        // Sums of K products of values in [-1, 1) in another order than the CPU's: the bound grows with K.
        Tolerance.AssertClose(ky.AsSpan(offset), y, atol: 1e-6 * s.ColumnRows + 1e-5, rtol: 1e-5, $"{variant} forward");
        Tolerance.AssertClose(kdx.AsSpan(offset), dx, atol: 1e-6 * s.OutC * s.Kernel * s.Kernel + 1e-5, rtol: 1e-5, $"{variant} backward data");
        Tolerance.AssertClose(kdw.AsSpan(offset), dw, atol: 1e-6 * s.N * s.ColumnCols + 1e-5, rtol: 1e-5, $"{variant} backward weight");
        kdwAgain.AsSpan(offset).ToArray().Should().Equal(kdw.AsSpan(offset).ToArray(), "the split weight gradient sums its partial products in a fixed order");
    }

    [Fact]
    public void The_test_shapes_take_and_miss_the_split_weight_gradient()
    {
        int Splits(Conv2dShape s) => Conv2d.WeightGradientSplits(s.OutC, s.ColumnRows, s.N * s.ColumnCols);
        Splits(new Conv2dShape(8, 4, 16, 16, 8, 3, 1, 1)).Should().Be(4);
        Splits(new Conv2dShape(4, 3, 33, 33, 4, 3, 2, 1)).Should().Be(2);
        Splits(new Conv2dShape(2, 20, 5, 5, 66, 3, 1, 1)).Should().Be(1);
        // ResNet-18 layer1 at 224x224, batch 64: 5 tiles of dw, a reduction of 200704: split to fill the GPU.
        Splits(new Conv2dShape(64, 64, 56, 56, 64, 3, 1, 1)).Should().Be(102);
    }

    private static float[] Poisoned(int length)
    {
        var values = new float[length];
        Array.Fill(values, float.NaN);
        return values;
    }
}
