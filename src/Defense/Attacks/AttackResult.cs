using IlgpuOct.Nn;
namespace IlgpuOct.Defense.Attacks;

/// <summary>Progress of an iterative attack on one batch.</summary>
public readonly record struct AttackProgress(string Attack, int Round, int Rounds, int Step, int Steps);

/// <summary>
/// What an attack returns for one batch: the adversarial images and, per image, the predictions,
/// whether the goal was reached (untargeted: prediction != label; targeted: prediction == target),
/// and the distance from the original.
/// </summary>
public sealed class AttackResult
{
    public AttackResult(float[] adversarial, int[] shape, int[] labels, int[]? targets, float[] cleanLogits, float[] adversarialLogits, int classes)
    {
        ArgumentNullException.ThrowIfNull(adversarial);
        ArgumentNullException.ThrowIfNull(shape);
        Adversarial = adversarial;
        Shape = shape;
        Labels = labels;
        Targets = targets;
        CleanLogits = cleanLogits;
        AdversarialLogits = adversarialLogits;
        int n = shape[0];
        PredClean = Accuracy.ArgMax(cleanLogits, n, classes);
        PredAdv = Accuracy.ArgMax(adversarialLogits, n, classes);
        Success = new bool[n];
        for (int i = 0; i < n; i++)
        {
            Success[i] = targets is null ? PredAdv[i] != labels[i] : PredAdv[i] == targets[i];
        }
    }

    public float[] Adversarial { get; } // (N, C, H, W) in [0, 1]

    public int[] Shape { get; } // (N, C, H, W)

    public int Count => Shape[0];

    public int[] Labels { get; } // (N) true classes

    public int[]? Targets { get; } // (N) target classes of a targeted attack, else null

    public float[] CleanLogits { get; } // (N, K)

    public float[] AdversarialLogits { get; } // (N, K)

    public int[] PredClean { get; } // (N)

    public int[] PredAdv { get; } // (N)

    public bool[] Success { get; } // (N)

    public float[] L2 { get; private set; } = []; // (N) ||x_adv - x||_2

    public float[] Linf { get; private set; } = []; // (N) ||x_adv - x||_inf

    internal AttackResult WithDistances(ReadOnlySpan<float> original)
    {
        (L2, Linf) = AttackMath.Distances(Adversarial, original, Count);
        return this;
    }
}

/// <summary>Untargeted (move away from the label) or targeted (reach a given class per image).</summary>
public sealed class AttackGoal
{
    private AttackGoal(int[] labels, int[]? targets)
    {
        Labels = labels;
        Targets = targets;
    }

    public int[] Labels { get; } // (N)

    public int[]? Targets { get; } // (N) or null

    public bool IsTargeted => Targets is not null;

    public static AttackGoal Untargeted(int[] labels) => new(labels ?? throw new ArgumentNullException(nameof(labels)), null);

    public static AttackGoal Targeted(int[] labels, int[] targets)
    {
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentNullException.ThrowIfNull(targets);
        if (targets.Length != labels.Length)
        {
            throw new ArgumentException($"{labels.Length} labels but {targets.Length} targets; give one target per image.", nameof(targets));
        }
        return new(labels, targets);
    }

    /// <summary>The class the attack pushes towards (targeted) or away from (untargeted) for image i.</summary>
    public int ClassOf(int i) => Targets?[i] ?? Labels[i];

    public int[] Classes => Targets ?? Labels;

    internal void Validate(int n, int classes)
    {
        AttackChecks.RequireLabels(Labels, n, classes, "labels");
        if (Targets is not null)
        {
            AttackChecks.RequireLabels(Targets, n, classes, "targets");
        }
    }

    internal bool Reached(int predicted, int i) => Targets is null ? predicted != Labels[i] : predicted == Targets[i];
}
