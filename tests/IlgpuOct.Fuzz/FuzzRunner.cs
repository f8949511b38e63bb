using System.Diagnostics;
using System.Text.RegularExpressions;
using IlgpuOct.Defense.Attacks;
using IlgpuOct.Defense.Detection;
using IlgpuOct.Defense.Density;
using IlgpuOct.Kernels;
using IlgpuOct.Nn;
using IlgpuOct.Nn.Checkpoints;
using IlgpuOct.Nn.Data;
using IlgpuOct.Nn.IO;

namespace IlgpuOct.Fuzz;

/// <summary>Settings of a fuzzing run.</summary>
public sealed record FuzzOptions
{
    /// <summary>Mutated inputs per reader.</summary>
    public int InputsPerTarget { get; init; } = 100;

    public int Seed { get; init; } = 1;

    /// <summary>An input that runs longer than this is a hang.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(20);

    /// <summary>Every n-th input is also run through the CLI verb that reads it (0 = never).</summary>
    public int CliEvery { get; init; } = 10;

    /// <summary>Where failing inputs are kept (null: a temporary folder, deleted).</summary>
    public string? KeepFailuresIn { get; init; }

    /// <summary>Only these targets (null: all).</summary>
    public IReadOnlyCollection<string>? Targets { get; init; }
}

/// <summary>One input the oracle rejected: a crash (an exception other than the format exception), a hang, or a CLI run with a trace or no clean error line.</summary>
public sealed record FuzzFinding(string Target, int Input, string Kind, string Detail, string? SavedAs);

/// <summary>Counts per target and the findings.</summary>
public sealed record FuzzReport(IReadOnlyDictionary<string, FuzzCounts> Counts, IReadOnlyList<FuzzFinding> Findings)
{
    public int Inputs => Counts.Values.Sum(c => c.Inputs);

    public int CliRuns => Counts.Values.Sum(c => c.CliRuns);

    public string Describe() =>
        string.Join("\n", Counts.Select(c => $"{c.Key,-22} inputs {c.Value.Inputs,6}  accepted {c.Value.Accepted,6}  refused {c.Value.Refused,6}  cli runs {c.Value.CliRuns,5}  findings {c.Value.Findings}"))
        + $"\ntotal: {Inputs} inputs, {CliRuns} CLI runs, {Findings.Count} findings (stack traces or unexpected exceptions), {Findings.Count(f => f.Kind == "hang")} hangs";
}

public sealed class FuzzCounts
{
    public int Inputs { get; set; }

    public int Accepted { get; set; }

    public int Refused { get; set; }

    public int CliRuns { get; set; }

    public int Findings { get; set; }
}

/// <summary>
/// Runs every reader on structure-aware mutations of valid files. The oracle: a reader returns or
/// throws <see cref="InvalidFileFormatException"/> (imports may also refuse an option combination with
/// an ArgumentException), within the timeout; the CLI exits with exactly one "error:" line on stderr,
/// no stack trace, and not the internal-error code.
/// </summary>
public static partial class FuzzRunner
{
    private sealed record Target(string Name, string Extension, Func<Random, byte[]>? Make, Action<Random, string>? MakeFolder, Action<string> Read,
        Func<string, string[]>? Cli, bool AllowsArgumentErrors = false);

    public static readonly string[] TargetNames =
        ["safetensors", "checkpoint", "detector-uad", "detector-mahalanobis", "detector-kde", "gmm", "adversarial", "dataset", "npz", "kermany"];

