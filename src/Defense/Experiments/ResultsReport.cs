using System.Globalization;
using System.Text;
using IlgpuOct.Nn.Data;

namespace IlgpuOct.Defense.Experiments;

/// <summary>Plain statements about which of the paper's claims the numbers of this run support.</summary>
public static class Findings
{
    /// <summary>A detector "rejects" an attack when it catches at least this fraction of the successful adversarial images at the calibrated threshold.</summary>
    public const double RejectsFraction = 0.8;

    public static IReadOnlyList<string> Derive(ReproduceProfile profile, IReadOnlyList<ModelSummary> models, IReadOnlyList<CurvePoint> curve,
        IReadOnlyList<DetectionRow> detection, IReadOnlyList<RiskRow> risk)
    {
        var lines = new List<string>();
        var inv = CultureInfo.InvariantCulture;
        float eps = profile.TableEpsilon;
        string pgd = $"pgd-{profile.PgdSteps}";
        double? Acc(string mode) => curve.FirstOrDefault(p => p.Mode == mode && p.Attack == pgd && Math.Abs(p.Value - eps) < 1e-9)?.Accuracy;
        var nt = Acc("nt");
        foreach (string mode in new[] { "gce", "at", "ssat" })
        {
            if (Acc(mode) is { } a && nt is { } b)
            {
                lines.Add(string.Create(inv, $"{mode.ToUpperInvariant()} vs NT under PGD eps {eps}: accuracy {a:P1} vs {b:P1} -> ") +
                    (a > b + 0.02 ? "more robust (claim holds here)." : a < b - 0.02 ? "LESS robust (claim does not hold here)." : "no clear difference (claim not supported here)."));
            }
        }
        if (Acc("ssat") is { } ssat && Acc("at") is { } at)
        {
            lines.Add(string.Create(inv, $"SSAT vs AT under PGD eps {eps}: {ssat:P1} vs {at:P1} -> ") +
                (ssat > at + 0.02 ? "SSAT better (holds)." : ssat < at - 0.02 ? "SSAT worse (does not hold)." : "no clear difference."));
        }
        var maxEps = profile.PgdEpsilons.Max();
        var robustAtMax = curve.Where(p => p.Attack == pgd && Math.Abs(p.Value - maxEps) < 1e-9).ToList();
        if (robustAtMax.Count > 0)
        {
            lines.Add(string.Create(inv, $"Classification alone at PGD eps {maxEps}: best accuracy {robustAtMax.Max(p => p.Accuracy):P1} ({robustAtMax.MaxBy(p => p.Accuracy)!.Mode}); ") +
                (robustAtMax.Max(p => p.Accuracy) < 0.5 ? "no model stays accurate, as the paper reports for larger eps." : "at least one model keeps half its accuracy."));
        }
        foreach (var group in detection.GroupBy(r => (r.Attack, r.Epsilon, r.Detector)).OrderBy(g => g.Key.Detector).ThenBy(g => g.Key.Attack).ThenBy(g => g.Key.Epsilon))
        {
            var rows = group.Where(r => r.Successful > 0).ToList();
            if (rows.Count == 0)
            {
                lines.Add(string.Create(inv, $"{group.Key.Detector} vs {group.Key.Attack} eps {group.Key.Epsilon}: no successful adversarial images, nothing to detect."));
                continue;
            }
            int total = rows.Sum(r => r.Successful);
            double rejected = rows.Sum(r => r.SuccessfulRejected * r.Successful) / total;
            double? auroc = rows.Where(r => r.AurocPooled.HasValue).Select(r => r.AurocPooled!.Value).DefaultIfEmpty(double.NaN).Average();
            string verdict = rejected >= RejectsFraction ? $"{group.Key.Detector.ToUpperInvariant()} rejects this attack (claim holds)"
                : rejected >= 0.5 ? $"{group.Key.Detector.ToUpperInvariant()} rejects only part of this attack"
                : $"{group.Key.Detector.ToUpperInvariant()} does NOT reject this attack";
            lines.Add(string.Create(inv, $"{group.Key.Detector} vs {group.Key.Attack} eps {group.Key.Epsilon}: {rejected:P0} of {total} successful adversarial images rejected (all models), mean AUROC {auroc:F3} -> {verdict}."));
        }
        foreach (var group in risk.Where(r => r.Detector != "none").GroupBy(r => (r.Attack, r.Epsilon, r.Detector)).Where(g => g.Key.Attack == "pgd"))
        {
            int lower = group.Count(r => r.Risk < risk.First(x => x.Mode == r.Mode && x.Attack == r.Attack && x.Epsilon == r.Epsilon && x.Detector == "none").Risk);
            lines.Add(string.Create(inv, $"Risk with {group.Key.Detector} under PGD eps {group.Key.Epsilon}: lower than without it for {lower} of {group.Count()} models."));
        }
        foreach (var group in risk.Where(r => r.Attack == "pgd").GroupBy(r => r.Epsilon))
        {
            var without = group.Where(r => r.Detector == "none").MinBy(r => r.RiskPerImage);
            var withUad = group.Where(r => r.Detector == "uad").MinBy(r => r.RiskPerImage);
            if (without is null || withUad is null)
            {
                continue;
            }
            lines.Add(string.Create(inv, $"Classification or detection at PGD eps {group.Key}: lowest r(f) without a detector {without.RiskPerImage:F3} ({without.Mode}), lowest r(f,UAD) {withUad.RiskPerImage:F3} ({withUad.Mode}) -> ") +
                (withUad.RiskPerImage < without.RiskPerImage - 0.01 ? "adding UAD lowers the risk below the most robust classifier (the paper's conclusion holds here)."
                    : "UAD does not lower the risk below the best classifier alone (the paper's conclusion does not hold here)."));
        }
        return lines;
    }
}

