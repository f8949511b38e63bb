using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Operators;

namespace IlgpuOct.Nn;

/// <summary>2-d convolution without bias (as every ResNet-18 convolution), square kernel.</summary>
public sealed class Conv2dLayer : Layer
{
    private Tensor? _input; // (N, C, H, W), not owned: the previous stage's output
    private Tensor? _output; // (N, K, P, Q)
    private Tensor? _inputGrad; // (N, C, H, W)

    public Conv2dLayer(Accelerator accelerator, string name, int inChannels, int outChannels, int kernelSize, int stride, int padding)
        : base(accelerator)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(inChannels);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(outChannels);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(kernelSize);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(stride);
        ArgumentOutOfRangeException.ThrowIfNegative(padding);
        InChannels = inChannels;
        OutChannels = outChannels;
        KernelSize = kernelSize;
        Stride = stride;
        Padding = padding;
        Weight = new Parameter(name + ".weight", accelerator, outChannels, inChannels, kernelSize, kernelSize);
    }

    public int InChannels { get; }

    public int OutChannels { get; }

    public int KernelSize { get; }

    public int Stride { get; }

    public int Padding { get; }

    public Parameter Weight { get; } // (K, C, R, R)

    public override IEnumerable<Parameter> Parameters => [Weight];

    /// <summary>Kaiming normal, fan_out, gain sqrt(2): torchvision's ResNet initialisation.</summary>
    public void InitializeKaimingFanOut(Random random)
    {
        var w = new float[Weight.Value.Length];
        Init.Normal(w, Math.Sqrt(2.0 / (OutChannels * KernelSize * KernelSize)), random);
        Weight.Value.Upload(w);
    }

    /// <summary>The operator's shape for input <paramref name="x"/> (N, InChannels, H, W).</summary>
    public Conv2dShape Shape(Tensor x) => Shape(x.Dim(0), x.Dim(2), x.Dim(3));

    /// <summary>The operator's shape for a batch of <paramref name="n"/> inputs of <paramref name="h"/> x <paramref name="w"/> pixels.</summary>
    public Conv2dShape Shape(int n, int h, int w) => new(n, InChannels, h, w, OutChannels, KernelSize, Stride, Padding);

    /// <summary>The operator's shape for <paramref name="x"/>, after checking that this convolution can take it.</summary>
    public Conv2dShape CheckedShape(Tensor x)
    {
        RequireRank(x, 4, nameof(Conv2dLayer));
        if (x.Dim(1) != InChannels)
        {
            throw new ArgumentException($"{Weight.Name} expects {InChannels} input channels; got shape {Tensor.ShapeText(x.Shape)}.", nameof(x));
        }
        var s = Shape(x);
        if (s.OutH <= 0 || s.OutW <= 0)
        {
            throw new ArgumentException($"{Weight.Name}: input {Tensor.ShapeText(x.Shape)} is too small for a {KernelSize}x{KernelSize} kernel with padding {Padding}; use a larger resolution.", nameof(x));
        }
        return s;
    }

    public override Tensor Forward(Tensor x, bool training)
    {
        var s = CheckedShape(x);
        var y = Tensor.ReuseLargest(ref _output, Accelerator, s.N, s.OutC, s.OutH, s.OutW);
        Conv2d.Forward(Accelerator, s, x.View, Weight.Value.View, y.View);
        _input = x;
        return y;
    }

    public override Tensor? Backward(Tensor dy, bool weightGradients, bool inputGradient = true)
    {
        var x = RequireForward(_input, Weight.Name);
        var s = Shape(x);
        if (weightGradients)
        {
            Conv2d.BackwardWeight(Accelerator, s, x.View, dy.View, Weight.Grad.View);
        }
        if (!inputGradient)
        {
            return null;
        }
        var dx = Tensor.ReuseLargest(ref _inputGrad, Accelerator, x.Shape);
        Conv2d.BackwardData(Accelerator, s, Weight.Value.View, dy.View, dx.View);
        return dx;
    }

    protected override void Dispose(bool disposing)
    {
        Weight.Dispose();
        _output?.Dispose();
        _inputGrad?.Dispose();
    }
}
