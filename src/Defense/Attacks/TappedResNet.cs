using IlgpuOct.Kernels;
using Elementwise = IlgpuOct.Kernels.Operators.Elementwise;
using IlgpuOct.Nn;

namespace IlgpuOct.Defense.Attacks;

/// <summary>
/// An evaluation-mode copy of a <see cref="ResNet18"/> built from the same public layers in the
/// same torchvision topology, whose backward pass accepts gradients injected at the pooled stage
/// outputs. ResNet18.Backward only starts at the logits and its blocks are private, so the
/// feature-space attacks (HFC, density-adaptive PGD) run on this copy; its parameters and running
/// statistics are copied from the model by name (call <see cref="CopyStateFrom"/> again after the
/// model changes). A test checks that its logits and logit gradients equal the model's.
/// </summary>
public sealed class TappedResNet : IFeatureTapClassifier, IDisposable
{
    private readonly Conv2d _conv1;
    private readonly BatchNorm2d _bn1;
    private readonly Relu _relu;
    private readonly MaxPool2d _maxpool;
    private readonly BasicBlock[] _blocks; // layer1.0, layer1.1, ..., layer4.1
    private readonly GlobalAvgPool[] _pools; // layer1..layer4 pooled; layer4's is the penultimate features
    private readonly Linear _fc;
    private Tensor? _input; // (N, C, H, W)
    private Tensor? _dLogits; // (N, K)
    private Tensor? _dFeatures; // (N, 8w): fc input gradient plus the injected layer4 gradient
    private Tensor? _dPool; // (N, C) one injected stage gradient on its way to the device
    private Tensor? _last; // (N, C, H, W) input of the last forward, not necessarily owned

    public TappedResNet(ResNet18 model)
    {
        ArgumentNullException.ThrowIfNull(model);
        Accelerator = model.Accelerator;
        Config = model.Config;
        int w = Config.Width;
        _conv1 = new Conv2d(Accelerator, "conv1", Config.InChannels, w, 7, 2, 3);
        _bn1 = new BatchNorm2d(Accelerator, "bn1", w);
        _relu = new Relu(Accelerator);
        _maxpool = new MaxPool2d(Accelerator);
        var blocks = new List<BasicBlock>();
        int inChannels = w;
        for (int stage = 0; stage < 4; stage++)
        {
            int channels = w << stage;
            blocks.Add(new BasicBlock(Accelerator, $"layer{stage + 1}.0", inChannels, channels, stage == 0 ? 1 : 2));
            blocks.Add(new BasicBlock(Accelerator, $"layer{stage + 1}.1", channels, channels, 1));
            inChannels = channels;
        }
        _blocks = [.. blocks];
        _pools = [.. Enumerable.Range(0, 4).Select(_ => new GlobalAvgPool(Accelerator))];
        _fc = new Linear(Accelerator, "fc", Config.FeatureCount, Config.NumClasses);
        StageWidths = [w, 2 * w, 4 * w, 8 * w];
        CopyStateFrom(model);
    }

    public Accelerator Accelerator { get; }

    public ResNetConfig Config { get; }

    public int NumClasses => Config.NumClasses;

    public int InChannels => Config.InChannels;

    public IReadOnlyList<int> StageWidths { get; }

    private IEnumerable<Parameter> Parameters =>
        _conv1.Parameters.Concat(_bn1.Parameters).Concat(_blocks.SelectMany(b => b.Parameters)).Concat(_fc.Parameters);

    private IEnumerable<BatchNorm2d> BatchNorms => new[] { _bn1 }.Concat(_blocks.SelectMany(b => b.Children.OfType<BatchNorm2d>()));

