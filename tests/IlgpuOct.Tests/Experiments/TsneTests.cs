using FluentAssertions;
using IlgpuOct.Defense.Metrics;
using Xunit;

namespace IlgpuOct.Tests.Experiments;

public sealed class TsneTests
{
    /// <summary>Three tight, far-apart clusters in 8-D; 30 points each.</summary>
    private static (float[] Points, int[] Cluster) Clusters()
    {
        var rng = new Random(3);
        var points = new float[90 * 8];
        var cluster = new int[90];
        for (int i = 0; i < 90; i++)
        {
            cluster[i] = i % 3;
            for (int k = 0; k < 8; k++)
            {
                points[i * 8 + k] = (k == cluster[i] ? 10f : 0f) + (float)(rng.NextDouble() - 0.5);
            }
        }
        return (points, cluster);
    }

    [Fact]
    public void SeparatedClustersStaySeparatedInThePlane()
    {
        var (points, cluster) = Clusters();
        var result = Tsne.Embed(points, 90, 8, new TsneOptions { Perplexity = 10, Iterations = 400, Seed = 1 });
        result.Y.Should().HaveCount(180).And.OnlyContain(v => double.IsFinite(v));
        double.IsFinite(result.KlDivergence).Should().BeTrue();
        result.KlDivergence.Should().BeGreaterThan(0);
        int sameCluster = 0;
        for (int i = 0; i < 90; i++)
        {
            int nearest = Enumerable.Range(0, 90).Where(j => j != i)
                .MinBy(j => Math.Pow(result.Y[2 * i] - result.Y[2 * j], 2) + Math.Pow(result.Y[2 * i + 1] - result.Y[2 * j + 1], 2));
            sameCluster += cluster[nearest] == cluster[i] ? 1 : 0;
        }
        sameCluster.Should().BeGreaterThanOrEqualTo(87, "nearly every point's nearest neighbour in the embedding is from its own cluster (random: a third)");
    }

    [Fact]
    public void TheSameSeedGivesTheSameEmbeddingAndAnotherSeedAnother()
    {
        var (points, _) = Clusters();
        var options = new TsneOptions { Perplexity = 10, Iterations = 60, Seed = 5 };
        var a = Tsne.Embed(points, 90, 8, options);
        var b = Tsne.Embed(points, 90, 8, options);
        var c = Tsne.Embed(points, 90, 8, options with { Seed = 6 });
        a.Y.Should().Equal(b.Y);
        a.Y.Should().NotEqual(c.Y);
    }

    [Fact]
    public void JointProbabilitiesAreSymmetricAndSumToOne()
    {
        var (points, _) = Clusters();
        double[] p = Tsne.JointProbabilities(points, 90, 8, 10);
        // Symmetric, sums to one.
        p.Sum().Should().BeApproximately(1.0, 1e-6);
        for (int i = 0; i < 90; i++)
        {
            for (int j = 0; j < 90; j++)
            {
                p[i * 90 + j].Should().BeApproximately(p[j * 90 + i], 1e-15);
            }
        }
    }

    [Fact]
    public void BadInputIsAClearError()
    {
        var act = () => Tsne.Embed(new float[12], 3, 4);
        act.Should().Throw<ArgumentException>().WithMessage("*at least 4 points*");
        var perplexity = () => Tsne.Embed(new float[40], 10, 4, new TsneOptions { Perplexity = 30 });
        perplexity.Should().Throw<ArgumentException>().WithMessage("*Perplexity*");
    }
}
