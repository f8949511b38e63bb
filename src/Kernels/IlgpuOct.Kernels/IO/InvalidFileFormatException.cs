namespace IlgpuOct.Kernels;

/// <summary>
/// The one exception every file reader of the project throws for content it cannot accept. The
/// message names the file, the format, the field and what was expected. (InvalidDataException is
/// sealed, so this is an IOException: the input could not be read as what it should be.)
/// </summary>
public sealed class InvalidFileFormatException : IOException
{
    public InvalidFileFormatException(string file, string format, string field, string problem, Exception? inner = null)
        : base($"'{file}' is not a valid {format}: {field}: {problem}", inner)
    {
        FileName = file;
        Format = format;
        Field = field;
    }

    /// <summary>A message that already names the file and the field (readers whose messages predate the fields).</summary>
    public InvalidFileFormatException(string message, Exception? inner = null)
        : base(message, inner)
    {
        FileName = "";
        Format = "";
        Field = "";
    }

    /// <summary>The file (or archive entry) that was read.</summary>
    public string FileName { get; }

    /// <summary>What the file was expected to be (e.g. "checkpoint", "data set file").</summary>
    public string Format { get; }

    /// <summary>The field, tensor or section whose value was rejected.</summary>
    public string Field { get; }
}
