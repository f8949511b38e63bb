using System.Text.Json;
using FluentAssertions;
using IlgpuOct.Defense.Experiments;
using IlgpuOct.Kernels;
using Xunit;

namespace IlgpuOct.Tests.Defense;

public sealed class ReproduceTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), $"ilgpuoct-repro-{Guid.NewGuid():N}");

    public void Dispose()
    {
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, true);
        }
    }

    [Fact]
    public void Micro_profile_writes_consistent_tables_end_to_end()
    {
        var profile = ReproduceProfile.Micro;
        using var acc = DeviceSelection.Open("cpu", out _);
        var stages = new List<ReproduceProgress>();
        var results = Reproduce.Run(acc, new ReproduceOptions { Profile = profile, OutputDirectory = _dir, Seed = 1 }, new SyncProgress<ReproduceProgress>(stages.Add));

        foreach (string file in new[] { "config.json", "data.dat", Reproduce.ResultsJson, Reproduce.ResultsMarkdown, Reproduce.Figure4Csv, Reproduce.Figure4SvgName })
        {
            File.Exists(Path.Combine(_dir, file)).Should().BeTrue(file);
        }
        foreach (string mode in profile.Modes)
        {
            File.Exists(Path.Combine(_dir, "models", mode, "metrics.jsonl")).Should().BeTrue(mode);
            File.Exists(Path.Combine(_dir, "models", mode, "last.safetensors")).Should().BeTrue(mode);
        }
        stages.Select(s => s.What).Should().Contain(["train nt", "train ssat", "report"]);
        Directory.GetFiles(_dir, "*.tmp*", SearchOption.AllDirectories).Should().BeEmpty("every file is written atomically");

        // The JSON on disk is the returned result.
        using (var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(_dir, Reproduce.ResultsJson))))
        {
            doc.RootElement.GetProperty("figure4").GetArrayLength().Should().Be(results.Figure4.Count);
            doc.RootElement.GetProperty("risk").GetArrayLength().Should().Be(results.Risk.Count);
        }

        int attacked = Math.Min(profile.AttackImages, profile.TestImages);
        int adaptiveAttacks = 1 + Reproduce.DetectorNames.Length; // hfc + density-pgd per detector
        results.Models.Should().HaveCount(profile.Modes.Count).And.OnlyContain(m => m.Skipped == null);
        // Figure 4: one point per model, attack and strength.
        int perModel = profile.FgsmEpsilons.Count + profile.PgdEpsilons.Count + profile.CwConstants.Count + profile.AdaptiveEpsilons.Count * adaptiveAttacks;
        results.Figure4.Should().HaveCount(profile.Modes.Count * perModel);
        results.Figure4.Should().OnlyContain(p => p.Attacked == attacked && p.Accuracy >= 0 && p.Accuracy <= 1 && p.Successful <= attacked);
        File.ReadAllLines(Path.Combine(_dir, Reproduce.Figure4Csv)).Should().HaveCount(1 + results.Figure4.Count);
        string svg = File.ReadAllText(Path.Combine(_dir, Reproduce.Figure4SvgName));
        System.Xml.Linq.XDocument.Parse(svg).Root!.Name.LocalName.Should().Be("svg");
        svg.Split("<polyline").Length.Should().Be(1 + profile.Modes.Count * 3, "one line per model in each of the FGSM, PGD and C&W panels");

        foreach (var m in results.Models)
        {
            // Clean accuracy on the subset agrees with the risk rows' counts.
            var none = results.Risk.Where(r => r.Mode == m.Mode && r.Detector == "none").ToList();
            none.Should().NotBeEmpty();
            foreach (var r in none)
            {
                r.Counts.Clean.Should().Be(attacked);
                r.Counts.Adversarial.Should().Be(attacked);
                r.Counts.CleanRejected.Should().Be(0, "without a detector nothing is rejected");
                r.Counts.CleanAcceptedWrong.Should().Be((int)Math.Round((1 - m.CleanAttackSubsetAccuracy) * attacked));
                r.Counts.AdversarialAcceptedWrong.Should().Be((int)Math.Round((1 - r.AdversarialAccuracy) * attacked));
                r.Risk.Should().Be(r.Counts.CleanAcceptedWrong + r.Counts.AdversarialAcceptedWrong);
            }
            foreach (var r in results.Risk.Where(r => r.Mode == m.Mode && r.Detector != "none"))
            {
                var baseline = none.Single(x => x.Attack == r.Attack && x.Epsilon == r.Epsilon);
                (r.Counts.CleanAcceptedWrong + r.Counts.CleanRejected).Should().BeLessThanOrEqualTo(attacked);
                r.Counts.CleanAcceptedWrong.Should().BeLessThanOrEqualTo(baseline.Counts.CleanAcceptedWrong, "a detector only removes images");
                r.Counts.AdversarialAcceptedWrong.Should().BeLessThanOrEqualTo(baseline.Counts.AdversarialAcceptedWrong);
                r.RiskPerImage.Should().BeApproximately(r.Risk / (2.0 * attacked), 1e-12);
            }
        }

        // Table 1 / detection rows: every detector judged on plain PGD at each risk eps and on every adaptive attack.
        foreach (string detector in Reproduce.DetectorNames)
        {
            results.Detection.Count(d => d.Detector == detector).Should().Be(profile.Modes.Count * (profile.RiskEpsilons.Count + profile.AdaptiveEpsilons.Count * adaptiveAttacks));
        }
        foreach (var d in results.Detection)
        {
            d.SuccessfulPerClass.Should().HaveCount(results.ClassNames.Count);
            d.SuccessfulPerClass.Sum().Should().Be(d.Successful);
            var point = results.Figure4.Single(p => p.Mode == d.Mode && p.Value == d.Epsilon && (p.Attack == d.Attack || (d.Attack == "pgd" && p.Attack == $"pgd-{profile.PgdSteps}")));
            d.Successful.Should().Be(point.Successful, "the detection rows and the curve count the same successful images");
            if (d.Successful > 0 && !double.IsNaN(d.SuccessfulRejected))
            {
                d.SuccessfulRejected.Should().BeInRange(0, 1);
            }
        }

        string md = File.ReadAllText(Path.Combine(_dir, Reproduce.ResultsMarkdown));
        md.Should().Contain("## Table 1").And.Contain("## Table 2").And.Contain("## Figure 4").And.Contain("## Which claims hold");
        string table1 = md[md.IndexOf("## Table 1", StringComparison.Ordinal)..md.IndexOf("## Table 2", StringComparison.Ordinal)];
        string header = table1.Split('\n').First(l => l.StartsWith("| model", StringComparison.Ordinal));
        foreach (string c in results.ClassNames)
        {
            header.Should().Contain($"AUPRC {c}").And.Contain($"# adv {c}");
        }
        table1.Split('\n').Count(l => l.StartsWith("| ", StringComparison.Ordinal) && !l.StartsWith("| model", StringComparison.Ordinal))
            .Should().Be(profile.Modes.Count * Reproduce.DetectorNames.Length);
        string table2 = md[md.IndexOf("## Table 2", StringComparison.Ordinal)..md.IndexOf("## Every detector", StringComparison.Ordinal)];
        table2.Split('\n').Count(l => l.StartsWith("| ", StringComparison.Ordinal) && !l.StartsWith("| model", StringComparison.Ordinal))
            .Should().Be(profile.Modes.Count * profile.RiskEpsilons.Count);
        results.Findings.Should().NotBeEmpty();
    }

    [Fact]
    public void A_rerun_in_the_same_folder_continues_from_the_checkpoints()
    {
        var profile = ReproduceProfile.Micro with { Modes = ["nt"], AdaptiveEpsilons = [], CwConstants = [] };
        using var acc = DeviceSelection.Open("cpu", out _);
        var first = Reproduce.Run(acc, new ReproduceOptions { Profile = profile, OutputDirectory = _dir, Seed = 2 });
        var second = Reproduce.Run(acc, new ReproduceOptions { Profile = profile, OutputDirectory = _dir, Seed = 2 });
        second.Figure4.Should().BeEquivalentTo(first.Figure4, "the same checkpoint and seeds give the same attacks");
        second.Models[0].CleanTestAccuracy.Should().Be(first.Models[0].CleanTestAccuracy);
    }

    [Fact]
    public void Cancellation_stops_the_run()
    {
        using var acc = DeviceSelection.Open("cpu", out _);
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        var act = () => Reproduce.Run(acc, new ReproduceOptions { Profile = ReproduceProfile.Micro, OutputDirectory = _dir }, null, null, cts.Token);
        act.Should().Throw<OperationCanceledException>();
    }

    private sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }

    [Fact]
    public void Attack_subset_is_class_balanced_even_when_the_split_is_sorted_by_class()
    {
        Directory.CreateDirectory(_dir);
        string path = Path.Combine(_dir, "sorted.dat");
        int[] labels = [.. Enumerable.Repeat(0, 30), .. Enumerable.Repeat(1, 10)];
        var content = new IlgpuOct.Nn.Data.DatasetContent(1, 4, 4, ["a", "b"], "sorted", [new IlgpuOct.Nn.Data.SplitData("test", new byte[40 * 16], labels)]);
        IlgpuOct.Nn.Data.DatasetFile.Write(path, content);
        using var file = IlgpuOct.Nn.Data.DatasetFile.Open(path);
        int[] subset = Reproduce.AttackSubset(file.Split("test"), 16, 3);
        subset.Should().HaveCount(16).And.OnlyHaveUniqueItems().And.BeInAscendingOrder();
        subset.Count(i => labels[i] == 1).Should().Be(8);
        Reproduce.AttackSubset(file.Split("test"), 16, 3).Should().Equal(subset, "the sample is seeded");
        Reproduce.AttackSubset(file.Split("test"), 100, 3).Should().HaveCount(40, "asking for more than the split gives the whole split");
    }
}
