using System.Globalization;
using IlgpuOct.Defense.Risk;
using IlgpuOct.Nn.Data;

namespace IlgpuOct.Defense.Experiments;

/// <summary>
/// One of the paper's claims judged on this run: the statistic's estimate (mean over seeds) with a
/// 95 % percentile bootstrap interval over seeds and test images, and the verdict the rule gives.
/// </summary>
public sealed record Claim(string Statement, string Statistic, double Estimate, double Low, double High, string Verdict, string Rule);

/// <summary>
/// The claims of "Which claims hold", each judged with a bootstrap interval: a resample draws the
/// seeds with replacement and, within each drawn seed, its attacked images with replacement (the
/// models of a seed share its images, so comparisons between models stay paired); the statistic
/// of a resample is its mean over the drawn seeds.
/// </summary>
public static class Claims
{
    public const string Holds = "holds";
    public const string DoesNotHold = "does not hold";
    public const string NotResolved = "not resolved at this size";

    /// <summary>Resamples per interval.</summary>
    public const int Resamples = 1000;

    /// <summary>A detector "rejects" an attack when it catches at least this share of the successful adversarial images.</summary>
    public const double RejectsFraction = 0.8;

    /// <summary>Accuracy differences smaller than this are of no practical weight: an interval below it rules the claim out.</summary>
    public const double AccuracyMargin = 0.02;

    /// <summary>The same for differences of the risk per image.</summary>
    public const double RiskMargin = 0.01;

    public static IReadOnlyList<Claim> Judge(ReproduceProfile profile, IReadOnlyList<ReproduceResults> seeds)
    {
        ArgumentNullException.ThrowIfNull(profile);
        ArgumentNullException.ThrowIfNull(seeds);
        var claims = new List<Claim>();
        if (seeds.Count == 0 || seeds.Any(s => s.Outcomes.Count == 0))
        {
            return claims;
        }
        var inv = CultureInfo.InvariantCulture;
        var modes = seeds[0].Models.Where(m => m.Skipped is null).Select(m => m.Mode).ToList();
        double eps = ModelEvaluation.Round(profile.TableEpsilon);
        string better = string.Create(inv, $"interval above 0 -> {Holds}; interval below +{AccuracyMargin:P0} -> {DoesNotHold}; else {NotResolved}");

        double Accuracy(ReproduceResults r, string mode, string attack, double e, int[] idx)
        {
            var o = Find(r, mode, attack, e);
            return idx.Count(i => o.AdversarialCorrect[i]) / (double)idx.Length;
        }

        foreach (var (mode, baseline) in new[] { ("gce", "nt"), ("at", "nt"), ("ssat", "nt"), ("ssat", "at") })
        {
            if (!modes.Contains(mode) || !modes.Contains(baseline))
            {
                continue;
            }
            claims.Add(Interval(seeds, string.Create(inv, $"{mode.ToUpperInvariant()} is more robust than {baseline.ToUpperInvariant()} under PGD eps {eps}"),
                "accuracy difference on the attacked images", (r, idx) => Accuracy(r, mode, "pgd", eps, idx) - Accuracy(r, baseline, "pgd", eps, idx),
                (lo, hi) => lo > 0 ? Holds : hi < AccuracyMargin ? DoesNotHold : NotResolved, better));
        }

        double maxEps = ModelEvaluation.Round(profile.RiskEpsilons.DefaultIfEmpty(profile.TableEpsilon).Max());
        claims.Add(Interval(seeds, string.Create(inv, $"No classifier alone keeps half its accuracy under PGD eps {maxEps}"), "best accuracy of any model",
            (r, idx) => modes.Max(m => Accuracy(r, m, "pgd", maxEps, idx)),
            (lo, hi) => hi < 0.5 ? Holds : lo >= 0.5 ? DoesNotHold : NotResolved, $"interval below 50 % -> {Holds}; at or above -> {DoesNotHold}"));

        var detectors = seeds[0].Outcomes[0].Detectors.Select(d => d.Detector).ToList();
        foreach (double e in profile.RiskEpsilons.Select(ModelEvaluation.Round))
        {
            foreach (string detector in detectors)
            {
                claims.Add(Interval(seeds, string.Create(inv, $"{detector.ToUpperInvariant()} rejects PGD eps {e} (at least {RejectsFraction:P0} of the successful adversarial images, all models)"),
                    "share of successful adversarial images rejected", (r, idx) => RejectedShare(r, modes, "pgd", e, detector, idx),
                    (lo, hi) => lo >= RejectsFraction ? Holds : hi < RejectsFraction ? DoesNotHold : NotResolved,
                    string.Create(inv, $"interval above {RejectsFraction:P0} -> {Holds}; below -> {DoesNotHold}")));
            }
            if (detectors.Contains(UadName))
            {
                claims.Add(Interval(seeds, string.Create(inv, $"Adding UAD lowers the risk below the most robust classifier alone under PGD eps {e} (the paper's conclusion)"),
                    "lowest r(f) over models minus lowest r(f, UAD)", (r, idx) => modes.Min(m => RiskPerImage(r, m, "pgd", e, null, idx, profile.UnitRisks))
                        - modes.Min(m => RiskPerImage(r, m, "pgd", e, UadName, idx, profile.UnitRisks)),
                    (lo, hi) => lo > 0 ? Holds : hi < RiskMargin ? DoesNotHold : NotResolved,
                    string.Create(inv, $"interval above 0 -> {Holds}; below +{RiskMargin} -> {DoesNotHold}; else {NotResolved}")));
            }
        }

        // Adaptive attacks: the detector it targets, judged at the system level against PGD at the same eps.
        foreach (var group in seeds[0].Outcomes.Where(o => o.Lambda is not null).GroupBy(o => (o.Attack, o.Epsilon)))
        {
            string attack = group.Key.Attack;
            double e = group.Key.Epsilon;
            string target = attack == "hfc" ? UadName : attack[(attack.IndexOf('[') + 1)..^1];
            if (!seeds.All(s => s.Outcomes.Any(o => o.Attack == "pgd" && o.Epsilon == e)))
            {
                continue;
            }
            var adaptiveModes = group.Select(o => o.Mode).ToList();
            claims.Add(Interval(seeds, string.Create(inv, $"Knowing {target.ToUpperInvariant()} does not help the attacker: {attack} eps {e} ends misclassified-and-accepted no more often than PGD"),
                "system-level success of the adaptive attack minus PGD's",
                (r, idx) => adaptiveModes.Average(m => SystemSuccess(r, m, attack, e, target, idx) - SystemSuccess(r, m, "pgd", e, target, idx)),
                (lo, hi) => hi < AccuracyMargin ? Holds : lo > 0 ? DoesNotHold : NotResolved,
                string.Create(inv, $"interval below +{AccuracyMargin:P0} -> {Holds}; above 0 -> {DoesNotHold}; else {NotResolved}")));
        }
        return claims;
    }

