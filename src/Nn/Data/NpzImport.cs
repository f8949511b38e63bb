using IlgpuOct.Kernels;
using System.IO.Compression;

namespace IlgpuOct.Nn.Data;

/// <summary>Options of a MedMNIST .npz import.</summary>
/// <param name="Preprocess">Image pipeline (resize/crop/channels).</param>
/// <param name="UnlabeledFraction">Fraction of each class of the train split moved to 'unlabeled' (stratified).</param>
/// <param name="Seed">Seed of the unlabeled split.</param>
/// <param name="ClassNames">Class names in label order; null picks MedMNIST's names from the file name, else class_0...</param>
public sealed record NpzImportOptions(Preprocess Preprocess, double UnlabeledFraction = 0, int Seed = 0, IReadOnlyList<string>? ClassNames = null);

/// <summary>
/// Imports a MedMNIST .npz (a zip of .npy arrays train/val/test _images/_labels): images uint8
/// (N, H, W) or (N, H, W, 3), labels (N) or (N, 1); any image size. The file's own splits are kept;
/// train can give part of itself to 'unlabeled'.
/// </summary>
public static class NpzImport
{
    private static readonly string[] FileSplits = ["train", "val", "test"];

    /// <summary>Label names of the MedMNIST sets that this project uses, by file-name prefix.</summary>
    public static IReadOnlyDictionary<string, string[]> KnownClassNames { get; } = new Dictionary<string, string[]>(StringComparer.OrdinalIgnoreCase)
    {
        ["octmnist"] = ["CNV", "DME", "DRUSEN", "NORMAL"],
        ["pneumoniamnist"] = ["normal", "pneumonia"],
    };

    /// <summary>Images (N, C, H, W) as stored in the file (C = 1 for (N, H, W), 3 for (N, H, W, 3)) and labels (N).</summary>
    public sealed record NpzSplit(string Name, int Count, int Channels, int Height, int Width, byte[] Images, int[] Labels);

    /// <summary>Reads the train/val/test arrays of a .npz exactly as stored (no preprocessing).</summary>
    public static IReadOnlyList<NpzSplit> Read(string path, CancellationToken cancellationToken = default)
    {
        var splits = new List<NpzSplit>();
        ForEachSplit(path, (name, header, imageStream, labels) =>
        {
            var (count, channels, height, width) = ImageShape(path, name, header);
            var images = new byte[ImportBytes(path, name, count, channels * height * width, "the file's own image size")];
            var buffer = new byte[height * width * channels];
            for (int i = 0; i < count; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                Npy.ReadExactly(imageStream, buffer, $"'{path}' entry {name}_images.npy", $"image {i} of {count} (the array is truncated)");
                ToPlanar(buffer, channels, height, width, images.AsSpan(i * buffer.Length, buffer.Length));
            }
            splits.Add(new NpzSplit(name, count, channels, height, width, images, labels));
        });
        return splits;
    }

    /// <summary>Imports a .npz into a data set with the given preprocessing and unlabeled fraction.</summary>
    public static ImportResult Import(string path, NpzImportOptions options, IProgress<DataProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var pre = options.Preprocess;
        int outBytes = pre.Channels * pre.Resolution * pre.Resolution;
        var raw = new List<SplitData>();
        int maxLabel = -1;
        ForEachSplit(path, (name, header, imageStream, labels) =>
        {
            var (count, channels, height, width) = ImageShape(path, name, header);
            var images = new byte[ImportBytes(path, name, count, outBytes, "--resolution or --channels")];
            var buffer = new byte[height * width * channels];
            var planar = new byte[buffer.Length];
            for (int i = 0; i < count; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                Npy.ReadExactly(imageStream, buffer, $"'{path}' entry {name}_images.npy", $"image {i} of {count} (the array is truncated)");
                ToPlanar(buffer, channels, height, width, planar);
                pre.Apply(planar, channels, height, width, images.AsSpan(i * outBytes, outBytes));
                if ((i & 1023) == 1023 || i == count - 1)
                {
                    progress?.Report(new DataProgress($"reading {name}", i + 1, count));
                }
            }
            int bad = Array.FindIndex(labels, l => l < 0);
            if (bad >= 0)
            {
                throw new InvalidFileFormatException($"'{path}' entry {name}_labels.npy has a negative label {labels[bad]} at index {bad}.");
            }
            maxLabel = Math.Max(maxLabel, labels.Length == 0 ? -1 : labels.Max());
            if (maxLabel >= MaxClasses)
            {
                throw new InvalidFileFormatException($"'{path}' entry {name}_labels.npy has label {maxLabel}; at most {MaxClasses} classes (labels 0..{MaxClasses - 1}) are supported.");
            }
            raw.Add(new SplitData(name, images, labels));
        });
        if (raw.Count == 0)
        {
            throw new InvalidFileFormatException($"'{path}' has none of train_images.npy, val_images.npy, test_images.npy: it is not a MedMNIST .npz.");
        }
        var classNames = ResolveClassNames(path, options.ClassNames, maxLabel + 1);
        var splits = new List<SplitData>();
        foreach (var split in raw)
        {
            if (split.Name == "train" && options.UnlabeledFraction > 0)
            {
                var (kept, moved) = BalancedSplits.Stratified(split.Labels, options.UnlabeledFraction, options.Seed);
                splits.Add(Subset(split, "train", kept, outBytes));
                splits.Add(Subset(split, "unlabeled", moved, outBytes));
            }
            else
            {
                splits.Add(split);
            }
        }
        string source = $"medmnist-npz {Path.GetFileName(path)}; {pre}; unlabeled-fraction={options.UnlabeledFraction} seed={options.Seed}";
        return new ImportResult(new DatasetContent(pre.Channels, pre.Resolution, pre.Resolution, classNames, source, splits), []);
    }

