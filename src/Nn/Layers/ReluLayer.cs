using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Operators;

namespace IlgpuOct.Nn;

/// <summary>max(x, 0); backward masks by the cached output (y &gt; 0 exactly where x &gt; 0).</summary>
public sealed class ReluLayer(Accelerator accelerator) : Layer(accelerator)
{
    private Tensor? _output; // same shape as the input
    private Tensor? _inputGrad; // same shape as the input

    public override Tensor Forward(Tensor x, bool training)
    {
        var y = Tensor.ReuseLargest(ref _output, Accelerator, x.Shape);
        Elementwise.ReluForward(Accelerator, x.View, y.View);
        return y;
    }

    public override Tensor? Backward(Tensor dy, bool weightGradients, bool inputGradient = true)
    {
        var y = RequireForward(_output, nameof(ReluLayer));
        if (!inputGradient)
        {
            return null;
        }
        var dx = Tensor.ReuseLargest(ref _inputGrad, Accelerator, y.Shape);
        // The output gives the same mask as the input: y > 0 exactly where x > 0.
        Elementwise.ReluBackward(Accelerator, y.View, dy.View, dx.View);
        return dx;
    }

    protected override void Dispose(bool disposing)
    {
        _output?.Dispose();
        _inputGrad?.Dispose();
    }
}
