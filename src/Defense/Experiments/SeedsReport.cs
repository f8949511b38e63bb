using System.Globalization;
using System.Text;

namespace IlgpuOct.Defense.Experiments;

/// <summary>A table of the multi-seed report, rendered to Markdown (results.md) and HTML (results.html) alike.</summary>
public sealed record ReportTable(string Id, string Title, string Caption, IReadOnlyList<string> Header, IReadOnlyList<IReadOnlyList<string>> Rows);

/// <summary>The tables of a multi-seed run (every cell mean +- sd over seeds) and results.md.</summary>
public static class SeedsReport
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    /// <summary>"85.2 % +- 1.3" (percent) or "0.812 +- 0.020"; the sd is left out for one seed.</summary>
    public static string Format(SeedStat s, bool percent)
    {
        if (double.IsNaN(s.Mean))
        {
            return "-";
        }
        string mean = percent ? (100 * s.Mean).ToString("F1", Inv) + " %" : s.Mean.ToString("F3", Inv);
        return double.IsNaN(s.Sd) ? mean : mean + " ± " + (percent ? (100 * s.Sd).ToString("F1", Inv) : s.Sd.ToString("F3", Inv));
    }

    /// <summary>"12.3 ± 4.5" for counts and seconds.</summary>
    public static string FormatCount(SeedStat s) => double.IsNaN(s.Mean) ? "-"
        : double.IsNaN(s.Sd) ? s.Mean.ToString("F1", Inv) : string.Create(Inv, $"{s.Mean:F1} ± {s.Sd:F1}");

    public static string FormatClaim(Claim c, bool percent) => percent
        ? string.Create(Inv, $"{100 * c.Estimate:F1} % [{100 * c.Low:F1}, {100 * c.High:F1}]")
        : string.Create(Inv, $"{c.Estimate:F3} [{c.Low:F3}, {c.High:F3}]");

    public static IReadOnlyList<ReportTable> Tables(SeedsSummary s, ReproduceProfile p)
    {
        ArgumentNullException.ThrowIfNull(s);
        ArgumentNullException.ThrowIfNull(p);
        var tables = new List<ReportTable>();
        string seeds = $"mean ± sd over seeds {string.Join(", ", s.Seeds)}";
        tables.Add(new ReportTable("models", "Models", $"Clean accuracy, {seeds}.", ["mode", "clean test accuracy", "accuracy on attacked subset", "train s", "status"],
            [.. s.Models.Select(m => (IReadOnlyList<string>)[m.Mode, Format(m.CleanTestAccuracy, true), Format(m.CleanAttackSubsetAccuracy, true),
                FormatCount(m.TrainSeconds), m.Skipped ?? "trained"])]));

        var modes = s.Models.Where(m => m.Skipped is null).Select(m => m.Mode).ToList();
        tables.Add(new ReportTable("figure4", "Figure 4 data: accuracy under attack", $"Accuracy on the attacked test images, {seeds}.",
            ["attack", "parameter", .. modes],
            [.. s.Figure4.GroupBy(x => (x.Attack, x.Parameter, x.Value)).Select(g => (IReadOnlyList<string>)[g.Key.Attack,
                string.Create(Inv, $"{g.Key.Parameter} {g.Key.Value:G4}"), .. modes.Select(m => g.FirstOrDefault(x => x.Mode == m) is { } x ? Format(x.Accuracy, true) : "-")])]));

        var table1 = s.Detection.Where(x => x.Attack == "pgd" && Math.Abs(x.Epsilon - p.TableEpsilon) < 1e-9).ToList();
        tables.Add(new ReportTable("table1", string.Create(Inv, $"Table 1: detection of PGD eps {p.TableEpsilon}"),
            $"AUPRC per predicted class (successful adversarial images as positives, correctly classified clean images as negatives), {seeds}.",
            ["model", "detector", .. s.ClassNames.Select(c => $"AUPRC {c}"), "mean AUPRC", "AUROC", "# successful", "rejected"],
            [.. table1.Select(d => (IReadOnlyList<string>)[d.Mode, d.Detector, .. d.AuprcPerClass.Select(a => Format(a, false)), Format(d.AuprcMean, false),
                Format(d.Auroc, false), FormatCount(d.Successful), Format(d.SuccessfulRejected, true)])]));

        var detectorNames = s.Risk.Select(r => r.Detector).Where(d => d != "none").Distinct().ToList();
        tables.Add(new ReportTable("table2", "Table 2: risk without and with a detector (PGD)", $"Risk per image r = R / N (N = clean + adversarial attacked images), {seeds}.",
            ["model", "eps", "clean acc", "adv acc", "r(f)", .. detectorNames.Select(d => $"r(f,{d})")],
            [.. s.Risk.Where(x => x.Attack == "pgd").GroupBy(x => (x.Mode, x.Epsilon)).Select(g =>
            {
                var none = g.First(x => x.Detector == "none");
                return (IReadOnlyList<string>)[g.Key.Mode, g.Key.Epsilon.ToString("G4", Inv), Format(none.CleanAccuracy, true), Format(none.AdversarialAccuracy, true),
                    Format(none.RiskPerImage, false), .. detectorNames.Select(d => g.FirstOrDefault(x => x.Detector == d) is { } w ? Format(w.RiskPerImage, false) : "-")];
            })]));

        tables.Add(new ReportTable("system", "Attacks against the whole system",
            $"System-level success = misclassified and accepted by the detector, over all attacked images (no detector: the adversarial error rate); adaptive attacks at the lambda their sweep chose; {seeds}.",
            ["model", "attack", "eps", "lambda (per seed)", "no detector", .. detectorNames],
            [.. s.Risk.Where(x => x.Detector == "none").Select(none => (IReadOnlyList<string>)[none.Mode, none.Attack, none.Epsilon.ToString("G4", Inv),
                Lambdas(s, none.Mode, none.Attack, none.Epsilon, p), Format(new SeedStat(1 - none.AdversarialAccuracy.Mean, none.AdversarialAccuracy.Sd, none.AdversarialAccuracy.Seeds), true),
                .. detectorNames.Select(d => s.Detection.FirstOrDefault(x => x.Mode == none.Mode && x.Attack == none.Attack && x.Epsilon == none.Epsilon && x.Detector == d)
                    is { } row ? Format(row.SystemSuccess, true) : "-")])]));

        if (s.LambdaChoices.Count > 0)
        {
            var lambdas = s.LambdaChoices[0].Lambdas;
            tables.Add(new ReportTable("lambda", "Lambda sweep of the adaptive attacks",
                $"System-level success against the attacked detector on {s.LambdaChoices[0].HeldOutImages} held-out test images (outside the attacked subset), per seed; the first best lambda is used on the attacked images.",
                ["seed", "model", "attack", "eps", "detector", .. lambdas.Select(l => $"λ = {l.ToString("G4", Inv)}"), "chosen"],
                [.. s.LambdaChoices.Select(c => (IReadOnlyList<string>)[c.Seed.ToString(Inv), c.Mode, c.Attack, c.Epsilon.ToString("G4", Inv), c.Detector,
                    .. c.SystemSuccess.Select(v => v.ToString("P1", Inv)), c.Chosen.ToString("G4", Inv)])]));
        }

        tables.Add(new ReportTable("claims", "Which claims hold",
            $"Estimate = mean over seeds; interval = 95 % percentile bootstrap over seeds and test images ({Claims.Resamples} resamples).",
            ["claim", "statistic", "estimate [95 % interval]", "verdict", "rule"],
            [.. s.Claims.Select(c => (IReadOnlyList<string>)[c.Statement, c.Statistic, FormatClaim(c, !c.Statistic.Contains("r(f", StringComparison.Ordinal)), c.Verdict, c.Rule])]));
        return tables;
    }

    private static string Lambdas(SeedsSummary s, string mode, string attack, double eps, ReproduceProfile p)
    {
        if (attack is "pgd" or "fgsm" or "cw-l2")
        {
            return "-";
        }
        var chosen = s.LambdaChoices.Where(c => c.Mode == mode && c.Attack == attack && c.Epsilon == eps).Select(c => c.Chosen.ToString("G4", Inv)).ToList();
        return chosen.Count > 0 ? string.Join(", ", chosen) : p.AdaptiveLambdas[0].ToString("G4", Inv);
    }

    public static string Markdown(SeedsSummary s, ReproduceProfile p)
    {
        ArgumentNullException.ThrowIfNull(s);
        var sb = new StringBuilder();
        sb.Append("# Reproduction: classification or detection? (Li, Pan, Zhu)\n\n");
        sb.Append(Inv, $"Profile **{s.Profile}**, seeds {string.Join(", ", s.Seeds)} (folders {string.Join(", ", s.SeedFolders)}), data {s.DataSource}.\n\n");
        sb.Append(Inv, $"Wall time {s.WallSeconds:F0} s, process CPU time {s.CpuSeconds:F0} s on {s.Machine.LogicalCores} logical cores ({s.Machine.Processor}; {s.Machine.Os}; {s.Machine.Runtime}; device {s.Machine.Device}");
        sb.Append(s.Machine.LoadAverage is { } load ? string.Create(Inv, $"; load average {load:F1} at the end") : "").Append(").\n");
        foreach (var table in Tables(s, p))
        {
            sb.Append("\n## ").Append(table.Title).Append("\n\n").Append(table.Caption).Append("\n\n");
            sb.Append("| ").Append(string.Join(" | ", table.Header)).Append(" |\n|");
            sb.Append(string.Concat(table.Header.Select(_ => "---|"))).Append('\n');
            foreach (var row in table.Rows)
            {
                sb.Append("| ").Append(string.Join(" | ", row.Select(c => c.Replace("|", "\\|", StringComparison.Ordinal)))).Append(" |\n");
            }
        }
        if (s.Notes.Count > 0)
        {
            sb.Append("\n## Notes\n\n");
            foreach (string note in s.Notes)
            {
                sb.Append("- ").Append(note).Append('\n');
            }
        }
        sb.Append("\nEach seed's own report (protocol, tables, findings): ").Append(string.Join(", ", s.SeedFolders.Select(f => $"{f}/{Reproduce.ResultsMarkdown}"))).Append(".\n");
        return sb.ToString();
    }
}
