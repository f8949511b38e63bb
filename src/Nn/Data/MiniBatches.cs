namespace IlgpuOct.Nn.Data;

/// <summary>
/// A seeded mini-batch schedule: epoch e uses the permutation drawn from (seed, e), so any epoch
/// can be replayed on its own and two runs with the same seed see the same batches.
/// </summary>
public sealed class MiniBatches
{
    public MiniBatches(int count, int batchSize, int seed, bool shuffle = true, bool dropLast = false)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (batchSize <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "Batch size must be at least 1.");
        }
        Count = count;
        BatchSize = batchSize;
        Seed = seed;
        Shuffle = shuffle;
        DropLast = dropLast;
    }

    public int Count { get; }

    public int BatchSize { get; }

    public int Seed { get; }

    public bool Shuffle { get; }

    public bool DropLast { get; }

    public int BatchesPerEpoch => DropLast ? Count / BatchSize : (Count + BatchSize - 1) / BatchSize;

    /// <summary>The order of the split's indices in epoch <paramref name="epoch"/> (identity when not shuffling).</summary>
    public int[] Permutation(int epoch)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(epoch);
        if (!Shuffle)
        {
            return Enumerable.Range(0, Count).ToArray();
        }
        return Seeds.Permutation(Count, Seeds.Derive(Seed, stream: 0x0BA7C4, epoch));
    }

    /// <summary>The batches of one epoch, each a slice of that epoch's permutation.</summary>
    public IEnumerable<ReadOnlyMemory<int>> Epoch(int epoch)
    {
        int[] order = Permutation(epoch);
        for (int b = 0; b < BatchesPerEpoch; b++)
        {
            int start = b * BatchSize;
            yield return order.AsMemory(start, Math.Min(BatchSize, Count - start));
        }
    }
}
