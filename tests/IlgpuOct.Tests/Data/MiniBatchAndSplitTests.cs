using FluentAssertions;
using IlgpuOct.Nn.Data;
using Xunit;

namespace IlgpuOct.Tests.Data;

public sealed class MiniBatchAndSplitTests
{
    [Fact]
    public void Same_seed_and_epoch_give_the_same_order_and_epochs_differ()
    {
        var a = new MiniBatches(1000, 64, seed: 5);
        var b = new MiniBatches(1000, 64, seed: 5);
        a.Permutation(3).Should().Equal(b.Permutation(3));
        a.Permutation(3).Should().NotEqual(a.Permutation(4));
        new MiniBatches(1000, 64, seed: 6).Permutation(3).Should().NotEqual(a.Permutation(3));
        a.Permutation(0).Order().Should().Equal(Enumerable.Range(0, 1000));
    }

    [Fact]
    public void An_epoch_visits_every_index_once_in_batches_of_the_given_size()
    {
        var batches = new MiniBatches(10, 4, seed: 1);
        var epoch = batches.Epoch(2).Select(m => m.ToArray()).ToList();
        epoch.Select(e => e.Length).Should().Equal(4, 4, 2);
        epoch.SelectMany(e => e).Should().Equal(batches.Permutation(2));
        var dropping = new MiniBatches(10, 4, seed: 1, dropLast: true);
        dropping.BatchesPerEpoch.Should().Be(2);
        dropping.Epoch(0).Should().HaveCount(2);
        new MiniBatches(5, 2, seed: 9, shuffle: false).Permutation(7).Should().Equal(0, 1, 2, 3, 4);
    }

    [Fact]
    public void Balanced_labels_have_equal_class_counts_and_are_seeded()
    {
        var labels = BalancedSplits.BalancedLabels(4000, 4, seed: 3);
        labels.GroupBy(l => l).Select(g => g.Count()).Should().AllBeEquivalentTo(1000);
        BalancedSplits.BalancedLabels(4000, 4, seed: 3).Should().Equal(labels);
        BalancedSplits.BalancedLabels(4000, 4, seed: 4).Should().NotEqual(labels);
        BalancedSplits.PerClass(1000, 4).Should().Equal(250, 250, 250, 250);
        BalancedSplits.PerClass(10, 4).Should().Equal(3, 3, 2, 2);
        BalancedSplits.PaperSizes.Select(p => p.Count).Should().Equal(4000, 1000, 500, 1000);
    }

    [Fact]
    public void Stratified_split_moves_the_fraction_of_each_class()
    {
        var labels = Enumerable.Range(0, 100).Select(i => i < 60 ? 0 : 1).ToArray();
        var (first, second) = BalancedSplits.Stratified(labels, 0.25, seed: 2);
        second.Count(i => labels[i] == 0).Should().Be(15);
        second.Count(i => labels[i] == 1).Should().Be(10);
        first.Concat(second).Order().Should().Equal(Enumerable.Range(0, 100));
        BalancedSplits.Stratified(labels, 0.25, seed: 2).Second.Should().Equal(second);
    }
}
