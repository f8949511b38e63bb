using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json;
using IlgpuOct.Kernels;
using IlgpuOct.Nn.Training;

namespace IlgpuOct.Defense.Experiments;

/// <summary>Mean and sample standard deviation over seeds (NaN values left out; Sd is NaN for one seed).</summary>
public sealed record SeedStat(double Mean, double Sd, int Seeds)
{
    public static SeedStat Of(IEnumerable<double> values)
    {
        var v = values.Where(x => !double.IsNaN(x)).ToArray();
        if (v.Length == 0)
        {
            return new SeedStat(double.NaN, double.NaN, 0);
        }
        double mean = v.Average();
        double sd = v.Length < 2 ? double.NaN : Math.Sqrt(v.Sum(x => (x - mean) * (x - mean)) / (v.Length - 1));
        return new SeedStat(mean, sd, v.Length);
    }
}

public sealed record ModelAggregate(string Mode, string? Skipped, SeedStat CleanTestAccuracy, SeedStat CleanAttackSubsetAccuracy, SeedStat TrainSeconds);

public sealed record CurveAggregate(string Mode, string Attack, string Parameter, double Value, SeedStat Accuracy);

public sealed record DetectionAggregate(string Mode, string Attack, double Epsilon, string Detector, SeedStat Successful, SeedStat[] AuprcPerClass, SeedStat AuprcMean,
    SeedStat Auroc, SeedStat SuccessfulRejected, SeedStat CleanRejected, SeedStat SystemSuccess);

public sealed record RiskAggregate(string Mode, string Attack, double Epsilon, string Detector, SeedStat RiskPerImage, SeedStat CleanAccuracy, SeedStat AdversarialAccuracy);

/// <summary>The machine a run was made on (the report's protocol section).</summary>
public sealed record MachineInfo(string Os, string Processor, int LogicalCores, string Runtime, string Device, double? LoadAverage)
{
    public static MachineInfo Describe(Accelerator accelerator)
    {
        string processor = RuntimeInformation.ProcessArchitecture.ToString();
        double? load = null;
        try
        {
            if (File.Exists("/proc/cpuinfo"))
            {
                processor = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? processor;
            }
            if (File.Exists("/proc/loadavg"))
            {
                load = double.Parse(File.ReadAllText("/proc/loadavg").Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
            }
        }
        catch (IOException)
        {
            // The description is informative only; a machine without /proc keeps the defaults.
        }
        return new MachineInfo(RuntimeInformation.OSDescription, processor, Environment.ProcessorCount, RuntimeInformation.FrameworkDescription,
            accelerator.ToString() ?? "", load);
    }
}

/// <summary>Everything a multi-seed run reports: the tables as mean +- sd over seeds, lambda choices, the claims with intervals.</summary>
public sealed record SeedsSummary(
    string Profile,
    IReadOnlyList<int> Seeds,
    IReadOnlyList<string> SeedFolders,
    string DataSource,
    IReadOnlyList<string> ClassNames,
    MachineInfo Machine,
    double WallSeconds,
    double CpuSeconds,
    IReadOnlyList<ModelAggregate> Models,
    IReadOnlyList<CurveAggregate> Figure4,
    IReadOnlyList<DetectionAggregate> Detection,
    IReadOnlyList<RiskAggregate> Risk,
    IReadOnlyList<LambdaChoice> LambdaChoices,
    IReadOnlyList<Claim> Claims,
    IReadOnlyList<string> Notes);

/// <summary>
/// <c>reproduce</c> over several seeds: each seed is a full <see cref="Reproduce.Run"/> in its own
/// folder (seed-S; its own synthetic data, initialisation, batches and attacked images); the run
/// folder then gets results.json / results.md / results.html / figure4.svg over all of them.
/// </summary>
public static class ReproduceSeeds
{
    public const string ResultsHtml = "results.html";

    public static string SeedFolder(int seed) => $"seed-{seed}";

    public static SeedsSummary Run(Accelerator accelerator, ReproduceOptions options, IReadOnlyList<int> seeds, IProgress<ReproduceProgress>? progress = null,
        IProgress<TrainingProgress>? trainingProgress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(seeds);
        if (seeds.Count == 0 || seeds.Distinct().Count() != seeds.Count)
        {
            throw new ArgumentException($"Give one or more distinct seeds (got {string.Join(",", seeds)}).");
        }
        var clock = Stopwatch.StartNew();
        string outDir = Path.GetFullPath(options.OutputDirectory);
        var perSeed = new List<ReproduceResults>();
        foreach (int seed in seeds)
        {
            var seedProgress = progress is null ? null
                : new RelayProgress<ReproduceProgress>(p => progress.Report(p with { What = $"seed {seed}: {p.What}" }));
            perSeed.Add(Reproduce.Run(accelerator, options with { Seed = seed, OutputDirectory = Path.Combine(outDir, SeedFolder(seed)) }, seedProgress,
                trainingProgress, cancellationToken));
        }
        var summary = Summarise(options.Profile, perSeed, MachineInfo.Describe(accelerator), clock.Elapsed.TotalSeconds);
        Write(outDir, options.Profile, summary, perSeed);
        return summary;
    }

