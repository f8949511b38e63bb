using IlgpuOct.Kernels;
using IlgpuOct.Nn;

namespace IlgpuOct.Defense.Attacks;

/// <summary>
/// A frozen classifier in evaluation mode seen by the attacks: images (N, C, H, W) in, logits
/// (N, K) out (to the host: a few floats per image), and d loss / d input for a given d loss /
/// d logits of the last forward. The device overloads keep the iterate and its gradient on the
/// device (PGD, C&amp;W); the host overloads upload and download (clean logits, FGSM training samples, tests).
/// </summary>
public interface IDifferentiableClassifier
{
    Accelerator Accelerator { get; }

    int NumClasses { get; }

    int InChannels { get; }

    /// <summary>Evaluation-mode logits (N, K) of <paramref name="images"/> (N, C, H, W), uploaded first.</summary>
    float[] Logits(ReadOnlySpan<float> images, int[] shape);

    /// <summary>Evaluation-mode logits (N, K) of device images (N, C, H, W), which must stay unchanged until the gradient call.</summary>
    float[] Logits(Tensor images);

    /// <summary>d loss / d input (N, C, H, W) of the last forward for <paramref name="dLogits"/> (N, K), downloaded.</summary>
    float[] InputGradient(ReadOnlySpan<float> dLogits);

    /// <summary>d loss / d input (N, C, H, W) of the last forward on the device; owned by the classifier, valid until its next call.</summary>
    Tensor InputGradientTensor(ReadOnlySpan<float> dLogits);

    /// <summary>Evaluation-mode logits (N, K) of device images, left on the device (owned by the classifier, valid until its next call): an attack step without a host copy.</summary>
    Tensor LogitsTensor(Tensor images);

    /// <summary>d loss / d input (N, C, H, W) of the last forward for d loss / d logits (N, K) already on the device; owned by the classifier, valid until its next call.</summary>
    Tensor InputGradientTensor(Tensor dLogits);
}

/// <summary>
/// A classifier that also exposes its pooled stage outputs (layer1..layer4, the last being the
/// penultimate features) and accepts gradients injected at them.
/// </summary>
public interface IFeatureTapClassifier : IDifferentiableClassifier
{
    /// <summary>Width of each tapped stage: (w, 2w, 4w, 8w) for ResNet-18.</summary>
    IReadOnlyList<int> StageWidths { get; }

    /// <summary>Logits (N, K) and every pooled stage output ((N, w), (N, 2w), (N, 4w), (N, 8w)) of <paramref name="images"/>.</summary>
    (float[] Logits, float[][] StagePools) Forward(ReadOnlySpan<float> images, int[] shape);

    /// <summary>As the host overload, for device images (N, C, H, W) that stay unchanged until the gradient call.</summary>
    (float[] Logits, float[][] StagePools) Forward(Tensor images);

    /// <summary>
    /// d loss / d input (N, C, H, W) of the last <see cref="Forward"/> for d loss / d logits (N, K)
    /// plus d loss / d pooled stage output s (N, width s), each entry optional (null = zero).
    /// </summary>
    float[] InputGradient(ReadOnlySpan<float> dLogits, IReadOnlyList<float[]?> dStagePools);

    /// <summary>As the host overload, leaving d loss / d input on the device (owned by the classifier).</summary>
    Tensor InputGradientTensor(ReadOnlySpan<float> dLogits, IReadOnlyList<float[]?> dStagePools);

    /// <summary>As <see cref="Forward(Tensor)"/>, leaving the logits (N, K) and pooled stage outputs (N, w_s) on the device (owned by the classifier, valid until its next call).</summary>
    (Tensor Logits, IReadOnlyList<Tensor> StagePools) ForwardTensors(Tensor images);

    /// <summary>As the host overload with d loss / d logits (N, K) and the stage gradients (N, w_s; null skips a stage) already on the device: nothing is copied.</summary>
    Tensor InputGradientTensor(Tensor dLogits, IReadOnlyList<Tensor?> dStagePools);
}

