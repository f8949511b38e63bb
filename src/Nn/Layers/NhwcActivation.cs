using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Operators;

namespace IlgpuOct.Nn;

/// <summary>
/// A layer output of the cpu engine's inference path (<see cref="ResNet18.Infer"/>): a tensor
/// (N, H + 2 Border, W + 2 Border, C) in the bordered NHWC layout of <see cref="NhwcShape"/>, border zero.
/// </summary>
public readonly record struct NhwcActivation(Tensor Tensor, NhwcShape Shape)
{
    /// <summary>
    /// The buffer in <paramref name="slot"/> for <paramref name="shape"/>: reused while the per-image geometry
    /// (H, W, C, border) stays the same (a smaller batch is a view of the first images, whose borders are
    /// still zero), else reallocated zeroed. Only interiors are ever written, so borders stay zero.
    /// </summary>
    public static NhwcActivation Reuse(ref Tensor? slot, Accelerator accelerator, NhwcShape shape)
    {
        shape.Validate();
        if (slot is not null && (slot.Rank != 4 || slot.Dim(1) != shape.PaddedH || slot.Dim(2) != shape.PaddedW || slot.Dim(3) != shape.C))
        {
            slot.Dispose();
            slot = null;
        }
        return new NhwcActivation(Tensor.ReuseLargest(ref slot, accelerator, shape.N, shape.PaddedH, shape.PaddedW, shape.C), shape);
    }
}
