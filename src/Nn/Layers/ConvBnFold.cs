using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Operators;

namespace IlgpuOct.Nn;

/// <summary>
/// The evaluation-mode path of a convolution followed by batch norm (and optionally a residual add and
/// a ReLU) as ONE convolution with a bias, BN folded into it as ONNX Runtime does
/// (<see cref="BatchNorm2d.FoldIntoConvolution"/>: w' = w s, b' = beta - mean s, s = gamma / sqrt(var + eps)).
/// Not a second copy of the model: w' and b' are derived from the two layers' parameters and running
/// statistics and recomputed before a forward whenever any of them changed (their
/// <see cref="Tensor.Version"/>: optimizer steps, training-mode forwards, checkpoint loads, uploads).
/// Training-mode passes keep using the layers themselves. On the cpu engine the folded convolution runs on
/// bordered NHWC activations with w' packed once per fold (ForwardNhwc; Forward and BackwardData convert NCHW
/// around it); the kernels run the NCHW operators.
/// </summary>
public sealed class ConvBnFold : IDisposable
{
    private readonly long[] _foldedVersions = [-1, -1, -1, -1, -1]; // conv weight, gamma, beta, running mean, running var
    private Tensor? _weight; // (K, C, R, R) w * s
    private Tensor? _bias; // (K) beta - mean * s
    private Tensor? _output; // (N, K, P, Q) act(conv(x, w') + b' (+ residual))
    private Tensor? _inputGrad; // (N, C, H, W)
    private Conv2dShape? _shape; // of the last forward
    private long _foldCount; // folds so far: the NHWC packing below is stale when it was made from an older fold
    private Tensor? _packedNhwc; // (Conv2d.NhwcWeightsLength) w' packed for Conv2d.ForwardNhwc (Winograd's or the direct convolution's)
    private long _packedFold = -1; // _foldCount when _packedNhwc was packed
    private Tensor? _packedNhwcBackward; // flipped, transposed w' packed for the NHWC convolution that is backward data (stride 1)
    private Tensor? _zeroBias; // (C) the bias of that backward convolution
    private long _packedBackwardFold = -1; // _foldCount when _packedNhwcBackward was packed
    private Tensor? _nhwcInput; // (N, H + 2P, W + 2P, C) x in bordered NHWC, cpu engine
    private Tensor? _nhwcResidual; // (N, P, Q, K) the residual in NHWC, cpu engine
    private Tensor? _nhwcOutput; // (N, P, Q, K) the output in NHWC, cpu engine
    private Tensor? _nhwcOutputGrad; // (N, P + 2(R-1-pad), Q + 2(R-1-pad), K) dy in bordered NHWC, cpu engine
    private Tensor? _nhwcInputGrad; // (N, H, W, C) dx in NHWC, cpu engine

    public ConvBnFold(Conv2dLayer conv, BatchNorm2dLayer bn)
    {
        ArgumentNullException.ThrowIfNull(conv);
        ArgumentNullException.ThrowIfNull(bn);
        if (bn.Channels != conv.OutChannels || bn.Accelerator != conv.Accelerator)
        {
            throw new ArgumentException($"{bn.Name} ({bn.Channels} channels) cannot be folded into {conv.Weight.Name} ({conv.OutChannels} output channels); pair each convolution with the batch norm that follows it.");
        }
        Conv = conv;
        Bn = bn;
    }

    public Conv2dLayer Conv { get; }

    public BatchNorm2dLayer Bn { get; }

    /// <summary>Folded weight (K, C, R, R) and bias (K), refreshed first if a parameter or statistic changed since the last fold.</summary>
    public (Tensor Weight, Tensor Bias) Folded()
    {
        var sources = Sources();
        bool stale = _weight is null;
        for (int i = 0; i < sources.Length; i++)
        {
            stale |= sources[i].Version != _foldedVersions[i];
        }
        if (stale)
        {
            _weight ??= Tensor.Zeros(Conv.Accelerator, Conv.Weight.Shape);
            _bias ??= Tensor.Zeros(Conv.Accelerator, Bn.Channels);
            BatchNorm2d.FoldIntoConvolution(Conv.Accelerator, Bn.Channels, sources[0].View, sources[1].View, sources[2].View, sources[3].View, sources[4].View,
                _weight.View, _bias.View, Bn.Eps);
            for (int i = 0; i < sources.Length; i++)
            {
                _foldedVersions[i] = sources[i].Version;
            }
            _foldCount++;
        }
        return (_weight!, _bias!);
    }

