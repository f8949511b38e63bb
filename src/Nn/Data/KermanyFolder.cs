using IlgpuOct.Kernels;
namespace IlgpuOct.Nn.Data;

/// <summary>Options of a Kermany OCT folder import.</summary>
/// <param name="Preprocess">Image pipeline (resize/crop/channels).</param>
/// <param name="Splits">Balanced split sizes in file order, e.g. the paper's train 4000 / unlabeled 1000 / val 500 / test 1000.</param>
/// <param name="Seed">Seed of the sampling.</param>
/// <param name="Strict">Fail on the first unreadable JPEG instead of skipping it with a warning.</param>
public sealed record KermanyImportOptions(Preprocess Preprocess, IReadOnlyList<(string Name, int Count)> Splits, int Seed = 0, bool Strict = false);

/// <summary>
/// Imports the Kermany et al. retinal OCT release: class folders CNV, DME, DRUSEN, NORMAL (optionally
/// under train/ and test/), or flat files named CNV-xxx.jpeg. Samples balanced, disjoint splits
/// (seeded); when the folder has its own test/ part the test split comes from there and the other
/// splits from train/. Only the sampled files are decoded. An unreadable JPEG is skipped with a
/// warning and replaced by the next candidate of its class (or, with Strict, fails the import).
/// </summary>
public static class KermanyFolder
{
    public static IReadOnlyList<string> ClassNames => SyntheticOct.ClassNames;

    private static readonly string[] Extensions = [".jpeg", ".jpg"];

    /// <summary>Larger files are not OCT scans; they are refused without being read.</summary>
    public const long MaxJpegBytes = 64L << 20;

    /// <summary>The candidate files per pool ("all", or "train" and "test") and class, sorted by path.</summary>
    public static IReadOnlyDictionary<string, List<string>[]> Discover(string root)
    {
        if (!Directory.Exists(root))
        {
            throw new DirectoryNotFoundException($"Kermany folder '{root}' does not exist.");
        }
        var pools = new Dictionary<string, List<string>[]>(StringComparer.Ordinal);
        foreach (string pool in new[] { "train", "test" })
        {
            string? sub = FindChild(root, pool);
            if (sub is not null && ClassFolders(sub).Any(f => f is not null))
            {
                pools[pool] = Collect(sub);
            }
        }
        if (pools.Count == 0)
        {
            if (ClassFolders(root).Any(f => f is not null))
            {
                pools["all"] = Collect(root);
            }
            else
            {
                var flat = NewLists();
                foreach (string file in JpegFiles(root))
                {
                    string stem = Path.GetFileName(file);
                    int dash = stem.IndexOf('-');
                    int label = dash > 0 ? IndexOfClass(stem[..dash]) : -1;
                    if (label >= 0)
                    {
                        flat[label].Add(file);
                    }
                }
                pools["all"] = flat;
            }
        }
        if (pools.Values.All(p => p.All(l => l.Count == 0)))
        {
            throw new InvalidFileFormatException($"'{root}' has no Kermany OCT images: expected folders CNV, DME, DRUSEN, NORMAL (optionally under train/ and test/) or files named like CNV-123-1.jpeg.");
        }
        return pools;
    }

    public static ImportResult Import(string root, KermanyImportOptions options, IProgress<DataProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        TurboJpeg.EnsureAvailable();
        var pools = Discover(root);
        int classes = ClassNames.Count;
        var pre = options.Preprocess;
        int outBytes = pre.Channels * pre.Resolution * pre.Resolution;
        var warnings = new List<DataWarning>();
        var images = options.Splits.ToDictionary(s => s.Name, s => new List<(byte[] Pixels, int Label)>());
        long total = options.Splits.Sum(s => (long)s.Count), done = 0;

        // Which pool each split draws from: test from test/ when present, the rest from train/ (or the one pool).
        var byPool = options.Splits.Where(s => s.Count > 0)
            .GroupBy(s => pools.ContainsKey("test") && s.Name == "test" ? "test" : pools.ContainsKey("train") ? "train" : "all");
        foreach (var group in byPool)
        {
            if (!pools.TryGetValue(group.Key, out var lists))
            {
                throw new InvalidFileFormatException($"'{root}' has no {group.Key}/ images for the {string.Join(", ", group.Select(g => g.Name))} split(s).");
            }
            for (int c = 0; c < classes; c++)
            {
                var needs = group.Select(s => (s.Name, Count: BalancedSplits.PerClass(s.Count, classes)[c])).ToArray();
                int needed = needs.Sum(n => n.Count);
                string[] candidates = lists[c].ToArray();
                int poolIndex = group.Key switch { "train" => 1, "test" => 2, _ => 0 };
                new Random(Seeds.Derive(options.Seed, c, 0x5A170 + poolIndex)).Shuffle(candidates);
                var accepted = DecodeUntil(candidates, needed, pre, outBytes, options.Strict, warnings, cancellationToken, n =>
                {
                    long now = Interlocked.Add(ref done, n);
                    progress?.Report(new DataProgress("decoding JPEGs", now, total));
                });
                if (accepted.Count < needed)
                {
                    throw new InvalidFileFormatException(
                        $"'{root}' has only {accepted.Count} readable {ClassNames[c]} images in {(group.Key == "all" ? "the folder" : group.Key + "/")} ({candidates.Length} files), but the {string.Join(" + ", needs.Select(n => $"{n.Name} {n.Count}"))} split(s) need {needed}; ask for smaller splits (--train/--unlabeled/--val/--test).");
                }
                int next = 0;
                foreach (var (name, count) in needs)
                {
                    for (int i = 0; i < count; i++)
                    {
                        images[name].Add((accepted[next++], c));
                    }
                }
            }
        }

        var splits = new List<SplitData>();
        foreach (var (name, count) in options.Splits)
        {
            if (count == 0)
            {
                continue;
            }
            var items = images[name];
            int[] order = Seeds.Permutation(items.Count, Seeds.Derive(options.Seed, DatasetContent.SplitRank(name), 0x0DE4));
            var pixels = new byte[(long)items.Count * outBytes];
            var labels = new int[items.Count];
            for (int i = 0; i < order.Length; i++)
            {
                items[order[i]].Pixels.CopyTo(pixels, (long)i * outBytes);
                labels[i] = items[order[i]].Label;
            }
            splits.Add(new SplitData(name, pixels, labels));
        }
        string poolText = string.Join(", ", pools.Select(p => $"{p.Key}: {string.Join("/", p.Value.Select(l => l.Count))}"));
        string source = $"kermany-oct {Path.GetFullPath(root)} (files per class {poolText}); {pre}; seed={options.Seed}; skipped={warnings.Count}";
        return new ImportResult(new DatasetContent(pre.Channels, pre.Resolution, pre.Resolution, ClassNames, source, splits), warnings);
    }

