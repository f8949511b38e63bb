using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Operators;

namespace IlgpuOct.Nn;

/// <summary>Global average pooling (N, C, H, W) to (N, C): adaptive average pooling to 1x1 plus flatten.</summary>
public sealed class GlobalAvgPoolLayer(Accelerator accelerator) : Layer(accelerator)
{
    private int[]? _inputShape; // (N, C, H, W) of the last forward
    private Tensor? _output; // (N, C)
    private Tensor? _inputGrad; // (N, C, H, W)

    public override Tensor Forward(Tensor x, bool training)
    {
        RequireRank(x, 4, nameof(GlobalAvgPoolLayer));
        var y = Tensor.ReuseLargest(ref _output, Accelerator, x.Dim(0), x.Dim(1));
        GlobalAvgPool.Forward(Accelerator, new GlobalAvgPoolShape(x.Dim(0), x.Dim(1), x.Dim(2), x.Dim(3)), x.View, y.View);
        _inputShape = x.Shape;
        return y;
    }

    public override Tensor? Backward(Tensor dy, bool weightGradients, bool inputGradient = true)
    {
        var shape = _inputShape ?? throw new InvalidOperationException("GlobalAvgPool.Backward was called before Forward; run a forward pass on this batch first.");
        if (!inputGradient)
        {
            return null;
        }
        var dx = Tensor.ReuseLargest(ref _inputGrad, Accelerator, shape);
        GlobalAvgPool.Backward(Accelerator, new GlobalAvgPoolShape(shape[0], shape[1], shape[2], shape[3]), dy.View, dx.View);
        return dx;
    }

    /// <summary>
    /// Adds the input gradient for <paramref name="dy"/> (N, C) to <paramref name="dx"/> (N, C, H, W), a
    /// gradient already reaching this pool's input by another path (the pooled output is a tap).
    /// </summary>
    public void BackwardAccumulate(Tensor dy, Tensor dx)
    {
        ArgumentNullException.ThrowIfNull(dy);
        ArgumentNullException.ThrowIfNull(dx);
        var shape = _inputShape ?? throw new InvalidOperationException("GlobalAvgPool.BackwardAccumulate was called before Forward; run a forward pass on this batch first.");
        if (!dx.Shape.SequenceEqual(shape) || dy.Rank != 2 || dy.Dim(0) != shape[0] || dy.Dim(1) != shape[1])
        {
            throw new ArgumentException($"GlobalAvgPool.BackwardAccumulate: the pool's input is {Tensor.ShapeText(shape)}, so dy must be ({shape[0]}, {shape[1]}) and dx {Tensor.ShapeText(shape)}; got dy {Tensor.ShapeText(dy.Shape)}, dx {Tensor.ShapeText(dx.Shape)}.");
        }
        GlobalAvgPool.BackwardAccumulate(Accelerator, new GlobalAvgPoolShape(shape[0], shape[1], shape[2], shape[3]), dy.View, dx.View);
    }

    protected override void Dispose(bool disposing)
    {
        _output?.Dispose();
        _inputGrad?.Dispose();
    }
}
