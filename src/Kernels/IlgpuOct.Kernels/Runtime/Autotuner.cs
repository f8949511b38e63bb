using System.Text.Json;

namespace IlgpuOct.Kernels;

/// <summary>
/// Picks one of a kernel's candidate configurations per device and problem, as Triton's autotune
/// does: at first use each candidate is timed once (the caller's timer: CUDA events on a GPU, a fake
/// one in tests), the fastest wins (ties: the earlier candidate), and the winner is remembered in
/// memory and in a JSON file (written atomically) so later processes skip the timing. A cached
/// winner that is no longer a candidate is timed again. Only the cuda accelerator tunes; every other
/// accelerator uses its operator's fixed default, so runs there stay deterministic.
/// </summary>
public sealed class Autotuner
{
    private readonly string _path;
    private readonly Lock _gate = new();
    private Dictionary<string, string>? _winners;

    /// <param name="path">The cache file, e.g. <c>autotune-gemm.json</c> in the kernel cache directory.</param>
    public Autotuner(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        _path = path;
    }

    /// <summary>The tuner of <paramref name="fileName"/> in the kernel cache directory (<see cref="Cuda.KernelCache.DefaultDirectory"/>).</summary>
    public static Autotuner InKernelCache(string fileName) => new(System.IO.Path.Combine(Cuda.KernelCache.DefaultDirectory(), fileName));

    /// <summary>The cache file.</summary>
    public string CachePath => _path;

    /// <summary>
    /// The winner among <paramref name="candidates"/> for <paramref name="device"/> and <paramref name="problem"/>;
    /// <paramref name="timeMilliseconds"/> runs one candidate once and returns its time (called only on a cache miss).
    /// </summary>
    public string Choose(string device, string problem, IReadOnlyList<string> candidates, Func<string, double> timeMilliseconds)
    {
        ArgumentNullException.ThrowIfNull(candidates);
        ArgumentNullException.ThrowIfNull(timeMilliseconds);
        if (candidates.Count == 0)
        {
            throw new ArgumentException($"Autotuner: no candidates for {problem} on {device}; pass at least one configuration.", nameof(candidates));
        }
        string key = device + " | " + problem;
        lock (_gate)
        {
            _winners ??= Load();
            if (_winners.TryGetValue(key, out string? cached) && candidates.Contains(cached))
            {
                return cached;
            }
            string best = candidates[0];
            double bestTime = double.PositiveInfinity;
            foreach (string candidate in candidates)
            {
                double time = timeMilliseconds(candidate);
                if (time < bestTime)
                {
                    best = candidate;
                    bestTime = time;
                }
            }
            _winners[key] = best;
            Save(_winners);
            return best;
        }
    }

    private Dictionary<string, string> Load()
    {
        if (!File.Exists(_path))
        {
            return new Dictionary<string, string>(StringComparer.Ordinal);
        }
        try
        {
            return JsonSerializer.Deserialize<Dictionary<string, string>>(File.ReadAllText(_path)) is { } read
                ? new Dictionary<string, string>(read, StringComparer.Ordinal)
                : new Dictionary<string, string>(StringComparer.Ordinal);
        }
        catch (JsonException)
        {
            // A damaged cache only costs a new timing; it is rewritten whole below.
            return new Dictionary<string, string>(StringComparer.Ordinal);
        }
    }

    private void Save(Dictionary<string, string> winners)
    {
        string? folder = System.IO.Path.GetDirectoryName(_path);
        if (!string.IsNullOrEmpty(folder))
        {
            Directory.CreateDirectory(folder);
        }
        var sorted = new SortedDictionary<string, string>(winners, StringComparer.Ordinal);
        AtomicFile.WriteAllText(_path, JsonSerializer.Serialize(sorted, new JsonSerializerOptions { WriteIndented = true }));
    }
}
