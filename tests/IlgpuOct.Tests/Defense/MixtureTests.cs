using FluentAssertions;
using IlgpuOct.Defense.Density;
using IlgpuOct.Tests.Support;
using Xunit;

namespace IlgpuOct.Tests.Defense;

public sealed class MixtureTests
{
    // Points around the given centres with unit-ish Gaussian noise (Box-Muller), seeded.
    internal static float[] Blobs(int perCluster, double[][] centres, double spread, int seed)
    {
        var random = new Random(seed);
        int d = centres[0].Length;
        var x = new float[centres.Length * perCluster * d];
        int row = 0;
        foreach (var centre in centres)
        {
            for (int i = 0; i < perCluster; i++, row++)
            {
                for (int j = 0; j < d; j++)
                {
                    double u1 = 1.0 - random.NextDouble();
                    double u2 = random.NextDouble();
                    double g = Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
                    x[row * d + j] = (float)(centre[j] + spread * g * (1 + 0.3 * j));
                }
            }
        }
        return x;
    }

    private static readonly double[][] ThreeCentres = [[0, 0, 0], [6, 0, 1], [0, 7, -2]];

    [Fact]
    public void K_means_plus_plus_is_deterministic_by_seed()
    {
        var x = Array.ConvertAll(Blobs(40, ThreeCentres, 0.5, 1), v => (double)v);
        int n = 120;
        var a = KMeans.PlusPlusCenters(x, n, 3, 3, new Random(7));
        var b = KMeans.PlusPlusCenters(x, n, 3, 3, new Random(7));
        var c = KMeans.PlusPlusCenters(x, n, 3, 3, new Random(8));
        a.Should().Equal(b);
        c.Should().NotEqual(a);
        // Every centre is one of the data points.
        for (int k = 0; k < 3; k++)
        {
            Enumerable.Range(0, n).Any(i => x.AsSpan(i * 3, 3).SequenceEqual(a.AsSpan(k * 3, 3))).Should().BeTrue();
        }
        var (_, labels1) = KMeans.Fit(x, n, 3, 3, new Random(3));
        var (_, labels2) = KMeans.Fit(x, n, 3, 3, new Random(3));
        labels1.Should().Equal(labels2);
        // Well-separated blobs: each blob is one cluster.
        for (int blob = 0; blob < 3; blob++)
        {
            labels1.Skip(blob * 40).Take(40).Distinct().Should().HaveCount(1);
        }
        labels1.Distinct().Should().HaveCount(3);
    }

    [Fact]
    public void Fit_is_bit_reproducible_and_recovers_separated_clusters()
    {
        var x = Blobs(60, ThreeCentres, 0.8, 2);
        var options = new GaussianMixtureOptions { Components = 3, Seed = 5 };
        var a = new GaussianMixture(options).Fit(x, 180, 3);
        var b = new GaussianMixture(options).Fit(x, 180, 3);
        a.Means.ToArray().Should().Equal(b.Means.ToArray());
        a.LowerBound.Should().Be(b.LowerBound);
        a.Converged.Should().BeTrue();
        var labels = a.Predict(x, 180);
        for (int blob = 0; blob < 3; blob++)
        {
            labels.Skip(blob * 60).Take(60).Distinct().Should().HaveCount(1);
        }
        var grid = new float[180, 3];
        Buffer.BlockCopy(x, 0, grid, 0, x.Length * sizeof(float));
        a.Predict(grid).Should().Equal(labels);
        a.ScoreSamples(grid).Should().Equal(a.ScoreSamples(x, 180));
        var proba = a.PredictProba(x, 180);
        for (int i = 0; i < 180; i++)
        {
            (proba[i * 3] + proba[i * 3 + 1] + proba[i * 3 + 2]).Should().BeApproximately(1.0, 1e-12);
        }
    }

