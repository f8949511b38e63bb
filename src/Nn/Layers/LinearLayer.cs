using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Operators;

namespace IlgpuOct.Nn;

/// <summary>y = x W^T + b.</summary>
public sealed class LinearLayer : Layer
{
    private Tensor? _input; // (N, in), not owned
    private Tensor? _output; // (N, out)
    private Tensor? _inputGrad; // (N, in)

    public LinearLayer(Accelerator accelerator, string name, int inFeatures, int outFeatures) : base(accelerator)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(inFeatures);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(outFeatures);
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        Weight = new Parameter(name + ".weight", accelerator, outFeatures, inFeatures);
        Bias = new Parameter(name + ".bias", accelerator, outFeatures);
    }

    public int InFeatures { get; }

    public int OutFeatures { get; }

    public Parameter Weight { get; } // (out, in)

    public Parameter Bias { get; } // (out)

    public override IEnumerable<Parameter> Parameters => [Weight, Bias];

    /// <summary>PyTorch's default: weight and bias uniform in +-1/sqrt(in).</summary>
    public void InitializeDefault(Random random)
    {
        double bound = 1.0 / Math.Sqrt(InFeatures);
        var w = new float[Weight.Value.Length];
        Init.Uniform(w, bound, random);
        Weight.Value.Upload(w);
        var b = new float[OutFeatures];
        Init.Uniform(b, bound, random);
        Bias.Value.Upload(b);
    }

    public override Tensor Forward(Tensor x, bool training)
    {
        RequireRank(x, 2, nameof(LinearLayer));
        if (x.Dim(1) != InFeatures)
        {
            throw new ArgumentException($"{Weight.Name} expects {InFeatures} features; got shape {Tensor.ShapeText(x.Shape)}.", nameof(x));
        }
        var y = Tensor.ReuseLargest(ref _output, Accelerator, x.Dim(0), OutFeatures);
        Linear.Forward(Accelerator, new LinearShape(x.Dim(0), InFeatures, OutFeatures), x.View, Weight.Value.View, Bias.Value.View, y.View);
        _input = x;
        return y;
    }

    public override Tensor? Backward(Tensor dy, bool weightGradients, bool inputGradient = true)
    {
        var x = RequireForward(_input, Weight.Name);
        int n = x.Dim(0);
        if (!weightGradients && !inputGradient)
        {
            return null;
        }
        var dx = inputGradient ? Tensor.ReuseLargest(ref _inputGrad, Accelerator, x.Shape) : null;
        // Empty dW/db views skip the weight-gradient GEMM: input-only backward (attacks) pays for dx alone.
        Linear.Backward(Accelerator, new LinearShape(n, InFeatures, OutFeatures), x.View, Weight.Value.View, dy.View, dx is null ? default : dx.View,
            weightGradients ? Weight.Grad.View : default, weightGradients ? Bias.Grad.View : default);
        return dx;
    }

    protected override void Dispose(bool disposing)
    {
        Weight.Dispose();
        Bias.Dispose();
        _output?.Dispose();
        _inputGrad?.Dispose();
    }
}
