namespace IlgpuOct.Kernels;

/// <summary>
/// Opens a file that a reader is about to parse, refusing what cannot be a regular file before it
/// is opened: a missing path, a folder, and anything of length 0 (an empty file, a FIFO, a socket or
/// a device; opening a FIFO would block until a writer appears, reading /dev/zero never ends).
/// </summary>
public static class InputFile
{
    /// <summary>Checks <paramref name="path"/> and returns its length; <paramref name="format"/> names what it should be.</summary>
    public static long Check(string path, string format)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (Directory.Exists(path))
        {
            throw new InvalidFileFormatException(path, format, "path", "it is a folder, expected a file");
        }
        var info = new FileInfo(path);
        if (!info.Exists)
        {
            throw new FileNotFoundException($"The {format} '{path}' does not exist.", path);
        }
        long length = info.Length;
        if (length == 0)
        {
            throw new InvalidFileFormatException(path, format, "length", "it is empty or not a regular file (a FIFO, socket or device)");
        }
        return length;
    }

    /// <summary>Checks the path as <see cref="Check"/> does, then opens it for sequential reading.</summary>
    public static FileStream OpenRead(string path, string format)
    {
        Check(path, format);
        return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
    }

    /// <summary>
    /// Reads a whole file of at most <paramref name="maxBytes"/> bytes (checked before reading, so a
    /// huge or endless input is refused rather than read).
    /// </summary>
    public static byte[] ReadAllBytes(string path, string format, long maxBytes)
    {
        long length = Check(path, format);
        if (length > maxBytes)
        {
            throw new InvalidFileFormatException(path, format, "length", $"it is {length} bytes, more than the {maxBytes} this reader accepts");
        }
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        var bytes = new byte[length];
        try
        {
            stream.ReadExactly(bytes);
        }
        catch (EndOfStreamException e)
        {
            throw new InvalidFileFormatException(path, format, "length", "the file shrank while it was read", e);
        }
        return bytes;
    }
}
