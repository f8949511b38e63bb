using FluentAssertions;
using IlgpuOct.Defense.Metrics;
using IlgpuOct.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace IlgpuOct.Tests.Defense;

public sealed class MetricsTests(ITestOutputHelper output)
{
    [Fact]
    [Trait("Category", "Golden")]
    public void Average_precision_and_roc_auc_match_scikit_learn()
    {
        var golden = Golden.Load("metrics.safetensors");
        long[] labels = golden["labels"].ToInt64();
        double[] scores = golden["scores"].ToDouble();
        double ap = RankingMetrics.AveragePrecision(labels, scores);
        double auc = RankingMetrics.RocAuc(labels, scores);
        output.WriteLine(FormattableString.Invariant($"auprc {ap:R} vs {golden["auprc"].Scalar():R}; auroc {auc:R} vs {golden["auroc"].Scalar():R}"));
        Tolerance.AssertClose([ap], [golden["auprc"].Scalar()], 1e-12, 0, "auprc");
        Tolerance.AssertClose([auc], [golden["auroc"].Scalar()], 1e-12, 0, "auroc");
    }

    [Fact]
    public void Scikit_learn_documentation_example()
    {
        // average_precision_score and roc_auc_score docstrings: 0.83... and 0.75.
        int[] labels = [0, 0, 1, 1];
        double[] scores = [0.1, 0.4, 0.35, 0.8];
        RankingMetrics.AveragePrecision(labels, scores).Should().BeApproximately(5.0 / 6.0, 1e-15);
        RankingMetrics.RocAuc(labels, scores).Should().BeApproximately(0.75, 1e-15);
    }

    [Fact]
    public void Tied_scores_form_one_threshold()
    {
        // Sorted: 0.9 (+), 0.5 (+ and -), 0.1 (-). Points: P 1 R .5; P 2/3 R 1; P 1/2 R 1.
        int[] labels = [1, 0, 1, 0];
        double[] scores = [0.5, 0.5, 0.9, 0.1];
        RankingMetrics.AveragePrecision(labels, scores).Should().BeApproximately(0.5 * 1 + 0.5 * 2.0 / 3.0, 1e-15);
        // ROC points (0,0) (0,.5) (.5,1) (1,1): the tie is one diagonal segment.
        RankingMetrics.RocAuc(labels, scores).Should().BeApproximately(0.875, 1e-15);
        var curve = RankingMetrics.PrecisionRecall(labels, scores);
        curve.Thresholds.Should().Equal(0.1, 0.5, 0.9);
        curve.Recall.Should().Equal(1.0, 1.0, 0.5, 0.0);
    }

    [Fact]
    public void All_ties_give_prevalence_and_half()
    {
        int[] labels = [1, 0, 0, 1, 0];
        double[] scores = [0.3, 0.3, 0.3, 0.3, 0.3];
        RankingMetrics.AveragePrecision(labels, scores).Should().BeApproximately(2.0 / 5.0, 1e-15);
        RankingMetrics.RocAuc(labels, scores).Should().BeApproximately(0.5, 1e-15);
    }

    [Fact]
    public void Perfect_and_reversed_rankings()
    {
        int[] labels = [0, 1, 0, 1, 1];
        double[] perfect = [0.1, 0.8, 0.2, 0.9, 0.7];
        RankingMetrics.AveragePrecision(labels, perfect).Should().Be(1.0);
        RankingMetrics.RocAuc(labels, perfect).Should().Be(1.0);
        double[] reversed = Array.ConvertAll(perfect, s => -s);
        RankingMetrics.RocAuc(labels, reversed).Should().Be(0.0);
        // Positives ranked 3rd, 4th, 5th: (1/3 + 2/4 + 3/5) / 3.
        RankingMetrics.AveragePrecision(labels, reversed).Should().BeApproximately((1.0 / 3 + 2.0 / 4 + 3.0 / 5) / 3, 1e-15);
    }

    [Fact]
    public void All_positives_and_all_negatives()
    {
        int[] positives = [1, 1, 1];
        double[] scores = [0.2, 0.5, 0.1];
        RankingMetrics.AveragePrecision(positives, scores).Should().Be(1.0);
        var roc = () => RankingMetrics.RocAuc(positives, scores);
        roc.Should().Throw<ArgumentException>().WithMessage("*Only one class*");
        // scikit-learn: no positives -> recall all ones -> average precision 0.
        RankingMetrics.AveragePrecision([0, 0, 0], scores).Should().Be(0.0);
    }

    [Fact]
    public void Bad_labels_are_rejected()
    {
        var act = () => RankingMetrics.AveragePrecision([0, 2], [0.1, 0.2]);
        act.Should().Throw<ArgumentException>().WithMessage("*not 0 or 1*");
        var nan = () => RankingMetrics.RocAuc([0, 1], [0.1, double.NaN]);
        nan.Should().Throw<ArgumentException>().WithMessage("*not finite*");
    }

    [Fact]
    public void Per_class_and_macro_are_one_versus_rest()
    {
        int[] labels = [0, 1, 2, 0, 1, 2];
        double[] scores = // (N, K)
        [
            0.7, 0.2, 0.1,
            0.1, 0.6, 0.3,
            0.2, 0.5, 0.3,
            0.5, 0.1, 0.4,
            0.3, 0.3, 0.4,
            0.1, 0.1, 0.8,
        ];
        // Class 2 by hand: column [.1 .3 .3 .4 .4 .8], positives at rows 2 and 5.
        // Sorted: .8(+), .4(- -), .3(- +), .1(-): P 1 R .5; P 1/3 R .5; P 2/5 R 1; P 2/6 R 1.
        double ap2 = 0.5 * 1 + 0.5 * 0.4;
        var perClassAp = RankingMetrics.AveragePrecisionPerClass(labels, scores, 3);
        perClassAp[2].Should().BeApproximately(ap2, 1e-15);
        perClassAp[0].Should().Be(1.0); // class 0 scores .7 and .5 are the two largest of column 0
        RankingMetrics.MacroAveragePrecision(labels, scores, 3).Should().BeApproximately(perClassAp.Average(), 1e-15);
        // Class 2 ROC: 4 negatives, 2 positives. Pairs (pos, neg) won: .8 beats all 4; .3 beats .1 (row 0), ties .3 (row 1), loses to .4 .4.
        var perClassAuc = RankingMetrics.RocAucPerClass(labels, scores, 3);
        perClassAuc[2].Should().BeApproximately((4 + 1 + 0.5) / 8.0, 1e-15);
        RankingMetrics.MacroRocAuc(labels, scores, 3).Should().BeApproximately(perClassAuc.Average(), 1e-15);
    }
}