    /// <summary>
    /// act(BN_eval(conv(x)) (+ residual)) in one operator: x (N, C, H, W), residual null or (N, K, P, Q),
    /// returns (N, K, P, Q) owned by this object (valid until its next forward).
    /// </summary>
    public Tensor Forward(Tensor x, Tensor? residual, bool relu)
    {
        var s = Conv.CheckedShape(x);
        if (residual is not null && !residual.HasShape([s.N, s.OutC, s.OutH, s.OutW]))
        {
            throw new ArgumentException($"{Conv.Weight.Name}: the residual must be ({s.N}, {s.OutC}, {s.OutH}, {s.OutW}) like the output; got {Tensor.ShapeText(residual.Shape)}.", nameof(residual));
        }
        var (weight, bias) = Folded();
        var y = Tensor.ReuseLargest(ref _output, Conv.Accelerator, s.N, s.OutC, s.OutH, s.OutW);
        _shape = s;
        if (OperatorDispatch.EngineFor(Conv.Accelerator) != OperatorEngine.Cpu)
        {
            Conv2d.ForwardBiasActivation(Conv.Accelerator, s, x.View, weight.View, bias.View, residual?.View, relu, y.View);
            return y;
        }
        // The cpu engine: the direct convolution with the packed weights of the inference path, in NHWC and back
        // (the conversions cost less than the implicit GEMM's im2col packing and weight packing on every call).
        var acc = Conv.Accelerator;
        var input = NhwcActivation.Reuse(ref _nhwcInput, acc, new NhwcShape(s.N, s.H, s.W, s.InC, s.Padding));
        NhwcLayout.FromNchw(acc, input.Shape, x.View, input.Tensor.View);
        var outShape = new NhwcShape(s.N, s.OutH, s.OutW, s.OutC, Border: 0);
        NhwcActivation? shortcut = null;
        if (residual is not null)
        {
            shortcut = NhwcActivation.Reuse(ref _nhwcResidual, acc, outShape);
            NhwcLayout.FromNchw(acc, outShape, residual.View, shortcut.Value.Tensor.View);
        }
        var output = NhwcActivation.Reuse(ref _nhwcOutput, acc, outShape);
        ForwardNhwc(s, input, shortcut, relu, output);
        NhwcLayout.ToNchw(acc, outShape, output.Tensor.View, y.View);
        return y;
    }

    /// <summary>
    /// The cpu engine's inference path: act(BN_eval(conv(x)) (+ residual)) with x, residual and y in the
    /// bordered NHWC layout (<see cref="NhwcActivation"/>; x's border at least the padding), y's interior
    /// overwritten. w' is packed once per fold (once per weights version) for the convolution Conv2d.ForwardNhwc
    /// runs for this shape: Winograd for 3x3 stride-1 shapes from 256 channels, else the direct one.
    /// Keeps only the shape for <see cref="BackwardData"/>.
    /// </summary>
    public void ForwardNhwc(in Conv2dShape s, NhwcActivation x, NhwcActivation? residual, bool relu, NhwcActivation y)
    {
        var (weight, bias) = Folded();
        if (x.Shape != new NhwcShape(s.N, s.H, s.W, s.InC, x.Shape.Border) || x.Shape.Border < s.Padding
            || y.Shape != new NhwcShape(s.N, s.OutH, s.OutW, s.OutC, y.Shape.Border) || (residual is { } r && r.Shape != y.Shape))
        {
            throw new ArgumentException($"{Conv.Weight.Name} (NHWC): {s} needs x {new NhwcShape(s.N, s.H, s.W, s.InC, s.Padding)} (border >= {s.Padding}) and y (residual) {new NhwcShape(s.N, s.OutH, s.OutW, s.OutC, y.Shape.Border)}; got x {x.Shape}, y {y.Shape}, residual {residual?.Shape.ToString() ?? "none"}.");
        }
        if (_packedFold != _foldCount)
        {
            _packedNhwc ??= Tensor.Zeros(Conv.Accelerator, Conv2d.NhwcWeightsLength(s));
            Conv2d.PackWeightsNhwc(Conv.Accelerator, s, weight.View, _packedNhwc.View);
            _packedFold = _foldCount;
        }
        Conv2d.ForwardNhwc(Conv.Accelerator, s, x.Tensor.View, x.Shape.Border, _packedNhwc!.View, bias.View, residual?.Tensor.View, relu,
            y.Tensor.View, y.Shape.Border);
        _shape = s; // BackwardData may follow (BasicBlock's evaluation forward on the cpu engine)
    }

