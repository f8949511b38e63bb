namespace IlgpuOct.Nn.Data;

/// <summary>One split held in memory before it is written: images (N, C, H, W) uint8 and labels (N).</summary>
public sealed class SplitData
{
    public SplitData(string name, byte[] images, int[] labels)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(labels);
        Name = name;
        Images = images;
        Labels = labels;
    }

    public string Name { get; }

    public byte[] Images { get; } // (N, C, H, W)

    public int[] Labels { get; } // (N)

    public int Count => Labels.Length;
}

/// <summary>A whole data set in memory: shape, class names, source description and its splits in file order.</summary>
public sealed class DatasetContent
{
    /// <summary>The canonical split order in a file; other names follow these.</summary>
    public static readonly IReadOnlyList<string> SplitOrder = ["train", "unlabeled", "val", "test"];

    public DatasetContent(int channels, int height, int width, IReadOnlyList<string> classNames, string source, IReadOnlyList<SplitData> splits)
    {
        if (channels is not (1 or 3))
        {
            throw new ArgumentOutOfRangeException(nameof(channels), channels, "Channels must be 1 (grayscale) or 3 (RGB).");
        }
        if (height <= 0 || width <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(height), $"Image size must be positive, got {height}x{width}.");
        }
        ArgumentNullException.ThrowIfNull(classNames);
        ArgumentNullException.ThrowIfNull(splits);
        if (classNames.Count == 0 || classNames.Any(string.IsNullOrEmpty))
        {
            throw new ArgumentException("Give at least one class, each with a non-empty name.", nameof(classNames));
        }
        if (splits.Count == 0)
        {
            throw new ArgumentException("A data set needs at least one split.", nameof(splits));
        }
        if (splits.Select(s => s.Name).Distinct(StringComparer.Ordinal).Count() != splits.Count)
        {
            throw new ArgumentException($"Split names must be unique: {string.Join(", ", splits.Select(s => s.Name))}.", nameof(splits));
        }
        long imageBytes = (long)channels * height * width;
        foreach (var split in splits)
        {
            if (split.Images.LongLength != split.Count * imageBytes)
            {
                throw new ArgumentException($"Split '{split.Name}' has {split.Images.LongLength} pixel bytes for {split.Count} labels; expected {split.Count * imageBytes} ({channels}x{height}x{width} each).", nameof(splits));
            }
            int bad = Array.FindIndex(split.Labels, l => l < 0 || l >= classNames.Count);
            if (bad >= 0)
            {
                throw new ArgumentException($"Split '{split.Name}' label {split.Labels[bad]} at index {bad} is outside 0..{classNames.Count - 1}.", nameof(splits));
            }
        }
        Channels = channels;
        Height = height;
        Width = width;
        ClassNames = classNames.ToArray();
        Source = source ?? string.Empty;
        Splits = splits.OrderBy(s => SplitRank(s.Name)).ToArray();
    }

    public int Channels { get; }

    public int Height { get; }

    public int Width { get; }

    public IReadOnlyList<string> ClassNames { get; }

    public string Source { get; }

    public IReadOnlyList<SplitData> Splits { get; }

    public long ImageCount => Splits.Sum(s => (long)s.Count);

    internal static int SplitRank(string name)
    {
        int i = ((IList<string>)SplitOrder).IndexOf(name);
        return i >= 0 ? i : SplitOrder.Count;
    }
}
