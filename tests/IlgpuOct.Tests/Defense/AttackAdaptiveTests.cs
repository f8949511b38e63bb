using FluentAssertions;
using IlgpuOct.Defense.Attacks;
using IlgpuOct.Defense.Density;
using IlgpuOct.Kernels;
using IlgpuOct.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace IlgpuOct.Tests.Defense;

/// <summary>Adaptive attacks on per-class, per-stage Gaussian mixtures of a tiny model's clean features.</summary>
public sealed class AttackAdaptiveTests(ITestOutputHelper output)
{
    /// <summary>Sum over stages of log p(f_s) under the mixtures of class classes[i] (scikit-learn's score_samples).</summary>
    private static double[] StageLogDensity(TinyAttackSetup setup, GaussianMixture[][] mixtures, float[] images, int[] classes)
    {
        float[][] pools = setup.StagePools(images, setup.Shape);
        var total = new double[setup.Count];
        for (int s = 0; s < pools.Length; s++)
        {
            int d = setup.Classifier.StageWidths[s];
            for (int i = 0; i < setup.Count; i++)
            {
                total[i] += mixtures[s][classes[i]].ScoreSamples(pools[s].AsSpan(i * d, d), 1)[0];
            }
        }
        return total;
    }

    [Fact]
    public void Hfc_features_look_more_like_the_target_class_than_plain_pgd_and_still_succeed()
    {
        using var acc = DeviceSelection.Open("cpu", out _);
        using var setup = new TinyAttackSetup(acc, perClass: 24, seed: 5);
        var mixtures = setup.FitMixtures(components: 2, seed: 0);
        int[] targets = setup.Labels.Select(l => 1 - l).ToArray();
        var goal = AttackGoal.Targeted(setup.Labels, targets);
        var options = new PgdOptions { Epsilon = 0.1f, Steps = 10, StepSize = 0.02f };

        var plain = Pgd.Run(new CrossEntropyObjective(setup.Classifier), setup.Images, setup.Shape, goal, options);
        var hfc = AdaptiveAttacks.Hfc(setup.Classifier, mixtures, setup.Images, setup.Shape, goal, options, lambda: 0.05);

        double[] plainDensity = StageLogDensity(setup, mixtures, plain.Adversarial, targets);
        double[] hfcDensity = StageLogDensity(setup, mixtures, hfc.Adversarial, targets);
        int hfcHigher = hfcDensity.Zip(plainDensity).Count(p => p.First > p.Second);
        output.WriteLine($"success: plain {plain.Success.Count(s => s)}/{setup.Count}, hfc {hfc.Success.Count(s => s)}/{setup.Count}");
        output.WriteLine($"mean target-class log density over stages: plain {plainDensity.Average():F2}, hfc {hfcDensity.Average():F2}; hfc higher on {hfcHigher}/{setup.Count}");

        hfc.Linf.Max().Should().BeLessThanOrEqualTo(options.Epsilon + 1e-6f);
        hfc.Adversarial.Should().OnlyContain(v => v >= 0f && v <= 1f);
        hfc.Success.Count(s => s).Should().BeGreaterThanOrEqualTo(setup.Count * 3 / 4, "the constraint must not stop the attack");
        hfcDensity.Average().Should().BeGreaterThan(plainDensity.Average());
        hfcHigher.Should().BeGreaterThanOrEqualTo(setup.Count * 3 / 4);
    }

    [Fact]
    public void Density_pgd_raises_the_penultimate_log_density_over_plain_pgd()
    {
        using var acc = DeviceSelection.Open("cpu", out _);
        using var setup = new TinyAttackSetup(acc, perClass: 12, seed: 8);
        var mixtures = setup.FitMixtures(components: 1, seed: 0, CovarianceType.Diagonal);
        var penultimate = mixtures[^1].Select(m => (IFeatureDensity)new GmmLogDensity(m)).ToArray();
        var goal = AttackGoal.Untargeted(setup.Labels);
        var options = new PgdOptions { Epsilon = 0.1f, Steps = 6, StepSize = 0.03f };

        var plain = Pgd.Run(new CrossEntropyObjective(setup.Classifier), setup.Images, setup.Shape, goal, options);
        var adaptive = AdaptiveAttacks.DensityPgd(setup.Classifier, penultimate, setup.Images, setup.Shape, goal, options, lambda: 0.001);

        // Density of the predicted class of each adversarial image, as the detector scores it.
        double Density(AttackResult r)
        {
            float[] features = setup.StagePools(r.Adversarial, setup.Shape)[^1];
            int d = setup.Classifier.StageWidths[^1];
            return Enumerable.Range(0, setup.Count).Average(i => mixtures[^1][r.PredAdv[i]].ScoreSamples(features.AsSpan(i * d, d), 1)[0]);
        }
        output.WriteLine($"success plain {plain.Success.Count(s => s)}, adaptive {adaptive.Success.Count(s => s)} of {setup.Count}; density plain {Density(plain):F2}, adaptive {Density(adaptive):F2}");
        adaptive.Success.Count(s => s).Should().BeGreaterThanOrEqualTo(setup.Count * 3 / 4);
        Density(adaptive).Should().BeGreaterThan(Density(plain));
    }

