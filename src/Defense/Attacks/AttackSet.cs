using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using IlgpuOct.Defense.Density;
using IlgpuOct.Kernels;
using IlgpuOct.Nn;
using IlgpuOct.Nn.Data;
using IlgpuOct.Nn.IO;

namespace IlgpuOct.Defense.Attacks;

/// <summary>Which attack a run uses.</summary>
public enum AttackKind
{
    Fgsm,
    Pgd,
    Cw,
    Hfc,
}

/// <summary>Every setting of an attack run over a data set split (what summary.json records).</summary>
public sealed record AttackSettings
{
    public AttackKind Attack { get; init; } = AttackKind.Pgd;

    public float Epsilon { get; init; } = 0.005f;

    public int Steps { get; init; } = 10;

    public float? StepSize { get; init; }

    /// <summary>The step size the L-infinity attacks use: eps for FGSM, else the given one or 2.5 eps / steps.</summary>
    public float EffectiveStepSize => Attack == AttackKind.Fgsm ? Epsilon : (StepSize ?? 2.5f * Epsilon / Steps);

    public bool RandomStart { get; init; }

    public int Restarts { get; init; } = 1;

    public double C { get; init; } = 0.01;

    public float Kappa { get; init; }

    public int BinarySearchSteps { get; init; } = 9;

    public int CwIterations { get; init; } = 100;

    public double LearningRate { get; init; } = 0.01;

    public bool Targeted { get; init; }

    /// <summary>Target class for every image (targeted runs); an image already of that class is sent to the next class. Null: the most likely other class at the clean image.</summary>
    public int? Target { get; init; }

    /// <summary>HFC weight of the feature term.</summary>
    public double Lambda { get; init; } = 1.0;

    /// <summary>HFC mixtures: components per class and stage, covariance type, images per class used to fit them.</summary>
    public int GmmComponents { get; init; } = 1;

    public CovarianceType GmmCovariance { get; init; } = CovarianceType.Full;

    public int BatchSize { get; init; } = 32;

    public int Seed { get; init; }

    [JsonIgnore]
    public PgdOptions Pgd => new()
    {
        Epsilon = Epsilon,
        Steps = Attack == AttackKind.Fgsm ? 1 : Steps,
        StepSize = Attack == AttackKind.Fgsm ? Epsilon : StepSize,
        RandomStart = Attack != AttackKind.Fgsm && RandomStart,
        Restarts = Attack == AttackKind.Fgsm ? 1 : Restarts,
        Seed = Seed,
    };

    [JsonIgnore]
    public CarliniWagnerOptions CarliniWagner => new()
    {
        InitialC = C,
        Kappa = Kappa,
        BinarySearchSteps = BinarySearchSteps,
        MaxIterations = CwIterations,
        LearningRate = LearningRate,
    };

    public void Validate(int classes)
    {
        if (BatchSize < 1)
        {
            throw new ArgumentException($"The batch size must be at least 1; got {BatchSize}.");
        }
        if (Target is int t && (uint)t >= (uint)classes)
        {
            throw new ArgumentException($"--target {t} is not a class of this model (0..{classes - 1}).");
        }
        if (Target is not null && !Targeted)
        {
            throw new ArgumentException("A target class was given for an untargeted attack; add --targeted.");
        }
        if (Attack == AttackKind.Cw)
        {
            CarliniWagner.Validate();
        }
        else if (Attack == AttackKind.Fgsm)
        {
            if (!(Epsilon > 0 && Epsilon <= 1))
            {
                throw new ArgumentException($"FGSM needs an epsilon in (0, 1]; got {Epsilon}.");
            }
        }
        else
        {
            Pgd.Validate();
        }
    }
}

/// <summary>Progress of a run over a split: batches done.</summary>
public readonly record struct AttackSetProgress(int Batch, int Batches, int Images, AttackProgress? Step);

/// <summary>All images of a run, concatenated in split order.</summary>
public sealed class AttackSetResult
{
    public required AttackSettings Settings { get; init; }

    public required int[] ImageShape { get; init; } // (C, H, W)

    public required int[] Indices { get; init; } // (N) indices in the split

    public required float[] Adversarial { get; init; } // (N, C, H, W)

    public required int[] Labels { get; init; } // (N)

    public required int[]? Targets { get; init; } // (N) or null

