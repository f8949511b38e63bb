using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.Intrinsics;

namespace IlgpuOct.Nn.Data;

/// <summary>
/// One split of an open <see cref="DatasetFile"/>: a view on the mapped file, so reading a batch
/// touches only the pages of its images.
/// </summary>
public sealed unsafe class DatasetSplit
{
    private readonly DatasetFile _file;
    private readonly long _pixelOffset;
    private readonly long _labelOffset;
    private int[]? _labels;

    internal DatasetSplit(DatasetFile file, string name, int count, long pixelOffset, long labelOffset)
    {
        _file = file;
        Name = name;
        Count = count;
        _pixelOffset = pixelOffset;
        _labelOffset = labelOffset;
    }

    public string Name { get; }

    public int Count { get; }

    public int Channels => _file.Channels;

    public int Height => _file.Height;

    public int Width => _file.Width;

    public IReadOnlyList<string> ClassNames => _file.ClassNames;

    /// <summary>All labels of the split (N), read once.</summary>
    public IReadOnlyList<int> Labels => _labels ??= ReadLabels();

    public int Label(int index)
    {
        CheckIndex(index);
        byte* p = _file.Pointer + _labelOffset;
        return _file.LabelBytes == 1 ? p[index] : BinaryPrimitives.ReadInt32LittleEndian(new ReadOnlySpan<byte>(p + (long)index * 4, 4));
    }

    /// <summary>Number of images per class (length = class count).</summary>
    public int[] ClassCounts()
    {
        var counts = new int[_file.ClassCount];
        foreach (int label in Labels)
        {
            counts[label]++;
        }
        return counts;
    }

    /// <summary>The raw pixels of one image (C, H, W) straight from the mapping.</summary>
    public ReadOnlySpan<byte> Image(int index)
    {
        CheckIndex(index);
        long bytes = _file.ImageBytes;
        return new ReadOnlySpan<byte>(_file.Pointer + _pixelOffset + index * bytes, (int)bytes);
    }

    /// <summary>
    /// Copies the images at <paramref name="indices"/> into <paramref name="destination"/> (B, C', H, W)
    /// as floats in [0, 1]. <paramref name="outputChannels"/> is the file's channel count (0 means that),
    /// or 3 for a grayscale file, which repeats the gray plane (for weights trained on RGB).
    /// </summary>
    public void CopyImages(ReadOnlySpan<int> indices, Span<float> destination, int outputChannels = 0)
    {
        int channels = outputChannels == 0 ? Channels : outputChannels;
        if (channels != Channels && !(Channels == 1 && channels == 3))
        {
            throw new ArgumentException($"Cannot give {channels} channels from a {Channels}-channel data set; use {Channels}{(Channels == 1 ? " or 3 (repeated gray)" : string.Empty)}.", nameof(outputChannels));
        }
        int plane = Height * Width;
        int perImage = channels * plane;
        if (destination.Length < (long)indices.Length * perImage)
        {
            throw new ArgumentException($"Destination holds {destination.Length} floats; {indices.Length} images of {channels}x{Height}x{Width} need {(long)indices.Length * perImage}.", nameof(destination));
        }
        for (int b = 0; b < indices.Length; b++)
        {
            var source = Image(indices[b]);
            var target = destination.Slice(b * perImage, perImage);
            if (channels == Channels)
            {
                ToUnitFloat(source, target);
            }
            else
            {
                ToUnitFloat(source, target[..plane]);
                target[..plane].CopyTo(target.Slice(plane, plane));
                target[..plane].CopyTo(target.Slice(2 * plane, plane));
            }
        }
    }

    /// <summary>Copies the labels at <paramref name="indices"/> into <paramref name="destination"/> (B).</summary>
    public void CopyLabels(ReadOnlySpan<int> indices, Span<int> destination)
    {
        if (destination.Length < indices.Length)
        {
            throw new ArgumentException($"Destination holds {destination.Length} labels; {indices.Length} needed.", nameof(destination));
        }
        for (int b = 0; b < indices.Length; b++)
        {
            destination[b] = Label(indices[b]);
        }
    }

    /// <summary>A seeded, shuffled mini-batch schedule over this split (see <see cref="MiniBatches"/>).</summary>
    public MiniBatches Batches(int batchSize, int seed, bool shuffle = true, bool dropLast = false) =>
        new(Count, batchSize, seed, shuffle, dropLast);

    /// <summary>uint8 -> float in [0, 1] (x / 255), vectorised.</summary>
    internal static void ToUnitFloat(ReadOnlySpan<byte> source, Span<float> target)
    {
        const float scale = 1f / 255f;
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var s = Vector256.Create(scale);
            for (; i + 32 <= source.Length; i += 32)
            {
                var bytes = Vector256.Create(source.Slice(i, 32));
                var (lo, hi) = Vector256.Widen(bytes);
                var (a, b) = Vector256.Widen(lo);
                var (c, d) = Vector256.Widen(hi);
                (Vector256.ConvertToSingle(a.AsInt32()) * s).CopyTo(target.Slice(i, 8));
                (Vector256.ConvertToSingle(b.AsInt32()) * s).CopyTo(target.Slice(i + 8, 8));
                (Vector256.ConvertToSingle(c.AsInt32()) * s).CopyTo(target.Slice(i + 16, 8));
                (Vector256.ConvertToSingle(d.AsInt32()) * s).CopyTo(target.Slice(i + 24, 8));
            }
        }
        for (; i < source.Length; i++)
        {
            target[i] = source[i] * scale;
        }
    }

    private int[] ReadLabels()
    {
        var labels = new int[Count];
        for (int i = 0; i < Count; i++)
        {
            labels[i] = Label(i);
        }
        return labels;
    }

    private void CheckIndex(int index)
    {
        if ((uint)index >= (uint)Count)
        {
            throw new ArgumentOutOfRangeException(nameof(index), index, $"Split '{Name}' has {Count} images (indices 0..{Count - 1}).");
        }
    }
}