/// <summary>
/// The model's own evaluation forward and input-only backward (no weight-gradient work), with its
/// pooled stage outputs exposed and gradients injected at them through <see cref="ResNet18.Backward"/>.
/// Forward and gradient calls must alternate on one batch: the model's layers keep the last forward.
/// </summary>
public sealed class ResNetClassifier : IFeatureTapClassifier, IDisposable
{
    private readonly ResNet18 _model;
    private readonly Tensor?[] _dStagePools; // (N, w), (N, 2w), (N, 4w), (N, 8w): injected gradients on their way to the device
    private Tensor? _input; // (N, C, H, W)
    private Tensor? _dLogits; // (N, K)
    private Tensor? _last; // (N, C, H, W) input of the last forward, not necessarily owned
    private bool _lastPooledStages; // whether the last forward pooled the stages (a tapped gradient needs it)

    public ResNetClassifier(ResNet18 model)
    {
        _model = model ?? throw new ArgumentNullException(nameof(model));
        _dStagePools = new Tensor?[model.StageWidths.Count];
    }

    public Accelerator Accelerator => _model.Accelerator;

    public int NumClasses => _model.Config.NumClasses;

    public int InChannels => _model.Config.InChannels;

    public IReadOnlyList<int> StageWidths => _model.StageWidths;

    public float[] Logits(ReadOnlySpan<float> images, int[] shape) => Run(Upload(images, shape), stagePools: false).Logits;

    public float[] Logits(Tensor images) => Run(images, stagePools: false).Logits;

    public Tensor LogitsTensor(Tensor images)
    {
        ArgumentNullException.ThrowIfNull(images);
        _last = images;
        _lastPooledStages = false;
        return _model.ForwardEval(images).Logits;
    }

    public Tensor InputGradientTensor(Tensor dLogits)
    {
        ArgumentNullException.ThrowIfNull(dLogits);
        RequireLogitsShape(dLogits);
        return _model.Backward(dLogits, BackwardMode.InputOnly)!;
    }

    public (float[] Logits, float[][] StagePools) Forward(ReadOnlySpan<float> images, int[] shape) => Run(Upload(images, shape), stagePools: true);

    public (float[] Logits, float[][] StagePools) Forward(Tensor images) => Run(images, stagePools: true);

    public (Tensor Logits, IReadOnlyList<Tensor> StagePools) ForwardTensors(Tensor images)
    {
        ArgumentNullException.ThrowIfNull(images);
        _last = images;
        _lastPooledStages = true;
        var outputs = _model.ForwardEval(images, stagePools: true);
        return (outputs.Logits, outputs.StagePools!);
    }

    public Tensor InputGradientTensor(Tensor dLogits, IReadOnlyList<Tensor?> dStagePools)
    {
        ArgumentNullException.ThrowIfNull(dLogits);
        ArgumentNullException.ThrowIfNull(dStagePools);
        if (dStagePools.Count != _dStagePools.Length)
        {
            throw new ArgumentException($"Give one (possibly null) gradient per stage ({_dStagePools.Length}); got {dStagePools.Count}.", nameof(dStagePools));
        }
        if (!_lastPooledStages && dStagePools.Any(g => g is not null))
        {
            throw new InvalidOperationException("Stage gradients need the stage outputs of the batch: call Forward or ForwardTensors (not Logits) first.");
        }
        RequireLogitsShape(dLogits);
        return _model.Backward(dLogits, BackwardMode.InputOnly, dStagePools)!;
    }

    public float[] InputGradient(ReadOnlySpan<float> dLogits) => InputGradientTensor(dLogits).Download();

    public Tensor InputGradientTensor(ReadOnlySpan<float> dLogits) => Backward(dLogits, null);

    public float[] InputGradient(ReadOnlySpan<float> dLogits, IReadOnlyList<float[]?> dStagePools) => InputGradientTensor(dLogits, dStagePools).Download();