    public static SeedsSummary Summarise(ReproduceProfile profile, IReadOnlyList<ReproduceResults> perSeed, MachineInfo machine, double wallSeconds)
    {
        ArgumentNullException.ThrowIfNull(profile);
        ArgumentNullException.ThrowIfNull(perSeed);
        var first = perSeed[0];
        var models = first.Models.Select(m => new ModelAggregate(m.Mode, m.Skipped,
            SeedStat.Of(perSeed.Select(r => r.Models.First(x => x.Mode == m.Mode).CleanTestAccuracy)),
            SeedStat.Of(perSeed.Select(r => r.Models.First(x => x.Mode == m.Mode).CleanAttackSubsetAccuracy)),
            SeedStat.Of(perSeed.Select(r => r.Models.First(x => x.Mode == m.Mode).TrainSeconds)))).ToList();
        var curve = perSeed.SelectMany(r => r.Figure4).GroupBy(p => (p.Mode, p.Attack, p.Parameter, p.Value))
            .Select(g => new CurveAggregate(g.Key.Mode, g.Key.Attack, g.Key.Parameter, g.Key.Value, SeedStat.Of(g.Select(p => p.Accuracy)))).ToList();
        int k = first.ClassNames.Count;
        var detection = perSeed.SelectMany(r => r.Detection).GroupBy(d => (d.Mode, d.Attack, d.Epsilon, d.Detector))
            .Select(g => new DetectionAggregate(g.Key.Mode, g.Key.Attack, g.Key.Epsilon, g.Key.Detector, SeedStat.Of(g.Select(d => (double)d.Successful)),
                [.. Enumerable.Range(0, k).Select(c => SeedStat.Of(g.Select(d => d.AuprcPerClass[c] ?? double.NaN)))],
                SeedStat.Of(g.Select(d => d.AuprcMean ?? double.NaN)), SeedStat.Of(g.Select(d => d.AurocPooled ?? double.NaN)),
                SeedStat.Of(g.Select(d => d.SuccessfulRejected)), SeedStat.Of(g.Select(d => d.CleanRejected)), SeedStat.Of(g.Select(d => d.SystemSuccess)))).ToList();
        var risk = perSeed.SelectMany(r => r.Risk).GroupBy(x => (x.Mode, x.Attack, x.Epsilon, x.Detector))
            .Select(g => new RiskAggregate(g.Key.Mode, g.Key.Attack, g.Key.Epsilon, g.Key.Detector, SeedStat.Of(g.Select(x => x.RiskPerImage)),
                SeedStat.Of(g.Select(x => x.CleanAccuracy)), SeedStat.Of(g.Select(x => x.AdversarialAccuracy)))).ToList();
        var notes = perSeed.SelectMany(r => r.Notes).Distinct().ToList();
        return new SeedsSummary(profile.Name, [.. perSeed.Select(r => r.Seed)], [.. perSeed.Select(r => SeedFolder(r.Seed))], first.DataSource, first.ClassNames, machine,
            wallSeconds, perSeed.Sum(r => r.CpuSeconds), models, curve, detection, risk, [.. perSeed.SelectMany(r => r.LambdaChoices)],
            Claims.Judge(profile, perSeed), notes);
    }

    private static void Write(string outDir, ReproduceProfile profile, SeedsSummary summary, IReadOnlyList<ReproduceResults> perSeed)
    {
        AtomicFile.WriteAllText(Path.Combine(outDir, Reproduce.ResultsJson), JsonSerializer.Serialize(summary, Reproduce.Json) + "\n");
        string figure4 = Figure4Svg.Render(perSeed.SelectMany(r => r.Figure4).ToList());
        AtomicFile.WriteAllText(Path.Combine(outDir, Reproduce.Figure4SvgName), figure4);
        AtomicFile.WriteAllText(Path.Combine(outDir, Reproduce.ResultsMarkdown), SeedsReport.Markdown(summary, profile));
        AtomicFile.WriteAllText(Path.Combine(outDir, ResultsHtml), ResultsHtmlPage.Render(summary, profile, perSeed, outDir, figure4));
    }

    /// <summary>Reports on the calling thread (Progress&lt;T&gt; would post to the thread pool).</summary>
    private sealed class RelayProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