    [Fact]
    public void Restarts_keep_the_largest_lower_bound()
    {
        // Five blobs for three components: k-means++ starts land in different local optima.
        double[][] centres = [[0, 0], [4, 0], [0, 4], [4, 4], [2, 2]];
        var x = Blobs(30, centres, 0.9, 3);
        int n = 150;
        var singles = Enumerable.Range(0, 6)
            .Select(r => new GaussianMixture(new GaussianMixtureOptions { Components = 3, Seed = 10 + r }).Fit(x, n, 2))
            .ToArray();
        singles.Select(g => g.LowerBound).Distinct().Should().HaveCountGreaterThan(1, "the restarts must differ for the test to mean anything");
        var best = singles.MaxBy(g => g.LowerBound)!;
        var multi = new GaussianMixture(new GaussianMixtureOptions { Components = 3, Seed = 10, Restarts = 6 }).Fit(x, n, 2);
        multi.LowerBound.Should().Be(best.LowerBound);
        multi.Means.ToArray().Should().Equal(best.Means.ToArray());
        multi.NIter.Should().Be(best.NIter);
    }

    [Fact]
    public void Tied_covariance_is_the_pooled_within_cluster_covariance()
    {
        // Clusters 200 apart: from the true means the responsibilities are exactly one-hot.
        double[][] centres = [[0, 0, 0], [200, 0, 0]];
        var x = Blobs(50, centres, 1.0, 4);
        int n = 100;
        int d = 3;
        var xd = Array.ConvertAll(x, v => (double)v);
        var means = new double[2 * d];
        for (int c = 0; c < 2; c++)
        {
            for (int j = 0; j < d; j++)
            {
                means[c * d + j] = Enumerable.Range(c * 50, 50).Average(i => xd[i * d + j]);
            }
        }
        var pooled = new double[d * d];
        for (int i = 0; i < n; i++)
        {
            int c = i / 50;
            for (int a = 0; a < d; a++)
            {
                for (int b = 0; b < d; b++)
                {
                    pooled[a * d + b] += (xd[i * d + a] - means[c * d + a]) * (xd[i * d + b] - means[c * d + b]) / n;
                }
            }
        }
        double reg = 1e-6;
        for (int a = 0; a < d; a++)
        {
            pooled[a * d + a] += reg;
        }
        var gmm = new GaussianMixture(new GaussianMixtureOptions
        {
            Components = 2,
            CovarianceType = CovarianceType.Tied,
            RegCovar = reg,
            MaxIterations = 1,
            Start = new GaussianMixtureStart([0.5, 0.5], means),
        }).Fit(x, n, d);
        gmm.Covariances.Length.Should().Be(d * d);
        Tolerance.AssertClose(gmm.Covariances, pooled, 1e-10, 1e-9, "tied covariance");
        Tolerance.AssertClose(gmm.Means, means, 1e-10, 1e-12, "means");
    }

    [Fact]
    public void Single_component_full_and_tied_agree()
    {
        var x = Blobs(80, [[1, 2, 3, 4]], 1.5, 5);
        var full = new GaussianMixture(new GaussianMixtureOptions { Components = 1 }).Fit(x, 80, 4);
        var tied = new GaussianMixture(new GaussianMixtureOptions { Components = 1, CovarianceType = CovarianceType.Tied }).Fit(x, 80, 4);
        Tolerance.AssertClose(tied.Covariances, full.Covariances, 1e-9, 1e-9, "covariance");
        tied.LowerBound.Should().BeApproximately(full.LowerBound, 1e-9);
        var diag = new GaussianMixture(new GaussianMixtureOptions { Components = 1, CovarianceType = CovarianceType.Diagonal }).Fit(x, 80, 4);
        var spherical = new GaussianMixture(new GaussianMixtureOptions { Components = 1, CovarianceType = CovarianceType.Spherical }).Fit(x, 80, 4);
        for (int j = 0; j < 4; j++)
        {
            // The diagonal formulas square float32 input in float32 (as numpy does): agreement to ~1e-8 relative.
            diag.Covariances[j].Should().BeApproximately(full.Covariances[j * 4 + j], 1e-6 * full.Covariances[j * 4 + j]);
        }
        spherical.Covariances[0].Should().BeApproximately(diag.Covariances.ToArray().Average(), 1e-6);
    }

