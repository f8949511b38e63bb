using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Operators;

namespace IlgpuOct.Nn;

/// <summary>
/// torchvision's BasicBlock: conv3x3(stride)-bn-relu-conv3x3-bn, plus the identity or a
/// downsample (conv1x1(stride)-bn) when the shape changes, then add and relu. bn1 carries the first
/// relu (<see cref="BatchNorm2dLayer.FusedRelu"/>); the residual add and the last relu are one pass (Elementwise.AddRelu).
/// Evaluation mode runs each conv-bn pair as one convolution with BN folded in (<see cref="ConvBnFold"/>):
/// conv1+bn1+relu, downsample, then conv2+bn2 with the residual add and the relu in its epilogue.
/// </summary>
public sealed class BasicBlock : Layer
{
    private readonly ConvBnFold _fold1; // conv1 + bn1 (+ relu)
    private readonly ConvBnFold _fold2; // conv2 + bn2 (+ shortcut, relu)
    private readonly ConvBnFold? _foldDownsample; // downsample.0 + downsample.1
    private Tensor? _output; // (N, K, P, Q) max(residual sum, 0): > 0 exactly where the sum is; training forward
    private Tensor? _evalOutput; // (N, K, P, Q) the same after an evaluation forward, not owned (_fold2's, or _evalOutputNchw on the cpu engine)
    private Tensor? _evalHidden; // (N, K, P, Q) relu(bn1(conv1(x))) after an evaluation forward, not owned (_fold1's, or _evalHiddenNchw on the cpu engine)
    private Tensor? _sumGrad; // (N, K, P, Q) gradient of the residual sum
    private Tensor? _inputGrad; // (N, C, H, W) main path plus shortcut gradient
    private bool _lastForwardFolded;
    private Tensor? _nhwcHidden; // (N, P + 2, Q + 2, K) relu(bn1(conv1(x))) of ResNet18.Infer, bordered NHWC
    private Tensor? _nhwcShortcut; // (N, P + 2, Q + 2, K) downsample(x) of ResNet18.Infer, bordered NHWC
    private Tensor? _nhwcOutput; // (N, P + 2, Q + 2, K) the block's output of ResNet18.Infer, bordered NHWC
    private Tensor? _nhwcInput; // (N, H + 2, W + 2, C) x of an evaluation forward on the cpu engine, bordered NHWC
    private Tensor? _evalHiddenNchw; // (N, K, P, Q) _nhwcHidden in NCHW after an evaluation forward on the cpu engine
    private Tensor? _evalOutputNchw; // (N, K, P, Q) _nhwcOutput in NCHW after an evaluation forward on the cpu engine

    public BasicBlock(Accelerator accelerator, string name, int inChannels, int outChannels, int stride) : base(accelerator)
    {
        Name = name;
        Conv1 = new Conv2dLayer(accelerator, name + ".conv1", inChannels, outChannels, 3, stride, 1);
        Bn1 = new BatchNorm2dLayer(accelerator, name + ".bn1", outChannels, fusedRelu: true);
        Conv2 = new Conv2dLayer(accelerator, name + ".conv2", outChannels, outChannels, 3, 1, 1);
        Bn2 = new BatchNorm2dLayer(accelerator, name + ".bn2", outChannels);
        if (stride != 1 || inChannels != outChannels)
        {
            DownsampleConv = new Conv2dLayer(accelerator, name + ".downsample.0", inChannels, outChannels, 1, stride, 0);
            DownsampleBn = new BatchNorm2dLayer(accelerator, name + ".downsample.1", outChannels);
            _foldDownsample = new ConvBnFold(DownsampleConv, DownsampleBn);
        }
        _fold1 = new ConvBnFold(Conv1, Bn1);
        _fold2 = new ConvBnFold(Conv2, Bn2);
    }

    public string Name { get; }

    public Conv2dLayer Conv1 { get; }

    public BatchNorm2dLayer Bn1 { get; }

    public Conv2dLayer Conv2 { get; }

    public BatchNorm2dLayer Bn2 { get; }

    public Conv2dLayer? DownsampleConv { get; }

    public BatchNorm2dLayer? DownsampleBn { get; }

    /// <summary>Sub-layers in torchvision's registration order (conv1, bn1, conv2, bn2, downsample.0, downsample.1).</summary>
    public IEnumerable<Layer> Children
    {
        get
        {
            yield return Conv1;
            yield return Bn1;
            yield return Conv2;
            yield return Bn2;
            if (DownsampleConv is not null)
            {
                yield return DownsampleConv;
                yield return DownsampleBn!;
            }
        }
    }

    public override IEnumerable<Parameter> Parameters => Children.SelectMany(c => c.Parameters);

    public override IEnumerable<StateBuffer> Buffers => Children.SelectMany(c => c.Buffers);

