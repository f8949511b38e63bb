using IlgpuOct.Kernels;

namespace IlgpuOct.Nn;

/// <summary>max(x, 0); backward masks by the cached output (y &gt; 0 exactly where x &gt; 0).</summary>
public sealed class Relu(Accelerator accelerator) : Layer(accelerator)
{
    private Tensor? _output; // same shape as the input
    private Tensor? _inputGrad; // same shape as the input

    public override Tensor Forward(Tensor x, bool training)
    {
        var y = Tensor.Reuse(ref _output, Accelerator, x.Shape);
        Ops.Relu(Accelerator, x.View, y.View);
        return y;
    }

    public override Tensor? Backward(Tensor dy, bool weightGradients, bool inputGradient = true)
    {
        var y = RequireForward(_output, nameof(Relu));
        if (!inputGradient)
        {
            return null;
        }
        var dx = Tensor.Reuse(ref _inputGrad, Accelerator, y.Shape);
        Ops.ReluBackward(Accelerator, dy.View, y.View, dx.View);
        return dx;
    }

    protected override void Dispose(bool disposing)
    {
        _output?.Dispose();
        _inputGrad?.Dispose();
    }
}