    /// <summary>
    /// d loss / d x of the folded convolution given dy (N, K, P, Q), the gradient at its pre-activation
    /// output (the caller applies the ReLU mask and splits off the residual's share): one backward-data
    /// convolution with w', no batch-norm pass. Parameter gradients are not available on this path.
    /// </summary>
    public Tensor BackwardData(Tensor dy)
    {
        var s = _shape ?? throw new InvalidOperationException($"{Conv.Weight.Name} (folded).BackwardData was called before Forward; run an evaluation-mode forward on this batch first.");
        var dx = Tensor.ReuseLargest(ref _inputGrad, Conv.Accelerator, s.N, s.InC, s.H, s.W);
        if (OperatorDispatch.EngineFor(Conv.Accelerator) != OperatorEngine.Cpu || !Conv2d.BackwardDataIsConvolution(s))
        {
            Conv2d.BackwardData(Conv.Accelerator, s, _weight!.View, dy.View, dx.View);
            return dx;
        }
        // Stride 1 on the cpu engine: the NHWC convolution of dy with the flipped weights, packed once per fold.
        var acc = Conv.Accelerator;
        var ts = Conv2d.BackwardDataShape(s);
        if (_packedBackwardFold != _foldCount)
        {
            using var flipped = Tensor.Zeros(acc, s.WeightLength);
            Conv2d.FlipTransposedWeights(s, _weight!.View.AsSpan(), flipped.View.AsSpan());
            _packedNhwcBackward ??= Tensor.Zeros(acc, Conv2d.NhwcWeightsLength(ts));
            _zeroBias ??= Tensor.Zeros(acc, s.InC);
            Conv2d.PackWeightsNhwc(acc, ts, flipped.View, _packedNhwcBackward.View);
            _packedBackwardFold = _foldCount;
        }
        var gradient = NhwcActivation.Reuse(ref _nhwcOutputGrad, acc, new NhwcShape(ts.N, ts.H, ts.W, ts.InC, ts.Padding));
        NhwcLayout.FromNchw(acc, gradient.Shape, dy.View, gradient.Tensor.View);
        var inputShape = new NhwcShape(s.N, s.H, s.W, s.InC, Border: 0);
        var result = NhwcActivation.Reuse(ref _nhwcInputGrad, acc, inputShape);
        Conv2d.ForwardNhwc(acc, ts, gradient.Tensor.View, ts.Padding, _packedNhwcBackward!.View, _zeroBias!.View, null, relu: false,
            result.Tensor.View, 0);
        NhwcLayout.ToNchw(acc, inputShape, result.Tensor.View, dx.View);
        return dx;
    }

    private Tensor[] Sources() => [Conv.Weight.Value, Bn.Weight.Value, Bn.Bias.Value, Bn.RunningMean.Value, Bn.RunningVar.Value];

    public void Dispose()
    {
        _weight?.Dispose();
        _bias?.Dispose();
        _output?.Dispose();
        _inputGrad?.Dispose();
        _packedNhwc?.Dispose();
        _packedNhwcBackward?.Dispose();
        _zeroBias?.Dispose();
        foreach (var buffer in new[] { _nhwcInput, _nhwcResidual, _nhwcOutput, _nhwcOutputGrad, _nhwcInputGrad })
        {
            buffer?.Dispose();
        }
    }
}
