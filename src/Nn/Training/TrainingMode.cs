using IlgpuOct.Kernels;

namespace IlgpuOct.Nn.Training;

/// <summary>One mini-batch on the device, with the model and where the run stands.</summary>
public sealed class TrainingBatch(ResNet18 model, Tensor images, View<int> labels, int epoch, long step, int seed)
{
    public ResNet18 Model { get; } = model;

    /// <summary>Images in [0, 1] (N, C, H, W); a mode may overwrite them (e.g. with adversarial ones).</summary>
    public Tensor Images { get; } = images;

    public View<int> Labels { get; } = labels; // (N)

    public int Epoch { get; } = epoch;

    /// <summary>Global optimiser step (0-based) this batch belongs to.</summary>
    public long Step { get; } = step;

    /// <summary>The run's seed; a mode that draws random numbers derives them from (Seed, Step).</summary>
    public int Seed { get; } = seed;

    public int Count => Images.Dim(0);
}

/// <summary>Device buffers a training step writes into: d loss / d logits and the loss.</summary>
public sealed class StepBuffers : IDisposable
{
    private Tensor? _dLogits; // (N, classes)

    public StepBuffers(Accelerator accelerator)
    {
        Accelerator = accelerator;
        Loss = accelerator.Allocate<float>(1);
    }

    public Accelerator Accelerator { get; }

    public DeviceBuffer<float> Loss { get; } // (1) mean loss of the batch

    public Tensor DLogits(int n, int classes) => Tensor.Reuse(ref _dLogits, Accelerator, n, classes);

    public void Dispose()
    {
        _dLogits?.Dispose();
        Loss.Dispose();
    }
}

/// <summary>
/// How one training step turns a batch into parameter gradients. NT (natural training) is
/// forward, cross-entropy, backward; the defence package adds modes that change the loss (GCE),
/// the batch (adversarial training) or both, by overriding <see cref="Loss"/>,
/// <see cref="PrepareBatch"/> or the whole <see cref="ComputeGradients"/>, and registers them in
/// <see cref="TrainingModes"/>.
/// </summary>
public abstract class TrainingMode
{
    public abstract string Name { get; }

    public virtual ILossFunction Loss { get; } = new CrossEntropyLoss();

    /// <summary>Runs before the forward pass; may rewrite <see cref="TrainingBatch.Images"/> in place.</summary>
    public virtual void PrepareBatch(TrainingBatch batch)
    {
    }

    /// <summary>
    /// Leaves the parameter gradients in the model and the batch's mean loss in <paramref name="buffers"/>;
    /// returns the logits (N, classes) whose accuracy the run reports.
    /// </summary>
    public virtual Tensor ComputeGradients(TrainingBatch batch, StepBuffers buffers)
    {
        ArgumentNullException.ThrowIfNull(batch);
        ArgumentNullException.ThrowIfNull(buffers);
        PrepareBatch(batch);
        var logits = batch.Model.Forward(batch.Images, training: true);
        var dLogits = buffers.DLogits(logits.Dim(0), logits.Dim(1));
        Loss.Compute(logits, batch.Labels, dLogits, buffers.Loss.View);
        batch.Model.Backward(dLogits, BackwardMode.Parameters);
        return logits;
    }
}

/// <summary>Natural training: plain cross-entropy on clean images.</summary>
public sealed class NaturalTraining : TrainingMode
{
    public override string Name => "nt";
}

/// <summary>Training modes by name (<c>--mode</c>); <c>nt</c> is built in, others are registered by the defence package.</summary>
public static class TrainingModes
{
    private static readonly Dictionary<string, Func<TrainingMode>> Factories = new(StringComparer.OrdinalIgnoreCase)
    {
        ["nt"] = () => new NaturalTraining(),
    };

    public static IReadOnlyCollection<string> Names
    {
        get
        {
            lock (Factories)
            {
                return [.. Factories.Keys];
            }
        }
    }

    public static void Register(string name, Func<TrainingMode> factory)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(factory);
        lock (Factories)
        {
            Factories[name] = factory;
        }
    }

    public static TrainingMode Create(string name)
    {
        lock (Factories)
        {
            return Factories.TryGetValue(name ?? "", out var factory)
                ? factory()
                : throw new ArgumentException($"Unknown training mode '{name}'; available: {string.Join(", ", Factories.Keys)}.", nameof(name));
        }
    }
}