    [Theory]
    [InlineData(CovarianceType.Full, 3 * 4 * 5 / 2)]
    [InlineData(CovarianceType.Diagonal, 3 * 4)]
    [InlineData(CovarianceType.Tied, 4 * 5 / 2)]
    [InlineData(CovarianceType.Spherical, 3)]
    public void Bic_and_aic_count_parameters_as_scikit_learn(CovarianceType type, int covarianceParameters)
    {
        var x = Blobs(30, [[0, 0, 0, 0], [5, 5, 0, 0], [0, 5, 5, 0]], 1.0, 6);
        int n = 90;
        var gmm = new GaussianMixture(new GaussianMixtureOptions { Components = 3, CovarianceType = type }).Fit(x, n, 4);
        int expected = covarianceParameters + 3 * 4 + 3 - 1;
        gmm.ParameterCount.Should().Be(expected);
        double logLikelihood = gmm.ScoreSamples(x, n).Sum();
        gmm.Bic(x, n).Should().BeApproximately(-2 * logLikelihood + expected * Math.Log(n), 1e-9);
        gmm.Aic(x, n).Should().BeApproximately(-2 * logLikelihood + 2 * expected, 1e-9);
    }

    [Theory]
    [InlineData(CovarianceType.Full)]
    [InlineData(CovarianceType.Diagonal)]
    [InlineData(CovarianceType.Tied)]
    [InlineData(CovarianceType.Spherical)]
    public void Save_and_load_round_trip(CovarianceType type)
    {
        var x = Blobs(40, ThreeCentres, 1.0, 7);
        var gmm = new GaussianMixture(new GaussianMixtureOptions { Components = 3, CovarianceType = type, Seed = 3 }).Fit(x, 120, 3);
        string path = Path.Combine(Path.GetTempPath(), $"gmm-{Guid.NewGuid():N}.safetensors");
        try
        {
            gmm.Save(path);
            var loaded = GaussianMixture.Load(path);
            loaded.CovarianceType.Should().Be(type);
            loaded.NIter.Should().Be(gmm.NIter);
            loaded.LowerBound.Should().Be(gmm.LowerBound);
            loaded.Converged.Should().Be(gmm.Converged);
            loaded.ScoreSamples(x, 120).Should().Equal(gmm.ScoreSamples(x, 120));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Log_density_of_one_component_is_the_gaussian_density()
    {
        // One component from an explicit start and no iterations is N(mu, I).
        var gmm = new GaussianMixture(new GaussianMixtureOptions
        {
            Components = 1,
            MaxIterations = 0,
            Start = new GaussianMixtureStart([1.0], [1.0, -2.0]),
        }).Fit(new float[] { 0, 0, 1, 1 }, 2, 2);
        double[] score = gmm.ScoreSamples(new float[] { 3, 1 }, 1);
        double expected = -Math.Log(2 * Math.PI) - 0.5 * (4 + 9);
        score[0].Should().BeApproximately(expected, 1e-12);
        gmm.NIter.Should().Be(0);
    }

    [Fact]
    public void Collapsed_data_fails_with_advice()
    {
        var x = new float[20]; // ten identical points
        var act = () => new GaussianMixture(new GaussianMixtureOptions { Components = 2, RegCovar = 0 }).Fit(x, 10, 2);
        act.Should().Throw<InvalidOperationException>().WithMessage("*increase RegCovar*");
        var bad = () => new GaussianMixture(new GaussianMixtureOptions { Components = 2 }).Fit(new float[5], 2, 2);
        bad.Should().Throw<ArgumentException>().WithMessage("*(N, D) row-major*");
    }
}
