using IlgpuOct.Nn;

namespace IlgpuOct.Defense.Attacks;

/// <summary>Settings of an L-infinity gradient-sign attack.</summary>
public sealed record PgdOptions
{
    /// <summary>L-infinity budget in [0, 1] pixel units.</summary>
    public float Epsilon { get; init; } = 0.005f;

    public int Steps { get; init; } = 10;

    /// <summary>Step size; null means 2.5 eps / steps (Madry et al.).</summary>
    public float? StepSize { get; init; }

    /// <summary>Start each restart uniformly in [x - eps, x + eps] (clipped to [0, 1]).</summary>
    public bool RandomStart { get; init; }

    /// <summary>Runs; each image keeps its first successful run, else its highest-objective one.</summary>
    public int Restarts { get; init; } = 1;

    public int Seed { get; init; }

    public float EffectiveStepSize => StepSize ?? 2.5f * Epsilon / Steps;

    public void Validate()
    {
        if (!(Epsilon >= 0f && Epsilon <= 1f))
        {
            throw new ArgumentException($"Epsilon must lie in [0, 1] (pixel units of images in [0, 1]); got {Epsilon}.");
        }
        if (Steps < 1)
        {
            throw new ArgumentException($"PGD needs at least 1 step; got {Steps}.");
        }
        if (!(EffectiveStepSize > 0f))
        {
            throw new ArgumentException($"The step size must be positive; got {EffectiveStepSize}.");
        }
        if (Restarts < 1)
        {
            throw new ArgumentException($"Restarts must be at least 1; got {Restarts}.");
        }
        if (Restarts > 1 && !RandomStart)
        {
            throw new ArgumentException("Restarts without a random start repeat the same deterministic run; add the random start or use 1 restart.");
        }
    }
}

/// <summary>
/// Madry et al.'s projected gradient descent in L-infinity: x_{t+1} = clip_[0,1](proj_eps(x_t +
/// alpha sign(dJ/dx))), J the objective (cross-entropy against the labels, or minus the
/// cross-entropy against the targets, by default). Keeps the final iterate of each run.
/// </summary>
public static class Pgd
{
    public static AttackResult Run(IAttackObjective objective, ReadOnlySpan<float> images, int[] shape, AttackGoal goal, PgdOptions options,
        IProgress<AttackProgress>? progress = null, CancellationToken cancellationToken = default, string name = "pgd")
    {
        ArgumentNullException.ThrowIfNull(objective);
        ArgumentNullException.ThrowIfNull(goal);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var classifier = objective.Classifier;
        int n = AttackChecks.RequireImages(images, shape, classifier.InChannels);
        AttackChecks.RequireUnitRange(images);
        goal.Validate(n, classifier.NumClasses);
        float[] x0 = images.ToArray();
        float[] cleanLogits = classifier.Logits(x0, shape);

        float[] best = (float[])x0.Clone();
        float[] bestLogits = cleanLogits;
        var bestObjective = new double[n];
        var bestReached = new bool[n];
        var start = new float[x0.Length];
        var value = new double[n];
        int per = x0.Length / n;
        int k = classifier.NumClasses;
        var accelerator = classifier.Accelerator;
        // The iterate, the original and the gradient stay on the device; the host sees the logits.
        using var original = Tensor.FromHost(accelerator, x0, shape);
        using var x = Tensor.Zeros(accelerator, shape);
        for (int restart = 0; restart < options.Restarts; restart++)
        {
            if (options.RandomStart)
            {
                AttackMath.RandomStart(start, x0, options.Epsilon, new Random(DeriveSeed(options.Seed, restart)));
                x.Upload(start);
            }
            else
            {
                x.CopyFrom(original);
            }
            Steps(x, original, xi => objective.Gradient(xi, goal), options, restart, progress, cancellationToken, name);
            float[] logits = objective.Evaluate(x, goal, value, withGradient: false, out _);
            float[] adversarial = x.Download();
            int[] predicted = Accuracy.ArgMax(logits, n, k);
            if (restart == 0)
            {
                bestLogits = new float[logits.Length];
            }
            for (int i = 0; i < n; i++)
            {
                if (bestReached[i])
                {
                    continue; // the first successful run stands
                }
                bool reached = goal.Reached(predicted[i], i);
                if (restart == 0 || reached || value[i] > bestObjective[i])
                {
                    Array.Copy(adversarial, i * per, best, i * per, per);
                    Array.Copy(logits, i * k, bestLogits, i * k, k);
                    bestObjective[i] = value[i];
                    bestReached[i] = reached;
                }
            }
        }
        return new AttackResult(best, (int[])shape.Clone(), goal.Labels, goal.Targets, cleanLogits, bestLogits, k).WithDistances(x0);
    }

    /// <summary>
    /// One run's steps on the device: the iterate x (N, C, H, W), where the caller started it, moves by
    /// alpha sign(<paramref name="gradient"/>(x)) and is projected to the eps ball around
    /// <paramref name="original"/> and to [0, 1], in place. Nothing is read back or allocated here:
    /// the attack verbs and adversarial training (FGSM = one step) share this loop.
    /// </summary>
    public static void Steps(Tensor x, Tensor original, Func<Tensor, Tensor> gradient, PgdOptions options, int restart = 0,
        IProgress<AttackProgress>? progress = null, CancellationToken cancellationToken = default, string name = "pgd")
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(original);
        ArgumentNullException.ThrowIfNull(gradient);
        ArgumentNullException.ThrowIfNull(options);
        for (int step = 0; step < options.Steps; step++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var g = gradient(x);
            AttackKernels.SignStepProjectClip(x.Accelerator, x.View, original.View, g.View, options.EffectiveStepSize, options.Epsilon);
            progress?.Report(new AttackProgress(name, restart + 1, options.Restarts, step + 1, options.Steps));
        }
    }

    internal static int DeriveSeed(int seed, int stream) => unchecked((seed * 1_000_003) ^ (stream * 7919 + 0x5bd1e995));
}

/// <summary>Goodfellow et al.'s fast gradient sign method: clip(x + eps sign(dJ/dx), 0, 1), one step.</summary>
public static class Fgsm
{
    public static AttackResult Run(IAttackObjective objective, ReadOnlySpan<float> images, int[] shape, AttackGoal goal, float epsilon,
        CancellationToken cancellationToken = default) =>
        Pgd.Run(objective, images, shape, goal, new PgdOptions { Epsilon = epsilon, Steps = 1, StepSize = epsilon > 0 ? epsilon : float.Epsilon },
            null, cancellationToken, "fgsm");
}