    public required int[] PredClean { get; init; } // (N)

    public required int[] PredAdv { get; init; } // (N)

    public required bool[] Success { get; init; } // (N)

    public required float[] Linf { get; init; } // (N)

    public required float[] L2 { get; init; } // (N)

    public int Count => Labels.Length;

    public AttackSummary Summarise(string device, string model, string data, string split, double seconds)
    {
        int n = Count;
        int correct = Enumerable.Range(0, n).Count(i => PredClean[i] == Labels[i]);
        int robust = Enumerable.Range(0, n).Count(i => PredAdv[i] == Labels[i]);
        int successOnCorrect = Enumerable.Range(0, n).Count(i => Success[i] && PredClean[i] == Labels[i]);
        return new AttackSummary
        {
            Attack = Settings.Attack.ToString().ToLowerInvariant(),
            Settings = Settings,
            Device = device,
            Model = model,
            Data = data,
            Split = split,
            Images = n,
            SuccessRate = n == 0 ? 0 : (double)Success.Count(s => s) / n,
            SuccessRateOnCorrect = correct == 0 ? 0 : (double)successOnCorrect / correct,
            CleanAccuracy = n == 0 ? 0 : (double)correct / n,
            RobustAccuracy = n == 0 ? 0 : (double)robust / n,
            MeanL2 = n == 0 ? 0 : L2.Average(v => (double)v),
            MedianL2 = Median(L2),
            MeanLinf = n == 0 ? 0 : Linf.Average(v => (double)v),
            MedianLinf = Median(Linf),
            Seconds = seconds,
        };
    }

    private static double Median(float[] values)
    {
        if (values.Length == 0)
        {
            return 0;
        }
        var sorted = values.Select(v => (double)v).Order().ToArray();
        int m = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[m] : (sorted[m - 1] + sorted[m]) / 2;
    }

    /// <summary>
    /// Writes <c>adversarial.safetensors</c> (adv (N, C, H, W) float32, labels, targets, pred_clean,
    /// pred_adv, success (U8), linf, l2, indices), <c>per_image.csv</c> and <c>summary.json</c>, each atomically.
    /// </summary>
    public void Write(string directory, AttackSummary summary)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        ArgumentNullException.ThrowIfNull(summary);
        Directory.CreateDirectory(directory);
        int n = Count;
        var file = AdversarialFile.Create(Adversarial, [n, .. ImageShape], Labels, new Dictionary<string, string>
        {
            ["attack"] = summary.Attack,
            ["settings"] = JsonSerializer.Serialize(Settings, AttackSummary.JsonOptions),
        });
        if (Targets is not null)
        {
            file.Add("targets", Array.ConvertAll(Targets, v => (long)v), n);
        }
        file.Add("pred_clean", Array.ConvertAll(PredClean, v => (long)v), n);
        file.Add("pred_adv", Array.ConvertAll(PredAdv, v => (long)v), n);
        file.Add("success", Array.ConvertAll(Success, v => v ? (byte)1 : (byte)0), n);
        file.Add("linf", Linf, n);
        file.Add("l2", L2, n);
        file.Add("indices", Array.ConvertAll(Indices, v => (long)v), n);
        file.Write(Path.Combine(directory, "adversarial.safetensors"));

        var csv = new StringBuilder("index,label,target,pred_clean,pred_adv,success,linf,l2\n");
        var inv = CultureInfo.InvariantCulture;
        for (int i = 0; i < n; i++)
        {
            csv.Append(inv, $"{Indices[i]},{Labels[i]},{(Targets is null ? "" : Targets[i].ToString(inv))},{PredClean[i]},{PredAdv[i]},{(Success[i] ? 1 : 0)},{Linf[i].ToString("R", inv)},{L2[i].ToString("R", inv)}\n");
        }
        AtomicFile.WriteAllText(Path.Combine(directory, "per_image.csv"), csv.ToString());
        AtomicFile.WriteAllText(Path.Combine(directory, "summary.json"), JsonSerializer.Serialize(summary, AttackSummary.JsonOptions) + "\n");
    }
}

/// <summary>summary.json of a run.</summary>
public sealed record AttackSummary
{
    public static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public required string Attack { get; init; }

    public required AttackSettings Settings { get; init; }

    public required string Device { get; init; }

