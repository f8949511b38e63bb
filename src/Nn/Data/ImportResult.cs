namespace IlgpuOct.Nn.Data;

/// <summary>What an import produced: the data set and the problems it skipped over.</summary>
public sealed record ImportResult(DatasetContent Content, IReadOnlyList<DataWarning> Warnings);
