using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Operators;

namespace IlgpuOct.Nn;

/// <summary>
/// A classification loss: from logits (N, K) and labels (N) it writes the mean loss into
/// <paramref name="loss"/>[0] and d loss / d logits into <paramref name="dLogits"/> (N, K), on the device.
/// </summary>
public interface ILossFunction
{
    string Name { get; }

    void Compute(Tensor logits, View<int> labels, Tensor dLogits, View<float> loss);
}

/// <summary>Mean softmax cross-entropy.</summary>
public sealed class CrossEntropyLoss : ILossFunction
{
    public string Name => "cross-entropy";

    public void Compute(Tensor logits, View<int> labels, Tensor dLogits, View<float> loss)
    {
        ArgumentNullException.ThrowIfNull(logits);
        ArgumentNullException.ThrowIfNull(dLogits);
        CrossEntropy.Compute(logits.Accelerator, new LogitsShape(logits.Dim(0), logits.Dim(1)), logits.View, labels, loss, dLogits.View);
    }
}

/// <summary>Counting correct predictions: the host reads the logits (N, K), a few hundred floats per batch.</summary>
public static class Accuracy
{
    public static int CountCorrect(Tensor logits, ReadOnlySpan<int> labels)
    {
        ArgumentNullException.ThrowIfNull(logits);
        int n = logits.Dim(0);
        int k = logits.Dim(1);
        if (labels.Length < n)
        {
            throw new ArgumentException($"{labels.Length} labels for {n} rows of logits.", nameof(labels));
        }
        int[] predicted = ArgMax(logits.Download(), n, k);
        int correct = 0;
        for (int i = 0; i < n; i++)
        {
            correct += predicted[i] == labels[i] ? 1 : 0;
        }
        return correct;
    }

    /// <summary>Row-wise arg max of logits (N, K); ties go to the lowest index as torch.argmax.</summary>
    public static int[] ArgMax(ReadOnlySpan<float> logits, int n, int k)
    {
        var result = new int[n];
        for (int i = 0; i < n; i++)
        {
            var row = logits.Slice(i * k, k);
            int best = 0;
            for (int j = 1; j < k; j++)
            {
                if (row[j] > row[best])
                {
                    best = j;
                }
            }
            result[i] = best;
        }
        return result;
    }
}
