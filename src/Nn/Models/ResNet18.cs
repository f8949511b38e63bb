using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Operators;

namespace IlgpuOct.Nn;

/// <summary>Size of a ResNet-18: base width w (channels w, 2w, 4w, 8w; torchvision: 64), input channels, classes.</summary>
public readonly record struct ResNetConfig(int Width = 64, int InChannels = 1, int NumClasses = 4)
{
    public int FeatureCount => 8 * Width;

    public void Validate()
    {
        if (Width <= 0)
        {
            throw new ArgumentException($"Width must be positive (torchvision's ResNet-18 is 64); got {Width}.");
        }
        if (InChannels is not (1 or 3))
        {
            throw new ArgumentException($"Input channels must be 1 (grayscale) or 3 (RGB); got {InChannels}.");
        }
        if (NumClasses < 2)
        {
            throw new ArgumentException($"A classifier needs at least 2 classes; got {NumClasses}.");
        }
    }
}

/// <summary>What a backward pass computes.</summary>
public enum BackwardMode
{
    /// <summary>Parameter gradients only (training): the stem convolution skips its data gradient.</summary>
    Parameters,

    /// <summary>Parameter gradients and d loss / d input.</summary>
    ParametersAndInput,

    /// <summary>d loss / d input only (attacks on a frozen model): no weight-gradient work at all.</summary>
    InputOnly,
}

/// <summary>Evaluation-mode outputs: logits, penultimate features, optionally each stage's pooled output.</summary>
public sealed class EvalOutputs(Tensor logits, Tensor features, IReadOnlyList<Tensor>? stagePools)
{
    public Tensor Logits { get; } = logits; // (N, classes)

    public Tensor Features { get; } = features; // (N, 8w): global-average-pooled layer4 output

    /// <summary>layer1..layer4 outputs globally average-pooled: (N, w), (N, 2w), (N, 4w), (N, 8w); null unless asked for.</summary>
    public IReadOnlyList<Tensor>? StagePools { get; } = stagePools;
}

/// <summary>
/// ResNet-18 with torchvision's exact topology and parameter names (conv1, bn1, relu, maxpool,
/// layer1..layer4 of two BasicBlocks each, avgpool, fc) and a configurable base width. Output
/// tensors belong to the model and are valid until the next forward pass.
/// </summary>
public sealed class ResNet18 : IDisposable
{
    private readonly Conv2dLayer _conv1;
    private readonly BatchNorm2dLayer _bn1; // bn1 followed by torchvision's relu (fused)
    private readonly ConvBnFold _stemFold; // conv1 + bn1 + relu as one convolution in evaluation mode
    private Tensor? _evalStem; // (N, w, H/2, W/2) relu(bn1(conv1(x))) after an evaluation forward, not owned (_stemFold's)
    private bool _lastForwardFolded;
    private bool _lastForwardInference; // the last forward was Infer on the cpu engine: nothing is cached for Backward
    // Bytes of stem output pooled per pass in Infer: a few images, well inside the L3 cache (32 MB on the EPYC
    // this was measured on, shared by both cores), so the stem's stores are still cached when the pool reads them.
    private const long StemChunkBytes = 4L << 20;

    private Tensor? _nhwcInput; // (N, H + 2P, W + 2P, InChannels) the images in bordered NHWC (P = conv1's padding)
    private Tensor? _nhwcStem; // (chunk, H/2 + 2, W/2 + 2, w) relu(bn1(conv1(x))) of a few images at a time, bordered NHWC
    private Tensor? _nhwcPooled; // (N, H/4 + 2, W/4 + 2, w) the max pool's output, bordered NHWC
    private readonly Tensor?[] _nhwcStagePools = new Tensor?[4]; // (N, w), (N, 2w), (N, 4w), (N, 8w): layer1..layer4 pooled
    private readonly MaxPool2dLayer _maxpool;
    private readonly BasicBlock[] _blocks; // layer1.0, layer1.1, ..., layer4.1
    private readonly GlobalAvgPoolLayer _avgpool;
    private readonly GlobalAvgPoolLayer[] _stagePools; // layer1..layer3 pooled on request; layer4's is _avgpool
    private readonly LinearLayer _fc;
    private readonly Parameter[] _parameters;

