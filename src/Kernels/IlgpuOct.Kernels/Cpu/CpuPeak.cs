using System.Globalization;
using System.Runtime.CompilerServices;

namespace IlgpuOct.Kernels.Cpu;

/// <summary>
/// FP32 peak of this machine as cores x GHz x FLOPs per cycle per core, with where each figure
/// came from. FLOPs per cycle assume two FMA pipes of the micro-kernel's vector width
/// (AVX2: 2 x 8 lanes x 2 = 32; AVX-512: 64; 128-bit: 16), except AMD Zen 4 (family 19h with
/// AVX-512), whose two FMA pipes are 256 bits wide and run a 512-bit FMA as two halves: 32.
/// Parts with one 512-bit FMA pipe also reach half.
/// </summary>
public sealed record CpuPeak(int Cores, string CoresSource, double Ghz, string ClockSource, double ProcCpuinfoGhz, int FlopsPerCycle)
{
    public double PeakGflops => Cores * Ghz * FlopsPerCycle;

    /// <summary>Peak of <paramref name="threads"/> threads (at most one per physical core counts).</summary>
    public double PeakGflopsFor(int threads) => Math.Min(threads, Cores) * Ghz * FlopsPerCycle;

    /// <summary>
    /// Measures the clock with a chain of dependent integer adds (one per cycle on every x86 and Arm
    /// core of the last decade) timed by the thread's CPU time (so time-slicing by other processes does
    /// not count) over ~<paramref name="measureMilliseconds"/> ms, keeping the fastest of several rounds; reads "cpu MHz" from /proc/cpuinfo for comparison (a VM often shows the nominal clock).
    /// </summary>
    public static CpuPeak Estimate(SgemmMicroKernel kernel, int measureMilliseconds = 200)
    {
        kernel = SgemmEngine.Resolve(kernel);
        int flops = FlopsPerCycleOf(kernel, CpuIdentity.Read());
        (int cores, string coresSource) = PhysicalCores();
        double cpuinfo = CpuinfoGhz();
        double measured = MeasureGhz(measureMilliseconds);
        return new CpuPeak(cores, coresSource, measured, "measured: dependent integer-add chain (1 add per cycle) over thread CPU time, best of 10 rounds", cpuinfo, flops);
    }

    /// <summary>FP32 FLOPs per cycle per core for a micro-kernel's vector width on this CPU (see the type's summary).</summary>
    internal static int FlopsPerCycleOf(SgemmMicroKernel kernel, CpuIdentity cpu) => kernel switch
    {
        SgemmMicroKernel.Vector512x12x32 => cpu.IsZen4 ? 32 : 64,
        SgemmMicroKernel.Vector256x6x16 => 32,
        _ => 16,
    };

    private static (int Cores, string Source) PhysicalCores()
    {
        try
        {
            var pairs = new HashSet<(string, string)>();
            string physical = "0";
            foreach (string line in File.ReadLines("/proc/cpuinfo"))
            {
                if (line.StartsWith("physical id", StringComparison.Ordinal))
                {
                    physical = line[(line.IndexOf(':') + 1)..].Trim();
                }
                else if (line.StartsWith("core id", StringComparison.Ordinal))
                {
                    pairs.Add((physical, line[(line.IndexOf(':') + 1)..].Trim()));
                }
            }
            if (pairs.Count > 0)
            {
                int cores = Math.Min(pairs.Count, Environment.ProcessorCount);
                return (cores, $"/proc/cpuinfo: {pairs.Count} physical cores, {Environment.ProcessorCount} usable logical processors");
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
        return (Environment.ProcessorCount, "Environment.ProcessorCount (logical processors; SMT siblings share FMA pipes)");
    }

    private static double CpuinfoGhz()
    {
        try
        {
            double best = 0;
            foreach (string line in File.ReadLines("/proc/cpuinfo"))
            {
                if (line.StartsWith("cpu MHz", StringComparison.Ordinal) &&
                    double.TryParse(line[(line.IndexOf(':') + 1)..].Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out double mhz))
                {
                    best = Math.Max(best, mhz / 1000);
                }
            }
            return best;
        }
        catch (IOException)
        {
            return 0;
        }
        catch (UnauthorizedAccessException)
        {
            return 0;
        }
    }

    private static double MeasureGhz(int milliseconds)
    {
        long adds = 1 << 20;
        long seed = Environment.TickCount64 | 1;
        AddChain(adds, seed); // JIT and warm the core
        // Grow the chain until one round takes about a tenth of the budget.
        while (true)
        {
            double t0 = CpuTime.ThreadSeconds();
            AddChain(adds, seed);
            double seconds = CpuTime.ThreadSeconds() - t0;
            if (seconds * 1000 >= milliseconds / 10.0 || adds > 1L << 34)
            {
                break;
            }
            adds *= 2;
        }
        double bestSeconds = double.MaxValue;
        for (int round = 0; round < 10; round++)
        {
            double t0 = CpuTime.ThreadSeconds();
            AddChain(adds, seed);
            bestSeconds = Math.Min(bestSeconds, CpuTime.ThreadSeconds() - t0);
        }
        return adds / bestSeconds / 1e9;
    }

    // Eight dependent adds per iteration; the loop counter runs beside the chain on other ALUs.
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static long AddChain(long adds, long step)
    {
        long x = step;
        long y = step ^ 0x5DEECE66DL; // unknown to the JIT, so the adds cannot be folded
        for (long i = 0; i < adds; i += 8)
        {
            x += y;
            x += y;
            x += y;
            x += y;
            x += y;
            x += y;
            x += y;
            x += y;
        }
        return x;
    }
}

/// <summary>Vendor and family of the CPU from /proc/cpuinfo (empty where it cannot be read).</summary>
internal readonly record struct CpuIdentity(string Vendor, int Family)
{
    /// <summary>AMD family 19h is Zen 3 and Zen 4; only Zen 4 has AVX-512 (double-pumped on 256-bit units).</summary>
    public bool IsZen4 => Vendor == "AuthenticAMD" && Family == 0x19;

    public static CpuIdentity Read()
    {
        string vendor = "";
        int family = 0;
        try
        {
            foreach (string line in File.ReadLines("/proc/cpuinfo"))
            {
                string value = line[(line.IndexOf(':') + 1)..].Trim();
                if (line.StartsWith("vendor_id", StringComparison.Ordinal))
                {
                    vendor = value;
                }
                else if (line.StartsWith("cpu family", StringComparison.Ordinal))
                {
                    int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out family);
                    break;
                }
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
        return new CpuIdentity(vendor, family);
    }
}