    private const string UadName = "uad";

    /// <summary>The estimate (mean over seeds on all images) and the 2.5 / 97.5 percentiles of the resampled statistic.</summary>
    public static Claim Interval(IReadOnlyList<ReproduceResults> seeds, string statement, string statistic, Func<ReproduceResults, int[], double> value,
        Func<double, double, string> verdict, string rule)
    {
        int[] Count(ReproduceResults r) => [.. Enumerable.Range(0, r.Outcomes[0].CleanCorrect.Length)];
        // Seeds where the statistic is undefined (no successful adversarial images) are left out, in the estimate and in the resamples.
        double estimate = seeds.Select(r => value(r, Count(r))).Where(v => !double.IsNaN(v)).DefaultIfEmpty(double.NaN).Average();
        var rng = new Random(Seeds.Derive(seeds[0].Seed, 9100, statement.Length));
        var samples = new List<double>(Resamples);
        for (int b = 0; b < Resamples; b++)
        {
            double sum = 0;
            int valid = 0;
            for (int s = 0; s < seeds.Count; s++)
            {
                var r = seeds[rng.Next(seeds.Count)];
                int n = r.Outcomes[0].CleanCorrect.Length;
                var idx = new int[n];
                for (int i = 0; i < n; i++)
                {
                    idx[i] = rng.Next(n);
                }
                double v = value(r, idx);
                if (!double.IsNaN(v))
                {
                    sum += v;
                    valid++;
                }
            }
            if (valid > 0)
            {
                samples.Add(sum / valid);
            }
        }
        samples.Sort();
        double low = samples.Count == 0 ? double.NaN : samples[(int)Math.Floor(0.025 * (samples.Count - 1))];
        double high = samples.Count == 0 ? double.NaN : samples[(int)Math.Ceiling(0.975 * (samples.Count - 1))];
        return new Claim(statement, statistic, estimate, low, high, double.IsNaN(low) || double.IsNaN(estimate) ? NotResolved : verdict(low, high), rule);
    }

    private static AttackOutcome Find(ReproduceResults r, string mode, string attack, double eps) =>
        r.Outcomes.FirstOrDefault(o => o.Mode == mode && o.Attack == attack && Math.Abs(o.Epsilon - eps) < 1e-9)
        ?? throw new InvalidOperationException($"Seed {r.Seed} has no per-image outcomes for {mode} under {attack} eps {eps}; the claims need the detection rows of that attack.");

    private static DetectorOutcome Detector(AttackOutcome o, string detector) => o.Detectors.First(d => d.Detector == detector);

    /// <summary>Rejected successful adversarial images over successful ones, pooled over the models; NaN when none succeeded.</summary>
    private static double RejectedShare(ReproduceResults r, IReadOnlyList<string> modes, string attack, double eps, string detector, int[] idx)
    {
        int successful = 0, rejected = 0;
        foreach (string mode in modes)
        {
            var o = Find(r, mode, attack, eps);
            var d = Detector(o, detector);
            foreach (int i in idx)
            {
                if (o.CleanCorrect[i] && !o.AdversarialCorrect[i])
                {
                    successful++;
                    rejected += d.AdversarialRejected[i] ? 1 : 0;
                }
            }
        }
        return successful == 0 ? double.NaN : rejected / (double)successful;
    }

    private static double SystemSuccess(ReproduceResults r, string mode, string attack, double eps, string detector, int[] idx)
    {
        var o = Find(r, mode, attack, eps);
        var d = Detector(o, detector);
        return idx.Count(i => !o.AdversarialCorrect[i] && !d.AdversarialRejected[i]) / (double)idx.Length;
    }

    private static double RiskPerImage(ReproduceResults r, string mode, string attack, double eps, string? detector, int[] idx, UnitRisks unitRisks)
    {
        var o = Find(r, mode, attack, eps);
        var d = detector is null ? null : Detector(o, detector);
        var counts = RiskCounts.From([.. idx.Select(i => o.CleanCorrect[i])], d is null ? null : [.. idx.Select(i => d.CleanRejected[i])],
            [.. idx.Select(i => o.AdversarialCorrect[i])], d is null ? null : [.. idx.Select(i => d.AdversarialRejected[i])]);
        return RiskMeasure.Compute(counts, unitRisks).PerImage;
    }
}