    public ResNet18(Accelerator accelerator, ResNetConfig config, int seed)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        config.Validate();
        Accelerator = accelerator;
        Config = config;
        int w = config.Width;
        _conv1 = new Conv2dLayer(accelerator, "conv1", config.InChannels, w, 7, 2, 3);
        _bn1 = new BatchNorm2dLayer(accelerator, "bn1", w, fusedRelu: true);
        _stemFold = new ConvBnFold(_conv1, _bn1);
        _maxpool = new MaxPool2dLayer(accelerator);
        var blocks = new List<BasicBlock>();
        int inChannels = w;
        for (int stage = 0; stage < 4; stage++)
        {
            int channels = w << stage;
            int stride = stage == 0 ? 1 : 2;
            blocks.Add(new BasicBlock(accelerator, $"layer{stage + 1}.0", inChannels, channels, stride));
            blocks.Add(new BasicBlock(accelerator, $"layer{stage + 1}.1", channels, channels, 1));
            inChannels = channels;
        }
        _blocks = [.. blocks];
        _avgpool = new GlobalAvgPoolLayer(accelerator);
        _stagePools = [new GlobalAvgPoolLayer(accelerator), new GlobalAvgPoolLayer(accelerator), new GlobalAvgPoolLayer(accelerator)];
        _fc = new LinearLayer(accelerator, "fc", config.FeatureCount, config.NumClasses);
        _parameters = [.. _conv1.Parameters, .. _bn1.Parameters, .. _blocks.SelectMany(b => b.Parameters), .. _fc.Parameters];
        StageWidths = [w, 2 * w, 4 * w, 8 * w];
        Seed = seed;
        Initialize(seed);
    }

    public Accelerator Accelerator { get; }

    public ResNetConfig Config { get; }

    /// <summary>The seed the parameters were initialised from.</summary>
    public int Seed { get; }

    /// <summary>Every trainable parameter in torchvision's state_dict order.</summary>
    public IReadOnlyList<Parameter> Parameters => _parameters;

    /// <summary>Every batch-norm layer (their running statistics are the model's buffers).</summary>
    public IEnumerable<BatchNorm2dLayer> BatchNorms =>
        new[] { _bn1 }.Concat(_blocks.SelectMany(b => b.Children.OfType<BatchNorm2dLayer>()));

    public IEnumerable<StateBuffer> Buffers => BatchNorms.SelectMany(b => b.Buffers);

    public LinearLayer Classifier => _fc;

    /// <summary>Channels of the pooled stage outputs layer1..layer4: (w, 2w, 4w, 8w).</summary>
    public IReadOnlyList<int> StageWidths { get; }

    public Conv2dLayer Stem => _conv1;

    /// <summary>layer1.0, layer1.1, ..., layer4.1.</summary>
    public IReadOnlyList<BasicBlock> Blocks => _blocks;

    /// <summary>Kaiming-normal (fan_out) convolutions, BN weight 1 bias 0, PyTorch-default Linear; all from one seed.</summary>
    public void Initialize(int seed)
    {
        var random = new Random(seed);
        _conv1.InitializeKaimingFanOut(random);
        foreach (var block in _blocks)
        {
            foreach (var conv in block.Children.OfType<Conv2dLayer>())
            {
                conv.InitializeKaimingFanOut(random);
            }
        }
        foreach (var bn in BatchNorms)
        {
            bn.ResetParameters();
        }
        _fc.InitializeDefault(random);
        foreach (var p in _parameters)
        {
            p.Momentum.Zero();
        }
    }

    /// <summary>Logits (N, classes) of images (N, InChannels, H, W); training mode uses and updates batch statistics.</summary>
    public Tensor Forward(Tensor input, bool training)
    {
        var features = ForwardFeatures(input, training, null);
        return _fc.Forward(features, training);
    }

    /// <summary>Evaluation-mode forward that also returns the penultimate features and, on request, each stage's pooled output.</summary>
    public EvalOutputs ForwardEval(Tensor input, bool stagePools = false)
    {
        var pools = stagePools ? new List<Tensor>(4) : null;
        var features = ForwardFeatures(input, false, pools);
        var logits = _fc.Forward(features, false);
        pools?.Add(features);
        return new EvalOutputs(logits, features, pools);
    }

    /// <summary>
    /// <see cref="ForwardEval"/>'s outputs for inference only: no <see cref="Backward"/> may follow. On the cpu
    /// engine this is the NHWC inference path: activations stay channels-last with a zero border from layer
    /// to layer and every convolution is a direct one with its BN-folded weights packed once per weights
    /// version (<see cref="ConvBnFold.ForwardNhwc"/>); elsewhere it is <see cref="ForwardEval"/>.
    /// </summary>
    public EvalOutputs Infer(Tensor input, bool stagePools = false)
    {
        if (OperatorDispatch.EngineFor(Accelerator) != OperatorEngine.Cpu)
        {
            return ForwardEval(input, stagePools);
        }
        var stem = _conv1.CheckedShape(RequireImages(input));
        _lastForwardInference = true;
        var images = NhwcActivation.Reuse(ref _nhwcInput, Accelerator, new NhwcShape(stem.N, stem.H, stem.W, stem.InC, stem.Padding));
        NhwcLayout.FromNchw(Accelerator, images.Shape, input.View, images.Tensor.View);
        var pool = new MaxPool2dShape(stem.N, stem.OutC, stem.OutH, stem.OutW);
        var x = NhwcActivation.Reuse(ref _nhwcPooled, Accelerator, new NhwcShape(pool.N, pool.OutH, pool.OutW, pool.C, Border: 1));
        // The stem's output (the network's largest activation: 103 MB at 224x224, batch 32) is pooled a few images
        // at a time from one buffer that stays in cache, instead of going to memory and back.
        var stemShape = new NhwcShape(stem.N, stem.OutH, stem.OutW, stem.OutC, Border: 1);
        int chunk = (int)Math.Clamp(StemChunkBytes / (4L * stemShape.ImageLength), 1, stem.N);
        var stemOut = NhwcActivation.Reuse(ref _nhwcStem, Accelerator, stemShape with { N = chunk });
        for (int first = 0; first < stem.N; first += chunk)
        {
            int count = Math.Min(chunk, stem.N - first);
            using var imagesChunk = images.Tensor.Rows(first, count);
            using var stemChunk = stemOut.Tensor.Rows(0, count);
            using var pooledChunk = x.Tensor.Rows(first, count);
            var stemOutChunk = new NhwcActivation(stemChunk, stemShape with { N = count });
            _stemFold.ForwardNhwc(stem with { N = count }, new NhwcActivation(imagesChunk, images.Shape with { N = count }), null, relu: true, stemOutChunk);
            MaxPool2d.ForwardNhwc(Accelerator, pool with { N = count }, stemChunk.View, stemShape.Border, pooledChunk.View, x.Shape.Border);
        }
        var pools = stagePools ? new List<Tensor>(4) : null;
        Tensor? features = null;
        for (int i = 0; i < _blocks.Length; i++)
        {
            x = _blocks[i].InferNhwc(x);
            int stage = i / 2;
            if (i % 2 == 1 && (i == _blocks.Length - 1 || pools is not null))
            {
                var s = x.Shape;
                var pooled = Tensor.ReuseLargest(ref _nhwcStagePools[stage], Accelerator, s.N, s.C);
                GlobalAvgPool.ForwardNhwc(Accelerator, new GlobalAvgPoolShape(s.N, s.C, s.H, s.W), x.Tensor.View, s.Border, pooled.View);
                pools?.Add(pooled);
                features = pooled;
            }
        }
        var logits = _fc.Forward(features!, false);
        return new EvalOutputs(logits, features!, pools);
    }

    private Tensor RequireImages(Tensor input)
    {
        if (input.Rank != 4 || input.Dim(1) != Config.InChannels)
        {
            throw new ArgumentException($"The model expects images (N, {Config.InChannels}, H, W); got {Tensor.ShapeText(input.Shape)}.", nameof(input));
        }
        return input;
    }

    private Tensor ForwardFeatures(Tensor input, bool training, List<Tensor>? stagePools)
    {
        RequireImages(input);
        _lastForwardInference = false;
        // Evaluation mode: every conv-bn pair runs as one convolution with BN folded in (same parameters).
        _lastForwardFolded = !training;
        _evalStem = training ? null : _stemFold.Forward(input, null, relu: true);
        var x = _maxpool.Forward(_evalStem ?? _bn1.Forward(_conv1.Forward(input, training), training), training);
        for (int i = 0; i < _blocks.Length; i++)
        {
            x = _blocks[i].Forward(x, training);
            if (stagePools is not null && i % 2 == 1 && i < _blocks.Length - 1)
            {
                stagePools.Add(_stagePools[i / 2].Forward(x, false));
            }
        }
        return _avgpool.Forward(x, training);
    }

    /// <summary>
    /// Back-propagates d loss / d logits (N, classes) through the last forward pass. Parameter
    /// gradients are overwritten (not accumulated). Returns d loss / d input (N, C, H, W) unless
    /// <paramref name="mode"/> is <see cref="BackwardMode.Parameters"/>.
    /// <paramref name="dStagePools"/>, when given, holds one optional gradient per pooled stage output
    /// of <see cref="ForwardEval"/> (layer1..layer4: (N, w), (N, 2w), (N, 4w), (N, 8w); null = zero),
    /// added where that stage's output feeds the rest of the network (what feature-space attacks need).
    /// </summary>
    public Tensor? Backward(Tensor dLogits, BackwardMode mode, IReadOnlyList<Tensor?>? dStagePools = null)
    {
        ArgumentNullException.ThrowIfNull(dLogits);
        if (_lastForwardInference)
        {
            throw new InvalidOperationException("Backward after Infer: Infer keeps nothing for a backward pass; run ForwardEval (evaluation mode) or Forward (training) on the batch first.");
        }
        if (dStagePools is not null && dStagePools.Count != StageWidths.Count)
        {
            throw new ArgumentException($"Give one (possibly null) gradient per stage ({StageWidths.Count}); got {dStagePools.Count}.", nameof(dStagePools));
        }
        bool weights = mode != BackwardMode.InputOnly;
        bool input = mode != BackwardMode.Parameters;
        var d = _fc.Backward(dLogits, weights)!;
        if (dStagePools?[^1] is { } dFeatures)
        {
            RequireStageGradient(dFeatures, d.Dim(0), StageWidths.Count - 1);
            // d is the classifier's input-gradient buffer, read only by the pool's backward below.
            Kernels.Operators.Elementwise.AddInPlace(Accelerator, dFeatures.View, d.View);
        }
        d = _avgpool.Backward(d, weights)!;
        for (int i = _blocks.Length - 1; i >= 0; i--)
        {
            int stage = i / 2;
            if (i % 2 == 1 && stage < _stagePools.Length && dStagePools?[stage] is { } dPool)
            {
                RequireStageGradient(dPool, d.Dim(0), stage);
                // d is the next block's input-gradient buffer, read only by this block's backward.
                _stagePools[stage].BackwardAccumulate(dPool, d);
            }
            d = _blocks[i].Backward(d, weights)!;
        }
        d = _maxpool.Backward(d, weights)!;
        if (_lastForwardFolded)
        {
            if (weights)
            {
                throw new InvalidOperationException("Parameter gradients after an evaluation-mode forward are not supported; run a training-mode forward first, or use BackwardMode.InputOnly.");
            }
            // d is the max pool's own input-gradient buffer: masking it in place is safe.
            Kernels.Operators.Elementwise.ReluBackward(Accelerator, _evalStem!.View, d.View, d.View);
            return input ? _stemFold.BackwardData(d) : null;
        }
        d = _bn1.Backward(d, weights)!;
        return _conv1.Backward(d, weights, input);
    }

    private void RequireStageGradient(Tensor dPool, int n, int stage)
    {
        if (dPool.Rank != 2 || dPool.Dim(0) != n || dPool.Dim(1) != StageWidths[stage])
        {
            throw new ArgumentException($"The layer{stage + 1} gradient must be (N, {StageWidths[stage]}) = ({n}, {StageWidths[stage]}); got {Tensor.ShapeText(dPool.Shape)}.");
        }
    }

    public void Dispose()
    {
        _conv1.Dispose();
        _bn1.Dispose();
        _stemFold.Dispose();
        _nhwcInput?.Dispose();
        _nhwcStem?.Dispose();
        _nhwcPooled?.Dispose();
        foreach (var pooled in _nhwcStagePools)
        {
            pooled?.Dispose();
        }
        _maxpool.Dispose();
        foreach (var b in _blocks)
        {
            b.Dispose();
        }
        _avgpool.Dispose();
        foreach (var p in _stagePools)
        {
            p.Dispose();
        }
        _fc.Dispose();
    }
}