    public required string Model { get; init; }

    public required string Data { get; init; }

    public required string Split { get; init; }

    public int Images { get; init; }

    /// <summary>Fraction of all attacked images whose goal was reached.</summary>
    public double SuccessRate { get; init; }

    /// <summary>Fraction of the correctly classified clean images whose goal was reached.</summary>
    public double SuccessRateOnCorrect { get; init; }

    public double CleanAccuracy { get; init; }

    /// <summary>Accuracy on the adversarial images.</summary>
    public double RobustAccuracy { get; init; }

    public double MeanL2 { get; init; }

    public double MedianL2 { get; init; }

    public double MeanLinf { get; init; }

    public double MedianLinf { get; init; }

    public double Seconds { get; init; }
}

/// <summary>Runs one attack over (a prefix of) a data set split, batch by batch.</summary>
public static class AttackSetRunner
{
    public static AttackSetResult Run(ResNet18 model, DatasetSplit split, AttackSettings settings, int limit, DatasetSplit? gmmSplit, int gmmLimit,
        IProgress<AttackSetProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(split);
        ArgumentNullException.ThrowIfNull(settings);
        int classes = model.Config.NumClasses;
        settings.Validate(classes);
        if (split.ClassNames.Count != classes)
        {
            throw new ArgumentException($"The data set has {split.ClassNames.Count} classes but the model {classes}; use the data the model was trained on.");
        }
        int channels = model.Config.InChannels;
        int count = limit > 0 ? Math.Min(limit, split.Count) : split.Count;
        if (count == 0)
        {
            throw new ArgumentException($"Split '{split.Name}' has no images to attack.");
        }
        int[] imageShape = [channels, split.Height, split.Width];
        int per = channels * split.Height * split.Width;

        using var classifier = new ResNetClassifier(model);
        using var crossEntropy = new CrossEntropyObjective(classifier); // its device buffers serve every batch
        GaussianMixture[][]? mixtures = null;
        if (settings.Attack == AttackKind.Hfc)
        {
            mixtures = FitStageMixtures(classifier, gmmSplit ?? throw new ArgumentException("HFC needs clean features to fit its mixtures: give the split to fit them on."),
                settings, gmmLimit, cancellationToken);
        }

        var adversarial = new float[(long)count * per];
        var labels = new int[count];
        var targets = settings.Targeted ? new int[count] : null;
        var predClean = new int[count];
        var predAdv = new int[count];
        var success = new bool[count];
        var linf = new float[count];
        var l2 = new float[count];
        int batches = (count + settings.BatchSize - 1) / settings.BatchSize;
        for (int b = 0; b < batches; b++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int start = b * settings.BatchSize;
            int n = Math.Min(settings.BatchSize, count - start);
            int[] indices = Enumerable.Range(start, n).ToArray();
            var images = new float[n * per];
            split.CopyImages(indices, images, channels);
            var batchLabels = new int[n];
            split.CopyLabels(indices, batchLabels);
            int[] shape = [n, .. imageShape];
            AttackGoal goal = AttackGoal.Untargeted(batchLabels);
            if (settings.Targeted)
            {
                goal = AttackGoal.Targeted(batchLabels, ChooseTargets(classifier, images, shape, batchLabels, settings.Target));
            }
            var stepProgress = progress is null ? null : new Progress<AttackProgress>(p => progress.Report(new AttackSetProgress(b, batches, start, p)));
            AttackResult result = settings.Attack switch
            {
                AttackKind.Fgsm => Fgsm.Run(crossEntropy, images, shape, goal, settings.Epsilon, cancellationToken),
                AttackKind.Pgd => Pgd.Run(crossEntropy, images, shape, goal, settings.Pgd, stepProgress, cancellationToken),
                AttackKind.Cw => CarliniWagnerL2.Run(classifier, images, shape, goal, settings.CarliniWagner, stepProgress, cancellationToken),
                _ => AdaptiveAttacks.Hfc(classifier, mixtures!, images, shape, goal, settings.Pgd, settings.Lambda, AdaptiveLoss.CrossEntropy, settings.Kappa, stepProgress, cancellationToken),
            };
            Array.Copy(result.Adversarial, 0, adversarial, (long)start * per, (long)n * per);
            Array.Copy(batchLabels, 0, labels, start, n);
            if (targets is not null)
            {
                Array.Copy(goal.Targets!, 0, targets, start, n);
            }
            Array.Copy(result.PredClean, 0, predClean, start, n);
            Array.Copy(result.PredAdv, 0, predAdv, start, n);
            Array.Copy(result.Success, 0, success, start, n);
            Array.Copy(result.Linf, 0, linf, start, n);
            Array.Copy(result.L2, 0, l2, start, n);
            progress?.Report(new AttackSetProgress(b + 1, batches, start + n, null));
        }
        return new AttackSetResult
        {
            Settings = settings,
            ImageShape = imageShape,
            Indices = Enumerable.Range(0, count).ToArray(),
            Adversarial = adversarial,
            Labels = labels,
            Targets = targets,
            PredClean = predClean,
            PredAdv = predAdv,
            Success = success,
            Linf = linf,
            L2 = l2,
        };
    }