    public override Tensor Forward(Tensor x, bool training)
    {
        _lastForwardFolded = !training;
        if (!training && OperatorDispatch.EngineFor(Accelerator) == OperatorEngine.Cpu)
        {
            // The cpu engine: the inference path's NHWC block, with its hidden and output activations (the ReLU
            // masks of a backward pass) converted to NCHW: three layout passes instead of one pair per convolution.
            var s1 = Conv1.CheckedShape(x);
            var input = NhwcActivation.Reuse(ref _nhwcInput, Accelerator, new NhwcShape(s1.N, s1.H, s1.W, s1.InC, Border: 1));
            NhwcLayout.FromNchw(Accelerator, input.Shape, x.View, input.Tensor.View);
            var result = InferNhwc(input);
            _evalHidden = Tensor.ReuseLargest(ref _evalHiddenNchw, Accelerator, s1.N, s1.OutC, s1.OutH, s1.OutW);
            NhwcLayout.ToNchw(Accelerator, result.Shape, _nhwcHidden!.View, _evalHidden.View);
            _evalOutput = Tensor.ReuseLargest(ref _evalOutputNchw, Accelerator, s1.N, s1.OutC, s1.OutH, s1.OutW);
            NhwcLayout.ToNchw(Accelerator, result.Shape, result.Tensor.View, _evalOutput.View);
            return _evalOutput;
        }
        if (!training)
        {
            var hidden = _fold1.Forward(x, null, relu: true);
            var residual = _foldDownsample is null ? x : _foldDownsample.Forward(x, null, relu: false);
            _evalHidden = hidden;
            _evalOutput = _fold2.Forward(hidden, residual, relu: true);
            return _evalOutput;
        }
        var h = Bn1.Forward(Conv1.Forward(x, training), training);
        var main = Bn2.Forward(Conv2.Forward(h, training), training);
        var shortcut = DownsampleConv is null ? x : DownsampleBn!.Forward(DownsampleConv.Forward(x, training), training);
        var output = Tensor.ReuseLargest(ref _output, Accelerator, main.Shape);
        Elementwise.AddRelu(Accelerator, main.View, shortcut.View, output.View);
        return output;
    }

    /// <summary>
    /// The evaluation-mode block on the cpu engine's inference path: x and the result in the bordered NHWC
    /// layout (border 1), the same folded convolutions as <see cref="Forward"/> in evaluation mode. Keeps
    /// nothing for a backward pass; the result is valid until the next call.
    /// </summary>
    public NhwcActivation InferNhwc(NhwcActivation x)
    {
        var s1 = Conv1.Shape(x.Shape.N, x.Shape.H, x.Shape.W);
        var outShape = new NhwcShape(s1.N, s1.OutH, s1.OutW, s1.OutC, Border: 1);
        var hidden = NhwcActivation.Reuse(ref _nhwcHidden, Accelerator, outShape);
        _fold1.ForwardNhwc(s1, x, null, relu: true, hidden);
        var shortcut = x;
        if (_foldDownsample is not null)
        {
            shortcut = NhwcActivation.Reuse(ref _nhwcShortcut, Accelerator, outShape);
            _foldDownsample.ForwardNhwc(DownsampleConv!.Shape(x.Shape.N, x.Shape.H, x.Shape.W), x, null, relu: false, shortcut);
        }
        var output = NhwcActivation.Reuse(ref _nhwcOutput, Accelerator, outShape);
        _fold2.ForwardNhwc(Conv2.Shape(s1.N, s1.OutH, s1.OutW), hidden, shortcut, relu: true, output);
        return output;
    }

    public override Tensor? Backward(Tensor dy, bool weightGradients, bool inputGradient = true)
    {
        if (_lastForwardFolded)
        {
            return BackwardFolded(dy, weightGradients, inputGradient);
        }
        var output = RequireForward(_output, Name);
        var dSum = Tensor.ReuseLargest(ref _sumGrad, Accelerator, output.Shape);
        Elementwise.ReluBackward(Accelerator, output.View, dy.View, dSum.View);
        var dMain = Conv2.Backward(Bn2.Backward(dSum, weightGradients)!, weightGradients)!;
        var dx = Conv1.Backward(Bn1.Backward(dMain, weightGradients)!, weightGradients)!;
        var dShortcut = DownsampleConv is null ? dSum : DownsampleConv.Backward(DownsampleBn!.Backward(dSum, weightGradients)!, weightGradients)!;
        return SumInputGradients(dx, dShortcut, inputGradient);
    }

    // After an evaluation forward: the input gradient through the folded convolutions (no BN passes).
    private Tensor? BackwardFolded(Tensor dy, bool weightGradients, bool inputGradient)
    {
        if (weightGradients)
        {
            throw new InvalidOperationException($"{Name}: parameter gradients after an evaluation-mode forward are not supported; train with a training-mode forward, or ask for the input gradient only.");
        }
        var output = RequireForward(_evalOutput, Name);
        var dSum = Tensor.ReuseLargest(ref _sumGrad, Accelerator, output.Shape);
        Elementwise.ReluBackward(Accelerator, output.View, dy.View, dSum.View);
        var dHidden = _fold2.BackwardData(dSum);
        // dHidden is _fold2's own input-gradient buffer: masking it in place is safe.
        Elementwise.ReluBackward(Accelerator, _evalHidden!.View, dHidden.View, dHidden.View);
        var dx = _fold1.BackwardData(dHidden);
        var dShortcut = _foldDownsample is null ? dSum : _foldDownsample.BackwardData(dSum);
        return SumInputGradients(dx, dShortcut, inputGradient);
    }

    private Tensor? SumInputGradients(Tensor dx, Tensor dShortcut, bool inputGradient)
    {
        var total = Tensor.ReuseLargest(ref _inputGrad, Accelerator, dx.Shape);
        Elementwise.Add(Accelerator, dx.View, dShortcut.View, total.View);
        return inputGradient ? total : null;
    }

    protected override void Dispose(bool disposing)
    {
        foreach (var child in Children)
        {
            child.Dispose();
        }
        _fold1.Dispose();
        _fold2.Dispose();
        _foldDownsample?.Dispose();
        _output?.Dispose();
        _sumGrad?.Dispose();
        _inputGrad?.Dispose();
        _nhwcHidden?.Dispose();
        _nhwcShortcut?.Dispose();
        _nhwcOutput?.Dispose();
        _nhwcInput?.Dispose();
        _evalHiddenNchw?.Dispose();
        _evalOutputNchw?.Dispose();
    }
}
