using IlgpuOct.Kernels.Operators;

namespace IlgpuOct.Nn.Training;

/// <summary>
/// PyTorch's SGD with momentum and weight decay (no dampening, no Nesterov): for each parameter
/// d = g + wd * w; buf = momentum * buf + d (buf starts at zero, so the first step is d); w -= lr * buf.
/// Momentum buffers live in <see cref="Parameter.Momentum"/> so that checkpoints carry them.
/// </summary>
public sealed class SgdOptimizer
{
    public SgdOptimizer(float momentum = 0.9f, float weightDecay = 5e-4f)
    {
        if (momentum is < 0 or >= 1)
        {
            throw new ArgumentOutOfRangeException(nameof(momentum), $"Momentum must lie in [0, 1); got {momentum}.");
        }
        ArgumentOutOfRangeException.ThrowIfNegative(weightDecay);
        Momentum = momentum;
        WeightDecay = weightDecay;
    }

    public float Momentum { get; }

    public float WeightDecay { get; }

    public void Step(IEnumerable<Parameter> parameters, float learningRate)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        foreach (var p in parameters)
        {
            Sgd.Step(p.Value.Accelerator, p.Value.View, p.Grad.View, p.Momentum.View, new SgdSettings(learningRate, Momentum, WeightDecay));
            p.Value.MarkWritten();
            p.Momentum.MarkWritten();
        }
    }

    /// <summary>Parses the golden files' <c>sgd</c> metadata, e.g. "lr=0.05,momentum=0.9,weight_decay=5e-4,nesterov=false".</summary>
    public static (float LearningRate, SgdOptimizer Optimizer) Parse(string settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var values = settings.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(kv => kv.Split('=', 2))
            .ToDictionary(kv => kv[0], kv => kv.Length > 1 ? kv[1] : "", StringComparer.Ordinal);
        if (values.TryGetValue("nesterov", out var nesterov) && nesterov.Equals("true", StringComparison.OrdinalIgnoreCase))
        {
            throw new NotSupportedException("Nesterov momentum is not implemented.");
        }
        float Get(string key) => values.TryGetValue(key, out var v)
            ? float.Parse(v, System.Globalization.CultureInfo.InvariantCulture)
            : throw new FormatException($"SGD settings '{settings}' lack '{key}='.");
        return (Get("lr"), new SgdOptimizer(Get("momentum"), Get("weight_decay")));
    }
}
