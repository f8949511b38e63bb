using System.Globalization;
using FluentAssertions;
using IlgpuOct.Defense.Density;
using IlgpuOct.Nn.IO;
using IlgpuOct.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace IlgpuOct.Tests.Defense;

/// <summary>EM from the golden start (init.weights, init.means, identity precisions) against scikit-learn.</summary>
[Trait("Category", "Golden")]
public sealed class MixtureGoldenTests(ITestOutputHelper output)
{
    public static TheoryData<string> Types => new() { "full", "diag" };

    [Theory]
    [MemberData(nameof(Types))]
    public void Fit_matches_scikit_learn(string prefix)
    {
        var golden = Golden.Load("gmm.safetensors");
        var x = golden["x"];
        int n = x.Shape[0];
        int d = x.Shape[1];
        var xTest = golden["x_test"];
        int m = xTest.Shape[0];
        var initWeights = golden["init.weights"].ToDouble();
        int k = initWeights.Length;
        var type = prefix == "full" ? CovarianceType.Full : CovarianceType.Diagonal;
        // The settings the golden README states (scikit-learn's defaults).
        var gmm = new GaussianMixture(new GaussianMixtureOptions
        {
            Components = k,
            CovarianceType = type,
            RegCovar = 1e-6,
            Tolerance = 1e-3,
            MaxIterations = 200,
            Start = new GaussianMixtureStart(initWeights, golden["init.means"].ToDouble()),
        });
        gmm.Fit(x.ToFloat(), n, d);

        double expectedBound = golden[$"{prefix}.lower_bound"].Scalar();
        long expectedIter = golden[$"{prefix}.n_iter"].ToInt64()[0];
        double[] scores = gmm.ScoreSamples(xTest.ToFloat(), m);
        double[] proba = gmm.PredictProba(xTest.ToFloat(), m);
        var inv = CultureInfo.InvariantCulture;
        output.WriteLine(string.Create(inv, $"{prefix}: n_iter {gmm.NIter} (expected {expectedIter}), lower bound {gmm.LowerBound:R} (expected {expectedBound:R}, relative error {Math.Abs(gmm.LowerBound - expectedBound) / Math.Abs(expectedBound):G3})"));
        Report("weights", gmm.Weights, golden[$"{prefix}.weights"]);
        Report("means", gmm.Means, golden[$"{prefix}.means"]);
        Report("covariances", gmm.Covariances, golden[$"{prefix}.covariances"]);
        Report("score_samples", scores, golden[$"{prefix}.score_samples"]);
        Report("predict_proba", proba, golden[$"{prefix}.predict_proba"]);

        gmm.NIter.Should().Be((int)expectedIter);
        gmm.Converged.Should().BeTrue();
        Math.Abs(gmm.LowerBound - expectedBound).Should().BeLessThanOrEqualTo(1e-5 * Math.Abs(expectedBound));
        // Parameters are stored as float32: hold them to float32 resolution of their scale.
        Tolerance.AssertClose(gmm.Weights, golden[$"{prefix}.weights"].ToDouble(), 1e-6, 1e-5, $"{prefix}.weights");
        Tolerance.AssertClose(gmm.Means, golden[$"{prefix}.means"].ToDouble(), 1e-5, 1e-5, $"{prefix}.means");
        Tolerance.AssertClose(gmm.Covariances, golden[$"{prefix}.covariances"].ToDouble(), 1e-5, 1e-5, $"{prefix}.covariances");
        Tolerance.AssertClose(scores, golden[$"{prefix}.score_samples"].ToDouble(), 1e-6, 1e-6, $"{prefix}.score_samples");
        Tolerance.AssertClose(proba, golden[$"{prefix}.predict_proba"].ToDouble(), 1e-6, 1e-5, $"{prefix}.predict_proba");
    }

    private void Report(string what, ReadOnlySpan<double> actual, SafeTensor expected)
    {
        var e = expected.ToDouble();
        double maxAbs = 0;
        double maxRel = 0;
        for (int i = 0; i < e.Length; i++)
        {
            double diff = Math.Abs(actual[i] - e[i]);
            maxAbs = Math.Max(maxAbs, diff);
            maxRel = Math.Max(maxRel, diff / Math.Max(Math.Abs(e[i]), 1e-12));
        }
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {what}: max |diff| {maxAbs:G3}, max relative {maxRel:G3} over {e.Length}"));
    }
}
