using FluentAssertions;
using IlgpuOct.Defense.Experiments;
using Xunit;

namespace IlgpuOct.Tests.Experiments;

public sealed class ClaimsTests
{
    private const int Images = 100;

    /// <summary>A seed whose models "nt" and "at" have the given per-image PGD accuracy (first images correct) and one detector rejecting the first share of images.</summary>
    private static ReproduceResults Seed(int seed, double ntAccuracy, double atAccuracy, double rejected)
    {
        var outcomes = new List<AttackOutcome>();
        foreach (var (mode, accuracy) in new[] { ("nt", ntAccuracy), ("at", atAccuracy) })
        {
            foreach (double eps in new[] { 0.005, 0.01 })
            {
                bool[] clean = [.. Enumerable.Repeat(true, Images)];
                bool[] adv = [.. Enumerable.Range(0, Images).Select(i => i < accuracy * Images)];
                bool[] advRejected = [.. Enumerable.Range(0, Images).Select(i => Images - 1 - i < rejected * Images)];
                var detector = new DetectorOutcome("uad", new double[Images], new double[Images], new bool[Images], advRejected);
                outcomes.Add(new AttackOutcome(mode, "pgd", eps, null, new int[Images], clean, adv, [detector]));
            }
        }
        var models = new[] { "nt", "at" }.Select(m => new ModelSummary(m, null, 1, 1, 0, null, [])).ToList();
        return new ReproduceResults("test", "", "", ["a", "b"], seed, "cpu", 0, models, [], [], [], [], []) { Outcomes = outcomes };
    }

    private static readonly ReproduceProfile Profile = ReproduceProfile.Micro with { Modes = ["nt", "at"] };

    [Fact]
    public void AClearDifferenceHoldsAndItsOppositeDoesNot()
    {
        var holds = Claims.Judge(Profile, [Seed(0, 0.2, 0.7, 0), Seed(1, 0.25, 0.75, 0)]).Single(c => c.Statement.StartsWith("AT is more robust than NT", StringComparison.Ordinal));
        holds.Verdict.Should().Be(Claims.Holds);
        holds.Estimate.Should().BeApproximately(0.5, 1e-12);
        holds.Low.Should().BeGreaterThan(0.3);
        holds.High.Should().BeLessThan(0.7);
        holds.Low.Should().BeLessThanOrEqualTo(holds.Estimate);
        holds.High.Should().BeGreaterThanOrEqualTo(holds.Estimate);

        var opposite = Claims.Judge(Profile, [Seed(0, 0.7, 0.2, 0), Seed(1, 0.75, 0.25, 0)]).Single(c => c.Statement.StartsWith("AT is more robust than NT", StringComparison.Ordinal));
        opposite.Verdict.Should().Be(Claims.DoesNotHold);
        opposite.High.Should().BeLessThan(0);
    }

    [Fact]
    public void ASmallDifferenceOnFewImagesIsNotResolved()
    {
        // 3 points of 100 images: the interval reaches down to 0 and above the 2-point margin.
        var claim = Claims.Judge(Profile, [Seed(0, 0.5, 0.53, 0)]).Single(c => c.Statement.StartsWith("AT is more robust than NT", StringComparison.Ordinal));
        claim.Verdict.Should().Be(Claims.NotResolved);
        claim.Low.Should().BeLessThanOrEqualTo(0);
        claim.High.Should().BeGreaterThan(Claims.AccuracyMargin);
    }

    [Fact]
    public void DetectorRejectionIsJudgedAgainstEightyPercentOfTheSuccessfulImages()
    {
        // NT accuracy 0: all 100 images successful; the detector rejects 95 % of the images (the last ones).
        var claims = Claims.Judge(Profile, [Seed(0, 0.0, 0.0, 0.95), Seed(1, 0.0, 0.0, 0.95)]);
        claims.Single(c => c.Statement.StartsWith("UAD rejects PGD eps 0.005", StringComparison.Ordinal)).Verdict.Should().Be(Claims.Holds);
        var low = Claims.Judge(Profile, [Seed(0, 0.0, 0.0, 0.3)]);
        low.Single(c => c.Statement.StartsWith("UAD rejects PGD eps 0.005", StringComparison.Ordinal)).Verdict.Should().Be(Claims.DoesNotHold);
    }

    [Fact]
    public void SeedStatIsMeanAndSampleStandardDeviation()
    {
        var s = SeedStat.Of([1.0, 2.0, 3.0, double.NaN]);
        s.Mean.Should().Be(2.0);
        s.Sd.Should().BeApproximately(1.0, 1e-15);
        s.Seeds.Should().Be(3);
        double.IsNaN(SeedStat.Of([4.0]).Sd).Should().BeTrue("one seed has no spread");
        SeedsReport.Format(s, percent: true).Should().Be("200.0 % ± 100.0");
        SeedsReport.Format(SeedStat.Of([0.5]), percent: false).Should().Be("0.500");
    }
}
