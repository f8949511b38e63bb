using System.Globalization;
using System.Text.RegularExpressions;

namespace IlgpuOct.Kernels.Profiling;

/// <summary>What ptxas reports for one entry function: registers per thread, spills, stack and static shared memory.</summary>
public sealed record KernelResources(
    string EntryPoint,
    string Architecture,
    int Registers,
    int SpillStoreBytes,
    int SpillLoadBytes,
    int StackFrameBytes,
    int StaticSharedBytes,
    int ConstantBytes)
{
    public bool Spills => SpillStoreBytes > 0 || SpillLoadBytes > 0;
}

/// <summary>
/// Reads ptxas' verbose output (NVRTC's log with <c>--ptxas-options=-v</c>), e.g.
/// <c>ptxas info : Compiling entry function 'k' for 'sm_90'</c>,
/// <c>ptxas . 0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads</c>,
/// <c>ptxas info : Used 72 registers, 1024 bytes smem, 400 bytes cmem[0]</c>.
/// </summary>
public static partial class PtxasLog
{
    [GeneratedRegex(@"Compiling entry function '(?<name>[^']+)' for '(?<arch>[^']+)'")]
    private static partial Regex EntryLine();

    [GeneratedRegex(@"Function properties for (?<name>\S+)")]
    private static partial Regex PropertiesLine();

    [GeneratedRegex(@"(?<stack>\d+) bytes stack frame, (?<stores>\d+) bytes spill stores, (?<loads>\d+) bytes spill loads")]
    private static partial Regex FrameLine();

    [GeneratedRegex(@"Used (?<regs>\d+) registers")]
    private static partial Regex RegistersLine();

    [GeneratedRegex(@"(?<bytes>\d+) bytes smem")]
    private static partial Regex SharedPart();

    [GeneratedRegex(@"(?<bytes>\d+) bytes cmem\[0\]")]
    private static partial Regex ConstantPart();

    /// <summary>Every entry function of the log, by name; lines of non-entry (device) functions are skipped.</summary>
    public static IReadOnlyDictionary<string, KernelResources> Parse(string log)
    {
        ArgumentNullException.ThrowIfNull(log);
        var result = new Dictionary<string, KernelResources>(StringComparer.Ordinal);
        string? entry = null, arch = null, propertiesOf = null;
        int stack = 0, stores = 0, loads = 0;
        foreach (string line in log.Split('\n'))
        {
            var m = EntryLine().Match(line);
            if (m.Success)
            {
                entry = m.Groups["name"].Value;
                arch = m.Groups["arch"].Value;
                propertiesOf = null;
                stack = stores = loads = 0;
                continue;
            }
            m = PropertiesLine().Match(line);
            if (m.Success)
            {
                propertiesOf = m.Groups["name"].Value;
                continue;
            }
            m = FrameLine().Match(line);
            if (m.Success)
            {
                if (entry is not null && propertiesOf == entry)
                {
                    stack = Int(m, "stack");
                    stores = Int(m, "stores");
                    loads = Int(m, "loads");
                }
                continue;
            }
            m = RegistersLine().Match(line);
            if (m.Success && entry is not null)
            {
                var shared = SharedPart().Match(line);
                var constant = ConstantPart().Match(line);
                result[entry] = new KernelResources(entry, arch!, Int(m, "regs"), stores, loads, stack,
                    shared.Success ? Int(shared, "bytes") : 0, constant.Success ? Int(constant, "bytes") : 0);
                entry = null;
                propertiesOf = null;
            }
        }
        return result;
    }

    private static int Int(Match m, string group) => int.Parse(m.Groups[group].Value, CultureInfo.InvariantCulture);
}