    /// <summary>Decodes candidates in order (in parallel chunks) until <paramref name="needed"/> succeed; keeps candidate order.</summary>
    private static List<byte[]> DecodeUntil(
        string[] candidates, int needed, Preprocess pre, int outBytes, bool strict, List<DataWarning> warnings,
        CancellationToken cancellationToken, Action<int> advanced)
    {
        var accepted = new List<byte[]>(needed);
        int position = 0;
        while (accepted.Count < needed && position < candidates.Length)
        {
            int take = Math.Min(Math.Max(needed - accepted.Count, 8), candidates.Length - position);
            var results = new (byte[]? Pixels, string? Error)[take];
            Parallel.For(0, take, new ParallelOptions { CancellationToken = cancellationToken }, i =>
            {
                string file = candidates[position + i];
                try
                {
                    byte[] jpeg = InputFile.ReadAllBytes(file, "JPEG file", MaxJpegBytes);
                    byte[] gray = TurboJpeg.DecodeGray(jpeg, out int w, out int h);
                    var output = new byte[outBytes];
                    pre.Apply(gray, 1, h, w, output);
                    results[i] = (output, null);
                }
                catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
                {
                    // Unreadable (permissions, a dangling link, a FIFO or device named .jpeg) counts as undecodable.
                    results[i] = (null, e.Message);
                }
            });
            int used = 0;
            for (int i = 0; i < take && accepted.Count < needed; i++)
            {
                used++;
                if (results[i].Pixels is { } pixels)
                {
                    accepted.Add(pixels);
                    continue;
                }
                string file = candidates[position + i];
                if (strict)
                {
                    throw new InvalidFileFormatException($"'{file}' could not be decoded: {results[i].Error}");
                }
                warnings.Add(new DataWarning(file, $"skipped: {results[i].Error}"));
            }
            advanced(used);
            position += take;
        }
        return accepted;
    }

    private static List<string>[] Collect(string folder)
    {
        var lists = NewLists();
        var folders = ClassFolders(folder);
        for (int c = 0; c < folders.Length; c++)
        {
            if (folders[c] is { } path)
            {
                lists[c].AddRange(JpegFiles(path));
            }
        }
        return lists;
    }

    private static string?[] ClassFolders(string folder) => ClassNames.Select(name => FindChild(folder, name)).ToArray();

    private static string? FindChild(string folder, string name) =>
        Directory.EnumerateDirectories(folder).FirstOrDefault(d => string.Equals(Path.GetFileName(d), name, StringComparison.OrdinalIgnoreCase));

    private static IEnumerable<string> JpegFiles(string folder) =>
        Directory.EnumerateFiles(folder)
            .Where(f => Extensions.Contains(Path.GetExtension(f), StringComparer.OrdinalIgnoreCase))
            .Order(StringComparer.Ordinal);

    private static int IndexOfClass(string name)
    {
        for (int c = 0; c < ClassNames.Count; c++)
        {
            if (string.Equals(ClassNames[c], name, StringComparison.OrdinalIgnoreCase))
            {
                return c;
            }
        }
        return -1;
    }

    private static List<string>[] NewLists() => Enumerable.Range(0, ClassNames.Count).Select(_ => new List<string>()).ToArray();
}
