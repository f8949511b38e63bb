using IlgpuOct.Nn;

namespace IlgpuOct.Defense.Detection;

/// <summary>Host copies of the model's evaluation-mode outputs over many images.</summary>
public sealed record ForwardOutputs(
    float[] Logits, // (N, K)
    float[] Features, // (N, 8w) penultimate
    float[][]? StagePools, // per stage (N, w << s), or null
    int[] Predicted); // (N)

public static class ModelFeatures
{
    public const int Batch = 64;

    /// <summary>Runs images (N, C, H, W) in [0, 1] through the model in evaluation mode, <see cref="Batch"/> at a time.</summary>
    public static ForwardOutputs Compute(ResNet18 model, float[] images, int n, bool stagePools = false, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(images);
        if (n < 1 || images.Length % n != 0)
        {
            throw new ArgumentException($"{images.Length} values do not hold {n} images.");
        }
        int per = images.Length / n;
        var config = model.Config;
        int hw = per / config.InChannels;
        int side = (int)Math.Round(Math.Sqrt(hw));
        if (side * side != hw)
        {
            throw new ArgumentException("ModelFeatures takes square images.");
        }
        int k = config.NumClasses;
        int d = config.FeatureCount;
        var logits = new float[n * k];
        var features = new float[n * d];
        float[][]? pools = stagePools ? [.. Enumerable.Range(0, 4).Select(s => new float[n * (config.Width << s)])] : null;
        Tensor? input = null;
        try
        {
            for (int start = 0; start < n; start += Batch)
            {
                cancellationToken.ThrowIfCancellationRequested();
                int b = Math.Min(Batch, n - start);
                input = Tensor.Reuse(ref input, model.Accelerator, b, config.InChannels, side, side);
                input.Upload(images.AsSpan(start * per, b * per));
                var outputs = model.Infer(input, stagePools);
                outputs.Logits.Download().CopyTo(logits, start * k);
                outputs.Features.Download().CopyTo(features, start * d);
                if (pools is not null)
                {
                    for (int s = 0; s < 4; s++)
                    {
                        outputs.StagePools![s].Download().CopyTo(pools[s], start * (config.Width << s));
                    }
                }
            }
        }
        finally
        {
            input?.Dispose();
        }
        return new ForwardOutputs(logits, features, pools, Accuracy.ArgMax(logits, n, k));
    }
}
