using System.Security.Cryptography;
using System.Text;

namespace IlgpuOct.Kernels.Cuda;

/// <summary>How a <see cref="KernelCache"/> lookup was answered.</summary>
public enum KernelCacheOutcome
{
    /// <summary>A valid entry was on disk.</summary>
    Hit,

    /// <summary>No entry: compiled and stored.</summary>
    Miss,

    /// <summary>An entry was there but its content hash did not match: compiled again and overwritten.</summary>
    Repaired,

    /// <summary>The cache is switched off (ILGPUOCT_NO_KERNEL_CACHE=1): compiled, nothing stored.</summary>
    Bypassed,
}

/// <summary>
/// Compiled kernels on disk, so a process does not pay NVRTC for every kernel at start-up.
/// Key = SHA-256 of (CUDA source, NVRTC options, NVRTC version, driver version, compute capability,
/// generator version); file = key + ".cubin" or ".ptx", holding the SHA-256 of the image followed by
/// the image, written atomically. A file whose hash does not match is compiled again and replaced.
/// </summary>
public sealed class KernelCache
{
    private const int HashBytes = 32;

    public KernelCache(string? directory = null, bool enabled = true)
    {
        Directory = directory ?? DefaultDirectory();
        Enabled = enabled && Environment.GetEnvironmentVariable("ILGPUOCT_NO_KERNEL_CACHE") != "1";
    }

    public string Directory { get; }

    public bool Enabled { get; }

    /// <summary>
    /// $ILGPUOCT_CACHE, else $XDG_CACHE_HOME/ilgpuoct/kernels, else ~/.cache/ilgpuoct/kernels, else the
    /// local application data folder's ilgpuoct/kernels (Windows), else a folder under the temp path.
    /// </summary>
    public static string DefaultDirectory()
    {
        string? explicitFolder = Environment.GetEnvironmentVariable("ILGPUOCT_CACHE");
        if (!string.IsNullOrWhiteSpace(explicitFolder))
        {
            return explicitFolder;
        }
        string? root = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        if (string.IsNullOrWhiteSpace(root))
        {
            string? home = Environment.GetEnvironmentVariable("HOME");
            root = !string.IsNullOrWhiteSpace(home) && !OperatingSystem.IsWindows()
                ? Path.Combine(home, ".cache")
                : Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData, Environment.SpecialFolderOption.DoNotVerify);
        }
        if (string.IsNullOrWhiteSpace(root))
        {
            root = Path.GetTempPath();
        }
        return Path.Combine(root, "ilgpuoct", "kernels");
    }

    /// <summary>The cache key: lower-case hex SHA-256 over every input that changes the compiled image.</summary>
    public static string Key(KernelDefinition kernel, IReadOnlyList<string> options, Version nvrtcVersion, int driverVersion, int computeCapability)
    {
        var text = new StringBuilder()
            .Append("source\n").Append(kernel.CudaSource).Append('\n')
            .Append("entry\n").Append(kernel.EntryPoint).Append('\n')
            .Append("options\n").AppendJoin('\n', options).Append('\n')
            .Append("nvrtc\n").Append(nvrtcVersion).Append('\n')
            .Append("driver\n").Append(driverVersion).Append('\n')
            .Append("cc\n").Append(computeCapability).Append('\n')
            .Append("generator\n").Append(kernel.GeneratorVersion).Append('\n');
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())));
    }

    public string PathFor(string key, NvrtcTarget target) => Path.Combine(Directory, key + target.FileExtension);

    /// <summary>The image for <paramref name="kernel"/>: from disk when a valid entry exists, else compiled by NVRTC (and stored).</summary>
    public byte[] GetOrCompile(KernelDefinition kernel, Nvrtc nvrtc, NvrtcTarget target, int driverVersion, int computeCapability, out KernelCacheOutcome outcome)
    {
        ArgumentNullException.ThrowIfNull(kernel);
        ArgumentNullException.ThrowIfNull(nvrtc);
        var options = nvrtc.OptionsFor(target);
        return GetOrCreate(Key(kernel, options, nvrtc.Version, driverVersion, computeCapability), target.FileExtension,
            () => nvrtc.Compile(kernel.CudaSource, kernel.Name, target, options).Image, out outcome);
    }

    /// <summary>
    /// The entry <paramref name="key"/> + <paramref name="extension"/>: from disk when valid, else made by
    /// <paramref name="create"/> and stored (the same layout and atomic write for every compiler's output).
    /// </summary>
    public byte[] GetOrCreate(string key, string extension, Func<byte[]> create, out KernelCacheOutcome outcome)
    {
        ArgumentNullException.ThrowIfNull(create);
        if (!Enabled)
        {
            outcome = KernelCacheOutcome.Bypassed;
            return create();
        }
        string path = Path.Combine(Directory, key + extension);
        bool existed = File.Exists(path);
        if (existed && TryRead(path, out var cached))
        {
            outcome = KernelCacheOutcome.Hit;
            return cached;
        }
        var image = create();
        Store(path, image);
        outcome = existed ? KernelCacheOutcome.Repaired : KernelCacheOutcome.Miss;
        return image;
    }

    /// <summary>Reads an entry; false when it is missing, truncated or its hash does not match its content.</summary>
    public static bool TryRead(string path, out byte[] image)
    {
        image = [];
        byte[] content;
        try
        {
            content = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
        if (content.Length <= HashBytes)
        {
            return false;
        }
        var payload = content.AsSpan(HashBytes);
        if (!SHA256.HashData(payload).AsSpan().SequenceEqual(content.AsSpan(0, HashBytes)))
        {
            return false;
        }
        image = payload.ToArray();
        return true;
    }

    private static void Store(string path, byte[] image)
    {
        try
        {
            AtomicFile.Write(path, stream =>
            {
                stream.Write(SHA256.HashData(image));
                stream.Write(image);
            });
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A read-only or full cache folder costs compile time, not correctness.
        }
    }
}
