using IlgpuOct.Kernels;

namespace IlgpuOct.Nn;

/// <summary>
/// One differentiable stage. <see cref="Forward"/> caches exactly what <see cref="Backward"/>
/// needs (references to its input and output buffers, batch statistics) and returns an output
/// tensor the layer owns (reused while the batch shape stays the same: valid until the next
/// forward). The input must stay unchanged until the backward pass.
/// </summary>
public abstract class Layer : IDisposable
{
    protected Layer(Accelerator accelerator)
    {
        Accelerator = accelerator ?? throw new ArgumentNullException(nameof(accelerator));
    }

    public Accelerator Accelerator { get; }

    public abstract Tensor Forward(Tensor x, bool training);

    /// <summary>
    /// Back-propagates <paramref name="dy"/> (shape of the last output). Writes (overwrites) the
    /// parameter gradients when <paramref name="weightGradients"/>; returns d loss / d input when
    /// <paramref name="inputGradient"/>, else null (the first convolution of a network being
    /// trained skips that work).
    /// </summary>
    public abstract Tensor? Backward(Tensor dy, bool weightGradients, bool inputGradient = true);

    public virtual IEnumerable<Parameter> Parameters => [];

    public virtual IEnumerable<StateBuffer> Buffers => [];

    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    protected abstract void Dispose(bool disposing);

    protected Tensor RequireForward(Tensor? cached, string layer) =>
        cached ?? throw new InvalidOperationException($"{layer}.Backward was called before Forward; run a forward pass on this batch first.");

    protected static void RequireRank(Tensor x, int rank, string layer)
    {
        if (x.Rank != rank)
        {
            throw new ArgumentException($"{layer} expects a rank-{rank} input; got shape {Tensor.ShapeText(x.Shape)}.", nameof(x));
        }
    }
}

/// <summary>Seeded initialisers that match PyTorch's formulas (not its random streams).</summary>
public static class Init
{
    /// <summary>Normal(0, std) by Box-Muller from <paramref name="random"/>.</summary>
    public static void Normal(Span<float> values, double std, Random random)
    {
        ArgumentNullException.ThrowIfNull(random);
        for (int i = 0; i < values.Length; i++)
        {
            double u1 = 1.0 - random.NextDouble(); // (0, 1], keeps the log finite
            double u2 = random.NextDouble();
            values[i] = (float)(std * Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * u2));
        }
    }

    public static void Uniform(Span<float> values, double bound, Random random)
    {
        ArgumentNullException.ThrowIfNull(random);
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = (float)((random.NextDouble() * 2.0 - 1.0) * bound);
        }
    }
}