    public static FuzzReport Run(FuzzOptions options, IProgress<string>? progress = null)
    {
        string work = Path.Combine(Path.GetTempPath(), $"ilgpuoct-fuzz-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(work);
        try
        {
            using var accelerator = DeviceSelection.Open("cpu", out _);
            var seeds = SeedFiles.Create(accelerator, Path.Combine(work, "seeds"));
            var targets = Targets(accelerator, seeds, work).Where(t => options.Targets is null || options.Targets.Contains(t.Name)).ToList();
            var counts = new Dictionary<string, FuzzCounts>();
            var findings = new List<FuzzFinding>();
            foreach (var (target, index) in targets.Select((t, i) => (t, i)))
            {
                var count = counts[target.Name] = new FuzzCounts();
                for (int i = 0; i < options.InputsPerTarget; i++)
                {
                    var random = new Random(unchecked(options.Seed * 1_000_003 + index * 7919 + i));
                    string input = Path.Combine(work, $"{target.Name}-{i}{target.Extension}");
                    if (target.Make is not null)
                    {
                        File.WriteAllBytes(input, target.Make(random));
                    }
                    else
                    {
                        target.MakeFolder!(random, input);
                    }
                    count.Inputs++;
                    var (kind, detail) = Check(() => target.Read(input), options.Timeout, target.AllowsArgumentErrors);
                    if (kind == "accepted")
                    {
                        count.Accepted++;
                    }
                    else if (kind == "refused")
                    {
                        count.Refused++;
                    }
                    else
                    {
                        count.Findings++;
                        findings.Add(new FuzzFinding(target.Name, i, kind, detail, Keep(options, input, target, i)));
                    }
                    if (target.Cli is not null && options.CliEvery > 0 && i % options.CliEvery == 0)
                    {
                        count.CliRuns++;
                        var args = target.Cli(input);
                        var cli = CliOracle.Run(args, options.Timeout);
                        if (cli is { } problem)
                        {
                            count.Findings++;
                            findings.Add(new FuzzFinding(target.Name, i, "cli", $"ilgpuoct {string.Join(' ', args)}: {problem}", Keep(options, input, target, i)));
                        }
                    }
                    Remove(input);
                }
                progress?.Report($"{target.Name}: {count.Inputs} inputs, {count.Findings} findings");
            }
            return new FuzzReport(counts, findings);
        }
        finally
        {
            Remove(work);
        }
    }

    /// <summary>Runs a reader with a timeout and classifies the outcome.</summary>
    public static (string Kind, string Detail) Check(Action read, TimeSpan timeout, bool allowsArgumentErrors)
    {
        var task = Task.Factory.StartNew(read, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        try
        {
            if (!task.Wait(timeout))
            {
                return ("hang", $"still running after {timeout.TotalSeconds:F0} s");
            }
            return ("accepted", "");
        }
        catch (AggregateException aggregate)
        {
            var e = aggregate.InnerExceptions[0];
            if (e is InvalidFileFormatException || (allowsArgumentErrors && e is ArgumentException))
            {
                return MessageProblem(e.Message) is { } problem ? ("message", problem) : ("refused", "");
            }
            return ("crash", $"{e.GetType().Name}: {e.Message}\n{e.StackTrace}");
        }
    }

    /// <summary>A refusal's message must be one line and name what it refuses.</summary>
    private static string? MessageProblem(string message) =>
        message.Contains('\n', StringComparison.Ordinal) ? $"the message spans several lines: {message}" : null;

    private static IEnumerable<Target> Targets(Accelerator accelerator, SeedFiles seeds, string work)
    {
        string Out(string name) => Path.Combine(work, name);
        yield return new Target("safetensors", ".safetensors", r => SafeTensorsMutator.Mutate(r.Next(2) == 0 ? seeds.Checkpoint : seeds.Mixture, r),
            null, p => SafeTensorFile.Read(p), p => ["bench", "gmm", "--data", p, "--iters", "1", "--device", "cpu", "--threads", "1"]);
        yield return new Target("checkpoint", ".safetensors", r => SafeTensorsMutator.Mutate(seeds.Checkpoint, r), null,
            p => Checkpoint.Open(accelerator, p).Model.Dispose(),
            p => ["attack", "--model", p, "--data", seeds.DatasetPath, "--attack", "fgsm", "--limit", "2", "--device", "cpu", "--no-verify", "--out", Out("attack")]);
        foreach (var (name, bytes) in new[] { ("uad", seeds.Uad), ("mahalanobis", seeds.Mahalanobis), ("kde", seeds.Kde) })
        {
            yield return new Target($"detector-{name}", ".safetensors", r => SafeTensorsMutator.Mutate(bytes, r), null, p => FeatureDetector.Load(p),
                p => ["detect", "score", "--detector", p, "--model", seeds.CheckpointPath, "--data", seeds.DatasetPath, "--device", "cpu"]);
        }
        yield return new Target("gmm", ".safetensors", r => SafeTensorsMutator.Mutate(seeds.Mixture, r), null, p => GaussianMixture.Load(p), null);
        yield return new Target("adversarial", ".safetensors", r => SafeTensorsMutator.Mutate(seeds.Adversarial, r), null,
            p => AdversarialFile.Read(p, 1, SeedFiles.Classes),
            p => ["detect", "score", "--detector", seeds.DetectorPath, "--model", seeds.CheckpointPath, "--adv", p, "--device", "cpu"]);
        yield return new Target("dataset", ".dat", r => DatasetFileMutator.Mutate(seeds.Dataset, r), null, ReadDataset,
            p => ["data", "preview", "--data", p, "--out", Out("sheet.png"), "--per-class", "2"]);
        var pre = new Preprocess(16);
        yield return new Target("npz", ".npz", r => NpzMutator.Mutate(seeds.Npz, r), null,
            p => NpzImport.Import(p, new NpzImportOptions(pre, 0.25, 1)),
            p => ["data", "import", "--source", p, "--resolution", "16", "--unlabeled-fraction", "0.25", "--out", Out("npz.dat")], AllowsArgumentErrors: true);
        if (seeds.Jpegs.Count > 0)
        {
            var splits = new List<(string, int)> { ("train", 4), ("test", 4) };
            yield return new Target("kermany", "", null, (r, folder) => KermanyMutator.Materialize(folder, seeds.Jpegs, r),
                p => KermanyFolder.Import(p, new KermanyImportOptions(pre, splits, 1, Strict: false)),
                p => ["data", "import", "--source", p, "--resolution", "16", "--train", "4", "--unlabeled", "0", "--val", "0", "--test", "4", "--out", Out("k.dat")],
                AllowsArgumentErrors: true);
        }
    }

    /// <summary>Opens with the checksum check and touches everything a verb would: labels, pixels, a contact sheet.</summary>
    private static void ReadDataset(string path)
    {
        using var file = DatasetFile.Open(path, verifyChecksum: true);
        foreach (var split in file.Splits)
        {
            _ = split.ClassCounts();
            if (split.Count > 0)
            {
                var images = new float[split.Channels * split.Height * split.Width];
                split.CopyImages([split.Count - 1], images);
                _ = ContactSheet.Build(split, 2);
            }
        }
    }

    private static string? Keep(FuzzOptions options, string input, Target target, int index)
    {
        if (options.KeepFailuresIn is null || !File.Exists(input))
        {
            return null;
        }
        Directory.CreateDirectory(options.KeepFailuresIn);
        string kept = Path.Combine(options.KeepFailuresIn, $"{target.Name}-{index}{target.Extension}");
        File.Copy(input, kept, overwrite: true);
        return kept;
    }

    private static void Remove(string path)
    {
        try
        {
            if (Directory.Exists(path))
            {
                Directory.Delete(path, recursive: true);
            }
            else
            {
                File.Delete(path);
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