/// <summary>results.md and figure4.csv.</summary>
public static class ResultsReport
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    public static string Figure4Csv(IReadOnlyList<CurvePoint> curve)
    {
        var sb = new StringBuilder("mode,attack,parameter,value,attacked,accuracy,successful,mean_l2,mean_linf\n");
        foreach (var p in curve)
        {
            sb.Append(Inv, $"{p.Mode},{p.Attack},{p.Parameter},{p.Value:R},{p.Attacked},{p.Accuracy:R},{p.Successful},{p.MeanL2:R},{p.MeanLinf:R}\n");
        }
        return sb.ToString();
    }

    public static string Markdown(ReproduceResults r, ReproduceProfile p, DatasetFile data)
    {
        var sb = new StringBuilder();
        sb.Append("# Reproduction: classification or detection? (Li, Pan, Zhu)\n\n");
        sb.Append(Inv, $"Profile **{r.Profile}**, seed {r.Seed}, device {r.Device}, wall time {r.WallSeconds:F0} s.\n\n");
        sb.Append(Inv, $"Data: `{r.Data}` ({r.DataSource}); {data.Height}x{data.Width}, classes {string.Join(", ", r.ClassNames)}; splits {string.Join(", ", data.Splits.Select(s => $"{s.Name} {s.Count}"))}.\n\n");
        sb.Append("## Protocol of this run\n\n");
        foreach (string line in Protocol(r, p))
        {
            sb.Append("- ").Append(line).Append('\n');
        }
        sb.Append("\n## Models\n\n| mode | clean test accuracy | accuracy on attacked subset | train s | status |\n|---|---|---|---|---|\n");
        foreach (var m in r.Models)
        {
            sb.Append(Inv, $"| {m.Mode} | {P(m.CleanTestAccuracy)} | {P(m.CleanAttackSubsetAccuracy)} | {m.TrainSeconds:F0} | {m.Skipped ?? "trained"} |\n");
        }

        var modes = r.Models.Where(m => m.Skipped is null).Select(m => m.Mode).ToList();
        sb.Append("\n## Figure 4 data: accuracy under attack (also figure4.csv, figure4.svg)\n\n| attack | parameter | ").Append(string.Join(" | ", modes)).Append(" |\n|---|---|").Append(string.Concat(modes.Select(_ => "---|"))).Append('\n');
        foreach (var g in r.Figure4.GroupBy(x => (x.Attack, x.Parameter, x.Value)))
        {
            sb.Append(Inv, $"| {g.Key.Attack} | {g.Key.Parameter} {g.Key.Value:G4} | ");
            sb.Append(string.Join(" | ", modes.Select(m => g.FirstOrDefault(x => x.Mode == m) is { } x ? P(x.Accuracy) : "-"))).Append(" |\n");
        }

        sb.Append(Inv, $"\n## Table 1: detection of PGD eps {p.TableEpsilon} (AUPRC per predicted class, successful adversarial images as positives)\n\n");
        sb.Append("| model | detector | ").Append(string.Join(" | ", r.ClassNames.Select(c => $"AUPRC {c}"))).Append(" | mean AUPRC | AUROC | ")
            .Append(string.Join(" | ", r.ClassNames.Select(c => $"# adv {c}"))).Append(" | # adv | rejected |\n|---|---|")
            .Append(string.Concat(Enumerable.Repeat("---|", 2 * r.ClassNames.Count + 4))).Append('\n');
        foreach (var d in r.Detection.Where(x => x.Attack == "pgd" && Math.Abs(x.Epsilon - p.TableEpsilon) < 1e-9))
        {
            sb.Append(Inv, $"| {d.Mode} | {d.Detector} | {string.Join(" | ", d.AuprcPerClass.Select(F3))} | {F3(d.AuprcMean)} | {F3(d.AurocPooled)} | ");
            sb.Append(Inv, $"{string.Join(" | ", d.SuccessfulPerClass)} | {d.Successful} | {P(d.SuccessfulRejected)} |\n");
        }

        sb.Append("\n## Table 2: risk without and with a detector (PGD)\n\n| model | eps | clean acc | adv acc | R(f) | r(f) | R(f,UAD) | r(f,UAD) | N_cln_inc | N_cln_rej | N_adv_inc | r(f,Mahalanobis) | r(f,KDE) |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        foreach (var g in r.Risk.Where(x => x.Attack == "pgd").GroupBy(x => (x.Mode, x.Epsilon)))
        {
            var none = g.First(x => x.Detector == "none");
            var uad = g.FirstOrDefault(x => x.Detector == "uad");
            sb.Append(Inv, $"| {g.Key.Mode} | {g.Key.Epsilon:G4} | {P(none.CleanAccuracy)} | {P(none.AdversarialAccuracy)} | {none.Risk:F0} | {none.RiskPerImage:F3} | ");
            sb.Append(Inv, $"{uad?.Risk:F0} | {uad?.RiskPerImage:F3} | {uad?.Counts.CleanAcceptedWrong} | {uad?.Counts.CleanRejected} | {uad?.Counts.AdversarialAcceptedWrong} | ");
            sb.Append(Inv, $"{g.FirstOrDefault(x => x.Detector == "mahalanobis")?.RiskPerImage:F3} | {g.FirstOrDefault(x => x.Detector == "kde")?.RiskPerImage:F3} |\n");
        }

        sb.Append("\n## Every detector against plain and adaptive attacks\n\n| model | attack | eps | adv acc | # successful | detector | AUROC | AUPRC | rejected successful | clean rejected | r(f) | r(f,g) |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        foreach (var d in r.Detection.OrderBy(x => x.Mode).ThenBy(x => x.Epsilon).ThenBy(x => x.Attack))
        {
            var none = r.Risk.First(x => x.Mode == d.Mode && x.Attack == d.Attack && x.Epsilon == d.Epsilon && x.Detector == "none");
            var with = r.Risk.First(x => x.Mode == d.Mode && x.Attack == d.Attack && x.Epsilon == d.Epsilon && x.Detector == d.Detector);
            sb.Append(Inv, $"| {d.Mode} | {d.Attack} | {d.Epsilon:G4} | {P(none.AdversarialAccuracy)} | {d.Successful} | {d.Detector} | {F3(d.AurocPooled)} | {F3(d.AuprcPooled)} | {P(d.SuccessfulRejected)} | {P(d.CleanRejected)} | {none.RiskPerImage:F3} | {with.RiskPerImage:F3} |\n");
        }

        sb.Append("\n## Which claims hold in this run\n\n");
        foreach (string line in r.Findings)
        {
            sb.Append("- ").Append(line).Append('\n');
        }
        return sb.ToString();
    }

    /// <summary>The protocol of a run, one statement per line (results.md, the multi-seed report and results.html).</summary>
    public static IReadOnlyList<string> Protocol(ReproduceResults r, ReproduceProfile p)
    {
        ArgumentNullException.ThrowIfNull(r);
        ArgumentNullException.ThrowIfNull(p);
        var lines = new List<string>();
        lines.Add(string.Create(Inv, $"ResNet-18 of base width {p.Width} (paper: 64), {p.Epochs} epochs{(p.GceEpochs is int g && g != p.Epochs ? $" ({g} for GCE)" : "")}, batch {p.BatchSize}, SGD lr {p.LearningRate} cosine, momentum 0.9, weight decay 5e-4."));
        string ssatDeviations = (p.SsatTeacherMode is { } teacher
                ? $"the pseudo-labels are the fixed predictions of the seed's {teacher.ToUpperInvariant()} model (robust self-training, Carmon et al. 2019), not the model's own at each step (which collapsed SSAT to one or two classes, 25-54% accuracy); "
                : "")
            + string.Create(Inv, $"lambda ramps up linearly over the first {p.SsatWarmupFraction:P0} of the steps; only unlabeled images predicted with softmax probability >= {p.SsatPseudoLabelThreshold} get a pseudo-label term.");
        lines.Add("NT: cross-entropy. GCE: guided complement entropy (alpha 1/3). AT: each batch half clean, half FGSM, eps uniform in [0.001, 0.003] drawn once per batch, FGSM from the model in evaluation mode. "
            + "SSAT: AT loss + 5 x CE of FGSM'd unlabeled images against pseudo-labels (one joint forward pass). Documented deviations: " + ssatDeviations);
        lines.Add(string.Create(Inv, $"Attacks on {r.Figure4.FirstOrDefault()?.Attacked} test images (a seeded class-balanced sample): FGSM; PGD-{p.PgdSteps} (step 2.5 eps / steps, no random start); C&W L2 with a fixed c (no binary search), {p.CwIterations} Adam steps, lr {p.CwLearningRate}."));
        lines.Add(string.Create(Inv, $"Detectors on penultimate features of all clean training images: UAD (per-class GMM, up to 2 full-covariance components, reg 1% of the mean feature variance), Mahalanobis (class means, tied covariance), KDE (Gaussian kernel, Scott bandwidth). Threshold: {p.CleanRejectionRate:P0} of clean validation images rejected."));
        lines.Add(string.Create(Inv, $"Adaptive attacks (PGD-{p.PgdSteps} budget, lambda {(p.AdaptiveLambdas.Count == 1 ? p.AdaptiveLambdas[0].ToString(Inv) : $"chosen per attack among {string.Join(", ", p.AdaptiveLambdas)} by system-level success on {p.LambdaSweepImages} held-out test images")}): HFC (Yao et al.: nearest-component GMM constraint on layer1..layer4, attacker's own per-class mixtures on layer1..3 and UAD's on layer4) and density-PGD (CE + lambda x the detector's own log density) against each detector."));
        lines.Add("Successful adversarial image = clean image classified correctly and its adversarial version misclassified. Detection positives: successful adversarial images; negatives: correctly classified clean images; per class = by predicted class. System-level success of an attack against a detector = share of all attacked images whose adversarial version is misclassified and accepted.");
        lines.Add("Risk: N = clean + adversarial images of the attacked subset; R(f) counts misclassified clean and adversarial images; R(f,g) counts clean accepted-but-wrong, clean rejected, adversarial accepted-but-wrong; unit risks 1; r = R / N.");
        if (p.Name != "paper")
        {
            lines.Add(string.Create(Inv, $"Profile {p.Name}: {p.Resolution}x{p.Resolution} synthetic data when no --data is given ({p.TrainImages}/{p.UnlabeledImages}/{p.ValImages}/{p.TestImages} train/unlabeled/val/test, lesion severity floor {p.DataMinSeverity}), width {p.Width}, {p.Epochs} epochs{(p.GceEpochs is int g2 && g2 != p.Epochs ? $" ({g2} for GCE)" : "")}, {p.AttackImages} attacked images, PGD eps {string.Join(", ", p.PgdEpsilons)}, C&W c {string.Join(", ", p.CwConstants)} with {p.CwIterations} steps, adaptive attacks at eps {string.Join(", ", p.AdaptiveEpsilons)}, seeds {string.Join(", ", p.Seeds)}: sized for 2 CPU cores (Release build). The numbers exercise the method on a small model and small data; they are not the paper's values."));
        }
        lines.AddRange(r.Notes);
        return lines;
    }

    private static string P(double v) => double.IsNaN(v) ? "-" : v.ToString("P1", Inv);

    private static string F3(double? v) => v is { } x && !double.IsNaN(x) ? x.ToString("F3", Inv) : "-";
}
