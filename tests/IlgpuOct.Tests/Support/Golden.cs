using IlgpuOct.Nn.IO;

namespace IlgpuOct.Tests.Support;

/// <summary>
/// The golden reference folder: <c>ILGPUOCT_GOLDEN</c>, else <c>../shared/golden</c> beside the
/// repository. Tests read every shape and setting from the files.
/// </summary>
public static class Golden
{
    private static readonly Dictionary<string, SafeTensorFile> Cache = new(StringComparer.Ordinal);

    public static string Folder
    {
        get
        {
            string? fromEnv = Environment.GetEnvironmentVariable("ILGPUOCT_GOLDEN");
            if (!string.IsNullOrEmpty(fromEnv))
            {
                return fromEnv;
            }
            return Path.GetFullPath(Path.Combine(RepositoryRoot, "..", "shared", "golden"));
        }
    }

    public static string RepositoryRoot
    {
        get
        {
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "IlgpuOct.sln")))
            {
                dir = dir.Parent;
            }
            return dir?.FullName ?? throw new InvalidOperationException("Cannot find the repository root (IlgpuOct.sln) above the test binaries.");
        }
    }

    /// <summary>Loads (once) a golden file by name, e.g. "ops.safetensors"; fails with the path when it is missing.</summary>
    public static SafeTensorFile Load(string fileName)
    {
        lock (Cache)
        {
            if (!Cache.TryGetValue(fileName, out var file))
            {
                string path = Path.Combine(Folder, fileName);
                if (!File.Exists(path))
                {
                    throw new FileNotFoundException($"Golden file '{path}' is missing: set ILGPUOCT_GOLDEN to the folder of reference tensors.", path);
                }
                file = SafeTensorFile.Read(path);
                Cache[fileName] = file;
            }
            return file;
        }
    }
}