    /// <summary>The most classes an imported set may have (labels 0..MaxClasses-1).</summary>
    public const int MaxClasses = 1 << 16;

    /// <summary>count x bytes per image, refused with what to lower when one array could not hold it.</summary>
    private static long ImportBytes(string path, string split, int count, long perImage, string lower)
    {
        long total = (long)count * perImage;
        if (total > Array.MaxLength)
        {
            throw new ArgumentException(
                $"'{path}' split '{split}' has {count} images of {perImage} bytes = {total} bytes, more than one split may hold ({Array.MaxLength}); lower {lower}.");
        }
        return total;
    }

    private static SplitData Subset(SplitData split, string name, int[] indices, int imageBytes)
    {
        var images = new byte[(long)indices.Length * imageBytes];
        var labels = new int[indices.Length];
        for (int i = 0; i < indices.Length; i++)
        {
            Array.Copy(split.Images, (long)indices[i] * imageBytes, images, (long)i * imageBytes, imageBytes);
            labels[i] = split.Labels[indices[i]];
        }
        return new SplitData(name, images, labels);
    }

    private static IReadOnlyList<string> ResolveClassNames(string path, IReadOnlyList<string>? given, int classesInFile)
    {
        if (given is not null)
        {
            if (given.Count < classesInFile)
            {
                throw new ArgumentException($"{given.Count} class names given but '{path}' has labels up to {classesInFile - 1}; give {classesInFile} or more.");
            }
            return given;
        }
        string file = Path.GetFileNameWithoutExtension(path);
        foreach (var (prefix, names) in KnownClassNames)
        {
            if (file.StartsWith(prefix, StringComparison.OrdinalIgnoreCase) && names.Length >= classesInFile)
            {
                return names;
            }
        }
        return Enumerable.Range(0, Math.Max(classesInFile, 1)).Select(i => $"class_{i}").ToArray();
    }

    private static (int Count, int Channels, int Height, int Width) ImageShape(string path, string split, NpyHeader header)
    {
        string entry = $"'{path}' entry {split}_images.npy";
        if (header.Descr != "|u1" && header.Descr != "<u1" && header.Descr != ">u1")
        {
            throw new InvalidFileFormatException($"{entry} has element type '{header.Descr}'; images must be uint8 ('|u1').");
        }
        if (header.FortranOrder)
        {
            throw new InvalidFileFormatException($"{entry} is stored in Fortran order; re-save it in C order (numpy.ascontiguousarray).");
        }
        var s = header.Shape;
        bool gray = s.Length == 3;
        bool rgb = s.Length == 4 && s[3] == 3;
        if (!gray && !rgb || s.Skip(1).Any(d => d <= 0 || d > 1 << 15) || s[0] > int.MaxValue || s[1] * s[2] > 1 << 28)
        {
            throw new InvalidFileFormatException($"{entry} has shape {header.ShapeText}; expected (N, H, W) or (N, H, W, 3).");
        }
        return ((int)s[0], rgb ? 3 : 1, (int)s[1], (int)s[2]);
    }

