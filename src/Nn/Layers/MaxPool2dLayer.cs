using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Operators;

namespace IlgpuOct.Nn;

/// <summary>3x3 max pooling, stride 2, padding 1 (ResNet's stem); padding never wins the max.</summary>
public sealed class MaxPool2dLayer(Accelerator accelerator) : Layer(accelerator)
{
    private Tensor? _input; // (N, C, H, W), not owned
    private Tensor? _output; // (N, C, P, Q), P = (H - 1) / 2 + 1
    private Tensor? _inputGrad; // (N, C, H, W)
    private DeviceBuffer<int>? _indices; // (at least N, C, P, Q) argmax of each window as h * W + w within its plane; kept for the largest batch

    public static int OutputSize(int size) => (size + 2 - 3) / 2 + 1;

    public override Tensor Forward(Tensor x, bool training)
    {
        RequireRank(x, 4, nameof(MaxPool2dLayer));
        var y = Tensor.ReuseLargest(ref _output, Accelerator, x.Dim(0), x.Dim(1), OutputSize(x.Dim(2)), OutputSize(x.Dim(3)));
        if (_indices is null || _indices.Length < y.Length)
        {
            _indices?.Dispose();
            _indices = Accelerator.Allocate<int>(y.Length);
        }
        MaxPool2d.Forward(Accelerator, new MaxPool2dShape(x.Dim(0), x.Dim(1), x.Dim(2), x.Dim(3)), x.View, y.View, _indices.View.Slice(0, y.Length));
        _input = x;
        return y;
    }

    public override Tensor? Backward(Tensor dy, bool weightGradients, bool inputGradient = true)
    {
        var x = RequireForward(_input, nameof(MaxPool2dLayer));
        if (!inputGradient)
        {
            return null;
        }
        var dx = Tensor.ReuseLargest(ref _inputGrad, Accelerator, x.Shape);
        MaxPool2d.Backward(Accelerator, new MaxPool2dShape(x.Dim(0), x.Dim(1), x.Dim(2), x.Dim(3)), dy.View, _indices!.View.Slice(0, dy.Length), dx.View);
        return dx;
    }

    protected override void Dispose(bool disposing)
    {
        _output?.Dispose();
        _inputGrad?.Dispose();
        _indices?.Dispose();
    }
}