    /// <summary>
    /// d/dx of the feature term (sum over stages of the class scores) by central differences along
    /// random +-1 directions: the injected pooled-stage gradients, spread over H and W and
    /// back-propagated, must give the directional derivative.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Feature_term_gradient_matches_finite_differences(bool logDensity)
    {
        using var acc = DeviceSelection.Open("cpu", out _);
        using var setup = new TinyAttackSetup(acc, perClass: 12, seed: 11);
        var mixtures = setup.FitMixtures(components: logDensity ? 2 : 1, seed: 0);
        var densities = StageDensities.FromMixtures(mixtures, m => logDensity ? new GmmLogDensity(m) : new GmmNearestComponent(m));
        int n = 4;
        int per = setup.Images.Length / setup.Count;
        float[] x = setup.Images.AsSpan(0, n * per).ToArray();
        int[] shape = [n, .. setup.Shape.AsSpan(1)];
        int[] classes = [.. setup.Labels.Take(n).Select(l => 1 - l)];

        double Term(float[] images)
        {
            var (_, pools) = setup.Classifier.Forward(images, shape);
            return densities.Evaluate(pools, setup.Classifier.StageWidths, classes, false, out _).Sum();
        }

        var (logits, stagePools) = setup.Classifier.Forward(x, shape);
        densities.Evaluate(stagePools, setup.Classifier.StageWidths, classes, true, out var dPools);
        float[] gradient = setup.Classifier.InputGradient(new float[logits.Length], dPools);
        gradient.Max(Math.Abs).Should().BeGreaterThan(0f);

        var random = new Random(2);
        const float h = 1e-3f;
        for (int trial = 0; trial < 3; trial++)
        {
            var direction = Enumerable.Range(0, x.Length).Select(_ => random.Next(2) * 2f - 1f).ToArray();
            var plus = x.Select((v, i) => v + h * direction[i]).ToArray();
            var minus = x.Select((v, i) => v - h * direction[i]).ToArray();
            double numeric = (Term(plus) - Term(minus)) / (2 * h);
            double analytic = gradient.Select((g, i) => (double)g * direction[i]).Sum();
            output.WriteLine($"direction {trial}: numeric {numeric:E6}, analytic {analytic:E6}");
            Math.Abs(numeric - analytic).Should().BeLessThanOrEqualTo(2e-2 * Math.Abs(analytic) + 1e-3, $"direction {trial}");
        }
    }

    [Theory]
    [InlineData(CovarianceType.Full)]
    [InlineData(CovarianceType.Diagonal)]
    [InlineData(CovarianceType.Tied)]
    [InlineData(CovarianceType.Spherical)]
    public void Gmm_log_density_equals_score_samples_and_its_gradient_matches_finite_differences(CovarianceType type)
    {
        var random = new Random(4);
        const int n = 60;
        const int d = 5;
        var x = Enumerable.Range(0, n * d).Select(i => (float)(random.NextDouble() * 2 + (i / d % 2) * 3)).ToArray();
        var gmm = new GaussianMixture(new GaussianMixtureOptions { Components = 2, CovarianceType = type, Seed = 1 }).Fit(x, n, d);
        var density = new GmmLogDensity(gmm);
        var points = x.AsSpan(0, 4 * d).ToArray();
        var gradient = new float[points.Length];
        double[] scores = density.ScoreAndGradient(points, 4, gradient);
        // The diagonal path of ScoreSamples expands the quadratic as scikit-learn does and loses ~1e-7 relative to cancellation.
        Tolerance.AssertClose(scores, gmm.ScoreSamples(points, 4), 1e-5, 1e-6, "log density");

        var nearest = new GmmNearestComponent(gmm);
        var nearestGradient = new float[points.Length];
        double[] nearestScores = nearest.ScoreAndGradient(points, 4, nearestGradient);
        nearestScores.Should().OnlyContain(s => s <= 0);
        const double h = 1e-3;
        for (int j = 0; j < points.Length; j++)
        {
            var plus = (float[])points.Clone();
            var minus = (float[])points.Clone();
            plus[j] += (float)h;
            minus[j] -= (float)h;
            int i = j / d;
            double step = (double)plus[j] - minus[j];
            double numeric = (density.ScoreAndGradient(plus, 4, [])[i] - density.ScoreAndGradient(minus, 4, [])[i]) / step;
            numeric.Should().BeApproximately(gradient[j], 1e-3 * Math.Abs(numeric) + 1e-4, $"log density d/dx[{j}]");
            double numericNearest = (nearest.ScoreAndGradient(plus, 4, [])[i] - nearest.ScoreAndGradient(minus, 4, [])[i]) / step;
            numericNearest.Should().BeApproximately(nearestGradient[j], 1e-3 * Math.Abs(numericNearest) + 1e-4, $"Mahalanobis term d/dx[{j}]");
        }
    }
}
