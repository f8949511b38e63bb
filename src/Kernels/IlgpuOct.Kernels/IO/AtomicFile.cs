namespace IlgpuOct.Kernels;

/// <summary>
/// Writes a file so that readers see either the old content or the whole new content, never a
/// torn one: write to a temporary file beside the target, flush to disk, rename over the target.
/// </summary>
public static class AtomicFile
{
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, byte> Pending = new(StringComparer.Ordinal);

    // Creating a temporary and registering it happen under this gate, so an abort either sees the
    // temporary (and deletes it) or no temporary is created after it.
    private static readonly Lock Gate = new();
    private static bool _aborting;

    /// <summary>
    /// Removes the temporary files of writes in progress (called on a failure and before an abort, so no
    /// *.tmp is left behind). With <paramref name="refuseNewWrites"/> (the process is about to exit) every
    /// later write is refused, so none can create a temporary after this.
    /// </summary>
    public static void DeletePendingTemporaries(bool refuseNewWrites = false)
    {
        lock (Gate)
        {
            _aborting |= refuseNewWrites;
            foreach (string path in Pending.Keys)
            {
                TryDelete(path);
            }
        }
    }

    /// <summary>
    /// Removes temporary files that an earlier process killed mid-write left in <paramref name="directory"/>
    /// (their names carry the writer's process id; files of live processes are kept).
    /// </summary>
    public static int RemoveStaleTemporaries(string directory)
    {
        if (!Directory.Exists(directory))
        {
            return 0;
        }
        int removed = 0;
        foreach (string file in Directory.EnumerateFiles(directory, ".*.tmp"))
        {
            string[] parts = Path.GetFileName(file).Split('.');
            if (parts.Length >= 4 && int.TryParse(parts[^3], out int pid) && pid != Environment.ProcessId && !IsAlive(pid))
            {
                TryDelete(file);
                removed++;
            }
        }
        return removed;
    }

    private static bool IsAlive(int pid)
    {
        try
        {
            using var process = System.Diagnostics.Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }

    public static void Write(string path, Action<Stream> writeContent)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(writeContent);
        string fullPath = Path.GetFullPath(path);
        string directory = Path.GetDirectoryName(fullPath) ?? ".";
        Directory.CreateDirectory(directory);
        string temporary = Path.Combine(directory, $".{Path.GetFileName(fullPath)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        FileStream created;
        lock (Gate)
        {
            if (_aborting)
            {
                throw new OperationCanceledException($"'{fullPath}' was not written: the process is aborting.");
            }
            created = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16);
            Pending[temporary] = 0;
        }
        try
        {
            using (var stream = created)
            {
                writeContent(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temporary, fullPath, overwrite: true);
        }
        catch
        {
            TryDelete(temporary);
            throw;
        }
        finally
        {
            Pending.TryRemove(temporary, out _);
        }
    }

    public static void WriteAllText(string path, string text) =>
        Write(path, s =>
        {
            using var writer = new StreamWriter(s, new System.Text.UTF8Encoding(false), 1 << 16, leaveOpen: true);
            writer.Write(text);
        });

    public static void WriteAllBytes(string path, ReadOnlySpan<byte> bytes)
    {
        var copy = bytes.ToArray();
        Write(path, s => s.Write(copy));
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