    /// <summary>The given target (the next class for an image already of it), else the most likely other class at the clean image.</summary>
    private static int[] ChooseTargets(IDifferentiableClassifier classifier, float[] images, int[] shape, int[] labels, int? target)
    {
        int n = labels.Length;
        int k = classifier.NumClasses;
        if (target is int t)
        {
            return labels.Select(l => l == t ? (t + 1) % k : t).ToArray();
        }
        float[] logits = classifier.Logits(images, shape);
        return Enumerable.Range(0, n).Select(i => AttackMath.MaxOther(logits.AsSpan(i * k, k), labels[i]).Index).ToArray();
    }

    /// <summary>
    /// One mixture per stage and class, fitted on the pooled stage features of the correctly
    /// classified clean images of <paramref name="split"/>: up to <paramref name="limit"/> images
    /// (0 = all) drawn by a seeded shuffle, since a split file may be ordered by class.
    /// </summary>
    public static GaussianMixture[][] FitStageMixtures(IFeatureTapClassifier classifier, DatasetSplit split, AttackSettings settings, int limit, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(classifier);
        ArgumentNullException.ThrowIfNull(split);
        int classes = classifier.NumClasses;
        int count = limit > 0 ? Math.Min(limit, split.Count) : split.Count;
        int channels = classifier.InChannels;
        int per = channels * split.Height * split.Width;
        var widths = classifier.StageWidths;
        var rows = widths.Select(_ => Enumerable.Range(0, classes).Select(_ => new List<float>()).ToArray()).ToArray();
        int[] order = new MiniBatches(split.Count, settings.BatchSize, settings.Seed, shuffle: true).Permutation(0);
        for (int start = 0; start < count; start += settings.BatchSize)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int n = Math.Min(settings.BatchSize, count - start);
            int[] indices = order.AsSpan(start, n).ToArray();
            var images = new float[n * per];
            split.CopyImages(indices, images, channels);
            var labels = new int[n];
            split.CopyLabels(indices, labels);
            var (logits, pools) = classifier.Forward(images, [n, channels, split.Height, split.Width]);
            int[] predicted = Accuracy.ArgMax(logits, n, classes);
            for (int i = 0; i < n; i++)
            {
                if (predicted[i] != labels[i])
                {
                    continue;
                }
                for (int s = 0; s < widths.Count; s++)
                {
                    rows[s][labels[i]].AddRange(pools[s].AsSpan(i * widths[s], widths[s]).ToArray());
                }
            }
        }
        var result = new GaussianMixture[widths.Count][];
        for (int s = 0; s < widths.Count; s++)
        {
            result[s] = new GaussianMixture[classes];
            for (int c = 0; c < classes; c++)
            {
                int m = rows[s][c].Count / widths[s];
                if (m < Math.Max(2, settings.GmmComponents))
                {
                    throw new ArgumentException($"Class {c} has {m} correctly classified clean images in split '{split.Name}'; at least {Math.Max(2, settings.GmmComponents)} are needed to fit its mixtures. Use more images or another split.");
                }
                var options = new GaussianMixtureOptions { Components = settings.GmmComponents, CovarianceType = settings.GmmCovariance, Seed = settings.Seed };
                result[s][c] = new GaussianMixture(options).Fit(rows[s][c].ToArray(), m, widths[s], cancellationToken: cancellationToken);
            }
        }
        return result;
    }
}
