namespace IlgpuOct.Nn.Data;

/// <summary>Progress of a data operation: what it is doing and how far it is (items done of total).</summary>
public readonly record struct DataProgress(string Stage, long Done, long Total);

/// <summary>A non-fatal problem met while importing (e.g. a corrupt JPEG that was skipped).</summary>
public sealed record DataWarning(string Path, string Message);