    public Tensor InputGradientTensor(ReadOnlySpan<float> dLogits, IReadOnlyList<float[]?> dStagePools)
    {
        ArgumentNullException.ThrowIfNull(dStagePools);
        if (dStagePools.Count != _dStagePools.Length)
        {
            throw new ArgumentException($"Give one (possibly null) gradient per stage ({_dStagePools.Length}); got {dStagePools.Count}.", nameof(dStagePools));
        }
        int n = LastInput.Dim(0);
        if (!_lastPooledStages && dStagePools.Any(g => g is not null))
        {
            throw new InvalidOperationException("Stage gradients need the stage outputs of the batch: call Forward (not Logits) first.");
        }
        var tensors = new Tensor?[_dStagePools.Length];
        for (int s = 0; s < tensors.Length; s++)
        {
            if (dStagePools[s] is not { } host)
            {
                continue;
            }
            int width = StageWidths[s];
            if (host.Length != n * width)
            {
                throw new ArgumentException($"The layer{s + 1} gradient must be (N, {width}) = {n * width} values; got {host.Length}.", nameof(dStagePools));
            }
            tensors[s] = Tensor.Reuse(ref _dStagePools[s], Accelerator, n, width);
            tensors[s]!.Upload(host);
        }
        return Backward(dLogits, tensors);
    }

    private void RequireLogitsShape(Tensor dLogits)
    {
        if (dLogits.Rank != 2 || dLogits.Dim(0) != LastInput.Dim(0) || dLogits.Dim(1) != NumClasses)
        {
            throw new ArgumentException($"d loss / d logits must be (N, K) = ({LastInput.Dim(0)}, {NumClasses}) for the last forward; got {Tensor.ShapeText(dLogits.Shape)}.", nameof(dLogits));
        }
    }

    private Tensor LastInput => _last ?? throw new InvalidOperationException("InputGradient needs a Logits or Forward call on the batch first.");

    private Tensor Upload(ReadOnlySpan<float> images, int[] shape)
    {
        AttackChecks.RequireImages(images, shape, InChannels);
        var input = Tensor.Reuse(ref _input, Accelerator, shape);
        input.Upload(images);
        return input;
    }

    private (float[] Logits, float[][] StagePools) Run(Tensor images, bool stagePools)
    {
        ArgumentNullException.ThrowIfNull(images);
        _last = images;
        _lastPooledStages = stagePools;
        var outputs = _model.ForwardEval(images, stagePools);
        return (outputs.Logits.Download(), stagePools ? [.. outputs.StagePools!.Select(p => p.Download())] : []);
    }

    private Tensor Backward(ReadOnlySpan<float> dLogits, IReadOnlyList<Tensor?>? dStagePools)
    {
        var d = Tensor.Reuse(ref _dLogits, Accelerator, LastInput.Dim(0), NumClasses);
        d.Upload(dLogits);
        return _model.Backward(d, BackwardMode.InputOnly, dStagePools)!;
    }

    public void Dispose()
    {
        _input?.Dispose();
        _dLogits?.Dispose();
        foreach (var t in _dStagePools)
        {
            t?.Dispose();
        }
    }
}

internal static class AttackChecks
{
    public static int RequireImages(ReadOnlySpan<float> images, int[] shape, int channels)
    {
        ArgumentNullException.ThrowIfNull(shape);
        if (shape.Length != 4 || shape[1] != channels || shape.Any(d => d <= 0))
        {
            throw new ArgumentException($"Attacks take images (N, {channels}, H, W); got shape ({string.Join(", ", shape)}).", nameof(shape));
        }
        long count = (long)shape[0] * shape[1] * shape[2] * shape[3];
        if (images.Length != count)
        {
            throw new ArgumentException($"Shape ({string.Join(", ", shape)}) holds {count} values; {images.Length} were given.", nameof(images));
        }
        return shape[0];
    }

    public static void RequireLabels(ReadOnlySpan<int> labels, int n, int classes, string what)
    {
        if (labels.Length != n)
        {
            throw new ArgumentException($"{n} images need {n} {what}; got {labels.Length}.", what);
        }
        for (int i = 0; i < n; i++)
        {
            if ((uint)labels[i] >= (uint)classes)
            {
                throw new ArgumentException($"{what}[{i}] = {labels[i]} lies outside [0, {classes}).", what);
            }
        }
    }

    public static void RequireUnitRange(ReadOnlySpan<float> images)
    {
        for (int i = 0; i < images.Length; i++)
        {
            if (!(images[i] >= 0f && images[i] <= 1f))
            {
                throw new ArgumentException($"Attacks take images in [0, 1]; element {i} is {images[i]}. Scale the pixels by 1/255 first.", nameof(images));
            }
        }
    }
}