    /// <summary>Copies every parameter and running statistic from <paramref name="model"/>, matched by torchvision name.</summary>
    public void CopyStateFrom(ResNet18 model)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (model.Config != Config)
        {
            throw new ArgumentException($"The model is {model.Config}; this copy was built for {Config}. Build a new TappedResNet.", nameof(model));
        }
        var source = model.Parameters.ToDictionary(p => p.Name, StringComparer.Ordinal);
        foreach (var p in Parameters)
        {
            var from = source.TryGetValue(p.Name, out var s) ? s
                : throw new InvalidOperationException($"The model has no parameter '{p.Name}'; ResNet18's topology changed and TappedResNet must follow it.");
            p.Value.CopyFrom(from.Value);
        }
        var sourceBn = model.BatchNorms.ToDictionary(b => b.Name, StringComparer.Ordinal);
        foreach (var bn in BatchNorms)
        {
            var from = sourceBn.TryGetValue(bn.Name, out var s) ? s
                : throw new InvalidOperationException($"The model has no batch norm '{bn.Name}'; ResNet18's topology changed and TappedResNet must follow it.");
            bn.RunningMean.Value.CopyFrom(from.RunningMean.Value);
            bn.RunningVar.Value.CopyFrom(from.RunningVar.Value);
        }
    }

    public float[] Logits(ReadOnlySpan<float> images, int[] shape) => Forward(images, shape).Logits;

    public float[] Logits(Tensor images) => Forward(images).Logits;

    public (float[] Logits, float[][] StagePools) Forward(ReadOnlySpan<float> images, int[] shape)
    {
        AttackChecks.RequireImages(images, shape, InChannels);
        var input = Tensor.Reuse(ref _input, Accelerator, shape);
        input.Upload(images);
        return Forward(input);
    }

    public (float[] Logits, float[][] StagePools) Forward(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        _last = input;
        var x = _maxpool.Forward(_relu.Forward(_bn1.Forward(_conv1.Forward(input, false), false), false), false);
        var pools = new float[4][];
        Tensor features = x;
        for (int i = 0; i < _blocks.Length; i++)
        {
            x = _blocks[i].Forward(x, false);
            if (i % 2 == 1)
            {
                features = _pools[i / 2].Forward(x, false);
                pools[i / 2] = features.Download();
            }
        }
        return (_fc.Forward(features, false).Download(), pools);
    }

    public float[] InputGradient(ReadOnlySpan<float> dLogits) => InputGradient(dLogits, [null, null, null, null]);

    public Tensor InputGradientTensor(ReadOnlySpan<float> dLogits) => InputGradientTensor(dLogits, [null, null, null, null]);

    public float[] InputGradient(ReadOnlySpan<float> dLogits, IReadOnlyList<float[]?> dStagePools) => InputGradientTensor(dLogits, dStagePools).Download();

    public Tensor InputGradientTensor(ReadOnlySpan<float> dLogits, IReadOnlyList<float[]?> dStagePools)
    {
        ArgumentNullException.ThrowIfNull(dStagePools);
        var input = _last ?? throw new InvalidOperationException("InputGradient needs a Forward call on the batch first.");
        if (dStagePools.Count != 4)
        {
            throw new ArgumentException($"Give one (possibly null) gradient per stage (4); got {dStagePools.Count}.", nameof(dStagePools));
        }
        int n = input.Dim(0);
        var dl = Tensor.Reuse(ref _dLogits, Accelerator, n, NumClasses);
        dl.Upload(dLogits);
        var d = _fc.Backward(dl, false)!;
        if (dStagePools[3] is { } d4)
        {
            if (d4.Length != d.Length)
            {
                throw new ArgumentException($"The layer4 gradient must be (N, {Config.FeatureCount}) = {d.Length} values; got {d4.Length}.", nameof(dStagePools));
            }
            var sum = Tensor.Reuse(ref _dFeatures, Accelerator, n, Config.FeatureCount);
            sum.Upload(d4);
            Elementwise.AddInPlace(Accelerator, d.View, sum.View);
            d = sum;
        }
        d = _pools[3].Backward(d, false)!;
        for (int i = _blocks.Length - 1; i >= 0; i--)
        {
            if (i % 2 == 1 && i / 2 < 3 && dStagePools[i / 2] is { } dPool)
            {
                int stage = i / 2;
                if (dPool.Length != d.Dim(0) * d.Dim(1))
                {
                    throw new ArgumentException($"The layer{stage + 1} gradient must be (N, {d.Dim(1)}) = {d.Dim(0) * d.Dim(1)} values; got {dPool.Length}.", nameof(dStagePools));
                }
                var pooled = Tensor.Reuse(ref _dPool, Accelerator, d.Dim(0), d.Dim(1));
                pooled.Upload(dPool);
                // d is the next block's input-gradient buffer, consumed only by this block's backward.
                AttackKernels.AddPooledGradient(Accelerator, pooled.View, d.View, d.Dim(2) * d.Dim(3));
            }
            d = _blocks[i].Backward(d, false)!;
        }
        d = _bn1.Backward(_relu.Backward(_maxpool.Backward(d, false)!, false)!, false)!;
        return _conv1.Backward(d, false, true)!;
    }

    public void Dispose()
    {
        _conv1.Dispose();
        _bn1.Dispose();
        _relu.Dispose();
        _maxpool.Dispose();
        foreach (var b in _blocks)
        {
            b.Dispose();
        }
        foreach (var p in _pools)
        {
            p.Dispose();
        }
        _fc.Dispose();
        _input?.Dispose();
        _dLogits?.Dispose();
        _dFeatures?.Dispose();
        _dPool?.Dispose();
    }
}
