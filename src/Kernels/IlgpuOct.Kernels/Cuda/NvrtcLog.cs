namespace IlgpuOct.Kernels.Cuda;

/// <summary>Splits NVRTC's program log into the compiler's diagnostics and ptxas' resource lines.</summary>
public static class NvrtcLog
{
    /// <summary>The front end's warnings and notes (e.g. <c>file.cu(12): warning #550-D: ...</c>), without ptxas' <c>-v</c> lines.</summary>
    public static IReadOnlyList<string> Warnings(string log)
    {
        ArgumentNullException.ThrowIfNull(log);
        return log.Split('\n')
            .Select(l => l.TrimEnd('\r'))
            .Where(l => l.Trim().Length > 0 && !l.StartsWith("ptxas", StringComparison.Ordinal))
            .ToArray();
    }
}
