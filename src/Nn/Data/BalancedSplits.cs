namespace IlgpuOct.Nn.Data;

/// <summary>Seeded, class-balanced label lists and split assignments (the paper's 1000/250/250 per class).</summary>
public static class BalancedSplits
{
    /// <summary>The paper's sizes: 4000 train, 1000 unlabeled, 1000 test; plus a 500-image validation split for thresholds.</summary>
    public static IReadOnlyList<(string Name, int Count)> PaperSizes { get; } =
        [("train", 4000), ("unlabeled", 1000), ("val", 500), ("test", 1000)];

    /// <summary>
    /// <paramref name="count"/> labels over <paramref name="classes"/> classes, as equal as possible
    /// (the first count % classes classes get one more), in a seeded random order.
    /// </summary>
    public static int[] BalancedLabels(int count, int classes, int seed)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(classes);
        var labels = new int[count];
        for (int i = 0; i < count; i++)
        {
            labels[i] = i % classes;
        }
        new Random(seed).Shuffle(labels);
        return labels;
    }

    /// <summary>How many images of each class a balanced split of <paramref name="count"/> takes.</summary>
    public static int[] PerClass(int count, int classes)
    {
        var perClass = new int[classes];
        for (int c = 0; c < classes; c++)
        {
            perClass[c] = count / classes + (c < count % classes ? 1 : 0);
        }
        return perClass;
    }

    /// <summary>
    /// Splits the indices of a labelled pool into two disjoint stratified parts: about
    /// <paramref name="fraction"/> of each class goes to the second part. Seeded; order within parts is by index.
    /// </summary>
    public static (int[] First, int[] Second) Stratified(IReadOnlyList<int> labels, double fraction, int seed)
    {
        ArgumentNullException.ThrowIfNull(labels);
        if (fraction is < 0 or > 1 || double.IsNaN(fraction))
        {
            throw new ArgumentOutOfRangeException(nameof(fraction), fraction, "The fraction must lie in [0, 1].");
        }
        var first = new List<int>();
        var second = new List<int>();
        foreach (var group in Enumerable.Range(0, labels.Count).GroupBy(i => labels[i]).OrderBy(g => g.Key))
        {
            int[] members = group.ToArray();
            new Random(Seeds.Derive(seed, group.Key, 7)).Shuffle(members);
            int take = (int)Math.Round(members.Length * fraction);
            second.AddRange(members[..take]);
            first.AddRange(members[take..]);
        }
        first.Sort();
        second.Sort();
        return (first.ToArray(), second.ToArray());
    }
}