    /// <summary>(H, W, C) interleaved -> (C, H, W) planar; a copy when C = 1.</summary>
    private static void ToPlanar(ReadOnlySpan<byte> interleaved, int channels, int height, int width, Span<byte> planar)
    {
        if (channels == 1)
        {
            interleaved.CopyTo(planar);
            return;
        }
        int plane = height * width;
        for (int i = 0; i < plane; i++)
        {
            for (int c = 0; c < channels; c++)
            {
                planar[c * plane + i] = interleaved[i * channels + c];
            }
        }
    }

    private static void ForEachSplit(string path, Action<string, NpyHeader, Stream, int[]> visit)
    {
        if (!File.Exists(path) && !Directory.Exists(path))
        {
            throw new FileNotFoundException($"The .npz file '{path}' does not exist.", path);
        }
        InputFile.Check(path, ".npz file");
        ZipArchive archive;
        try
        {
            archive = ZipFile.OpenRead(path);
            try
            {
                _ = archive.Entries.Count; // reads the central directory now, inside this handler
            }
            catch
            {
                archive.Dispose();
                throw;
            }
        }
        catch (Exception e) when (e is InvalidDataException or (IOException and not FileNotFoundException and not InvalidFileFormatException))
        {
            throw new InvalidFileFormatException($"'{path}' is not a readable .npz (zip) file: {e.Message}", e);
        }
        // What an entry can really hold: its declared size, but never more than deflate's ratio allows
        // from the whole file (a forged size must not make us allocate gigabytes before reading).
        long fileBytes = new FileInfo(path).Length;
        long Available(ZipArchiveEntry entry) => Math.Min(entry.Length, fileBytes * 1032L);
        using (archive)
        {
            foreach (string split in FileSplits)
            {
                var imagesEntry = archive.GetEntry($"{split}_images.npy");
                var labelsEntry = archive.GetEntry($"{split}_labels.npy");
                if (imagesEntry is null && labelsEntry is null)
                {
                    continue;
                }
                if (imagesEntry is null || labelsEntry is null)
                {
                    throw new InvalidFileFormatException($"'{path}' has {(imagesEntry is null ? labelsEntry!.FullName : imagesEntry.FullName)} without its partner ({split}_images.npy and {split}_labels.npy belong together).");
                }
                try
                {
                    int[] labels;
                    using (var labelStream = labelsEntry.Open())
                    {
                        string labelName = $"'{path}' entry {labelsEntry.FullName}";
                        var labelHeader = Npy.ReadHeader(labelStream, labelName);
                        var ls = labelHeader.Shape;
                        if (!(ls.Length == 1 || (ls.Length == 2 && ls[1] == 1)))
                        {
                            throw new InvalidFileFormatException($"{labelName} has shape {labelHeader.ShapeText}; expected (N) or (N, 1) (multi-label sets are not supported).");
                        }
                        if (labelHeader.ElementCount > Available(labelsEntry) / Math.Max(1, labelHeader.Descr.Length == 3 ? labelHeader.Descr[2] - '0' : 1))
                        {
                            throw new InvalidFileFormatException($"{labelName} declares shape {labelHeader.ShapeText} but the entry holds only {labelsEntry.Length} bytes.");
                        }
                        labels = Npy.ReadIntegers(labelStream, labelHeader, labelName);
                    }
                    using var imageStream = imagesEntry.Open();
                    var header = Npy.ReadHeader(imageStream, $"'{path}' entry {imagesEntry.FullName}");
                    if (header.Shape.Length > 0 && header.Shape[0] != labels.Length)
                    {
                        throw new InvalidFileFormatException($"'{path}' has {header.Shape[0]} {split} images but {labels.Length} {split} labels.");
                    }
                    if (header.ElementCount > Available(imagesEntry))
                    {
                        throw new InvalidFileFormatException($"'{path}' entry {imagesEntry.FullName} declares shape {header.ShapeText} but holds only {imagesEntry.Length} bytes.");
                    }
                    visit(split, header, imageStream, labels);
                }
                catch (Exception e) when (e is InvalidDataException or (IOException and not InvalidFileFormatException) && !e.Message.Contains(path, StringComparison.Ordinal))
                {
                    // Damaged deflate data surfaces from the zip stream without a name.
                    throw new InvalidFileFormatException($"'{path}' entry {split}_*.npy is damaged: {e.Message}", e);
                }
            }
        }
    }
}
