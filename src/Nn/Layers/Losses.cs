using IlgpuOct.Kernels;

namespace IlgpuOct.Nn;

/// <summary>
/// A classification loss: from logits (N, K) and labels (N) it writes the mean loss into
/// <paramref name="loss"/>[0], d loss / d logits into <paramref name="dLogits"/> (N, K) and the number of
/// correct argmax predictions into <paramref name="correct"/>[0], all on the device.
/// </summary>
public interface ILossFunction
{
    string Name { get; }

    void Compute(Tensor logits, View<int> labels, Tensor dLogits, View<float> loss, View<int> correct);
}

/// <summary>Mean softmax cross-entropy.</summary>
public sealed class CrossEntropyLoss : ILossFunction
{
    public string Name => "cross-entropy";

    public void Compute(Tensor logits, View<int> labels, Tensor dLogits, View<float> loss, View<int> correct)
    {
        ArgumentNullException.ThrowIfNull(logits);
        ArgumentNullException.ThrowIfNull(dLogits);
        Ops.CrossEntropy(logits.Accelerator, logits.View, labels, dLogits.View, loss, correct, logits.Dim(0), logits.Dim(1));
    }
}
