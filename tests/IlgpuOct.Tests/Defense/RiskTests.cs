using FluentAssertions;
using IlgpuOct.Defense.Risk;
using Xunit;

namespace IlgpuOct.Tests.Defense;

public sealed class RiskTests
{
    [Fact]
    public void Counts_follow_the_paper_definitions()
    {
        // Clean: 6 images; 2 misclassified (one of them rejected), 1 correct but rejected.
        bool[] cleanCorrect = [true, true, true, true, false, false];
        bool[] cleanRejected = [false, false, false, true, true, false];
        // Adversarial: 4 images; 3 misclassified of which 2 rejected; 1 correct and rejected.
        bool[] advCorrect = [false, false, false, true];
        bool[] advRejected = [true, true, false, true];
        var with = RiskCounts.From(cleanCorrect, cleanRejected, advCorrect, advRejected);
        with.Should().Be(new RiskCounts(6, 4, CleanAcceptedWrong: 1, CleanRejected: 2, AdversarialAcceptedWrong: 1));
        var without = RiskCounts.From(cleanCorrect, null, advCorrect, null);
        without.Should().Be(new RiskCounts(6, 4, CleanAcceptedWrong: 2, CleanRejected: 0, AdversarialAcceptedWrong: 3));
    }

    [Fact]
    public void Risk_is_the_weighted_sum_and_per_image_risk_divides_by_all_images()
    {
        var counts = new RiskCounts(100, 100, CleanAcceptedWrong: 7, CleanRejected: 5, AdversarialAcceptedWrong: 12);
        RiskMeasure.Compute(counts).Should().Be(new RiskValue(24, 24 / 200.0));
        var weighted = RiskMeasure.Compute(counts, new UnitRisks(CleanMisprediction: 2, CleanRejection: 0.5, AdversarialMisprediction: 3));
        weighted.Total.Should().Be(7 * 2 + 5 * 0.5 + 12 * 3);
        weighted.PerImage.Should().Be(weighted.Total / 200);
    }

    [Fact]
    public void Rejection_flags_must_match_the_images()
    {
        var act = () => RiskCounts.From([true, false], [true], [true], null);
        act.Should().Throw<ArgumentException>();
    }
}
