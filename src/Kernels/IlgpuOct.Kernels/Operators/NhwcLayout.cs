using System.Runtime.CompilerServices;
using IlgpuOct.Kernels.Cpu;
using IlgpuOct.Kernels.Profiling;

namespace IlgpuOct.Kernels.Operators;

/// <summary>
/// A batch of activations in channels-last order with a zero border of <see cref="Border"/> pixels on
/// every side: (N, H + 2 Border, W + 2 Border, C). The layout of the cpu engine's inference path: a
/// direct convolution reads a pixel's taps at one offset for every pixel (no boundary code, no im2col)
/// because the border stands in for the padding. Only the interior is ever written; the border is
/// zeroed once, when the buffer is allocated.
/// </summary>
public readonly record struct NhwcShape(int N, int H, int W, int C, int Border)
{
    public int PaddedH => H + 2 * Border;

    public int PaddedW => W + 2 * Border;

    /// <summary>Elements of the bordered buffer: N * (H + 2 Border) * (W + 2 Border) * C.</summary>
    public int Length => N * PaddedH * PaddedW * C;

    /// <summary>Elements of one image's bordered plane: (H + 2 Border) * (W + 2 Border) * C.</summary>
    public int ImageLength => PaddedH * PaddedW * C;

    /// <summary>Index of channel 0 of interior pixel (n, h, w).</summary>
    public int Offset(int n, int h, int w) => ((n * PaddedH + h + Border) * PaddedW + w + Border) * C;

    public void Validate()
    {
        if (N < 1 || H < 1 || W < 1 || C < 1 || Border < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(NhwcShape), $"{this}: every extent must be >= 1 and the border >= 0.");
        }
        if ((long)N * PaddedH * PaddedW * C > int.MaxValue)
        {
            throw new ArgumentOutOfRangeException(nameof(NhwcShape), $"{this}: more than 2^31-1 elements; split the batch.");
        }
    }
}

/// <summary>
/// Conversions between PyTorch's NCHW layout and the bordered NHWC layout of <see cref="NhwcShape"/>
/// (exact copies: a value's bits never change). CPU engine only: the kernels run NCHW throughout.
/// </summary>
public static unsafe class NhwcLayout
{
    /// <summary>Cost model: no FLOPs; the NCHW and the NHWC interior once each.</summary>
    public static OperatorCost Cost(in NhwcShape s) => new(0, 8.0 * s.N * s.C * s.H * s.W);

    /// <summary>NCHW to bordered NHWC on the cpu engine. Shapes as <see cref="FromNchwCpu"/>.</summary>
    public static void FromNchw(Accelerator accelerator, NhwcShape s, View<float> x, View<float> y) =>
        OperatorDispatch.RunCpu(accelerator, "NhwcLayout.FromNchw", Cost(s), () => FromNchwCpu(s, x.AsSpan(), y.AsSpan()));

    /// <summary>Bordered NHWC to NCHW on the cpu engine. Shapes as <see cref="ToNchwCpu"/>.</summary>
    public static void ToNchw(Accelerator accelerator, NhwcShape s, View<float> x, View<float> y) =>
        OperatorDispatch.RunCpu(accelerator, "NhwcLayout.ToNchw", Cost(s), () => ToNchwCpu(s, x.AsSpan(), y.AsSpan()));

    /// <summary>x (N, C, H, W) into the interior of y (N, H + 2B, W + 2B, C); y's border is not touched.</summary>
    public static void FromNchwCpu(in NhwcShape s, ReadOnlySpan<float> x, Span<float> y)
    {
        s.Validate();
        RequireLength(x.Length, s.N * s.C * s.H * s.W, nameof(x), "(N, C, H, W)");
        RequireLength(y.Length, s.Length, nameof(y), "(N, H + 2 Border, W + 2 Border, C)");
        var shape = s;
        fixed (float* px = x, py = y)
        {
            nint ax = (nint)px, ay = (nint)py;
            CpuParallel.For(shape.N * shape.H, (long)shape.N * shape.C * shape.H * shape.W, row =>
            {
                int n = row / shape.H, h = row % shape.H, plane = shape.H * shape.W;
                float* src = (float*)ax + (long)n * shape.C * plane + h * shape.W;
                float* dst = (float*)ay + shape.Offset(n, h, 0);
                // The (C, W) block of this row, channels plane apart, to (W, C) rows C apart.
                SgemmPacking.Transpose(src, plane, shape.C, shape.W, dst, shape.C);
            });
        }
    }

    /// <summary>The interior of x (N, H + 2B, W + 2B, C) to y (N, C, H, W), overwritten.</summary>
    public static void ToNchwCpu(in NhwcShape s, ReadOnlySpan<float> x, Span<float> y)
    {
        s.Validate();
        RequireLength(x.Length, s.Length, nameof(x), "(N, H + 2 Border, W + 2 Border, C)");
        RequireLength(y.Length, s.N * s.C * s.H * s.W, nameof(y), "(N, C, H, W)");
        var shape = s;
        fixed (float* px = x, py = y)
        {
            nint ax = (nint)px, ay = (nint)py;
            CpuParallel.For(shape.N * shape.H, (long)shape.N * shape.C * shape.H * shape.W, row =>
            {
                int n = row / shape.H, h = row % shape.H, plane = shape.H * shape.W;
                float* src = (float*)ax + shape.Offset(n, h, 0);
                float* dst = (float*)ay + (long)n * shape.C * plane + h * shape.W;
                SgemmPacking.Transpose(src, shape.C, shape.W, shape.C, dst, plane);
            });
        }
    }

    private static void RequireLength(int actual, int expected, string name, string layout) =>
        ShapeCheck.RequireLength("NhwcLayout", nameof(NhwcShape), actual, expected, name, layout);
}
