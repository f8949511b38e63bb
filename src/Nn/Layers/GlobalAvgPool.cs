using IlgpuOct.Kernels;

namespace IlgpuOct.Nn;

/// <summary>Global average pooling (N, C, H, W) to (N, C): adaptive average pooling to 1x1 plus flatten.</summary>
public sealed class GlobalAvgPool(Accelerator accelerator) : Layer(accelerator)
{
    private int[]? _inputShape; // (N, C, H, W) of the last forward
    private Tensor? _output; // (N, C)
    private Tensor? _inputGrad; // (N, C, H, W)

    public override Tensor Forward(Tensor x, bool training)
    {
        RequireRank(x, 4, nameof(GlobalAvgPool));
        var y = Tensor.Reuse(ref _output, Accelerator, x.Dim(0), x.Dim(1));
        Ops.GlobalAvgPool(Accelerator, x.View, y.View, x.Dim(0), x.Dim(1), x.Dim(2) * x.Dim(3));
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
        var dx = Tensor.Reuse(ref _inputGrad, Accelerator, shape);
        Ops.GlobalAvgPoolBackward(Accelerator, dy.View, dx.View, shape[0], shape[1], shape[2] * shape[3]);
        return dx;
    }

    protected override void Dispose(bool disposing)
    {
        _output?.Dispose();
        _inputGrad?.Dispose();
    }
}
