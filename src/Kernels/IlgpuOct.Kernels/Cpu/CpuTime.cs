using System.Diagnostics;
using System.Runtime.InteropServices;

namespace IlgpuOct.Kernels.Cpu;

/// <summary>
/// CPU time consumed (nanosecond clock_gettime on Linux, the runtime's coarser counters elsewhere).
/// On a machine shared with other work, CPU time counts only the time our threads actually ran.
/// </summary>
public static partial class CpuTime
{
    private const int ClockProcessCpuTime = 2;
    private const int ClockThreadCpuTime = 3;

    /// <summary>Seconds of CPU time used by every thread of this process.</summary>
    public static double ProcessSeconds() => Read(ClockProcessCpuTime) ?? Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds;

    /// <summary>Seconds of CPU time used by the calling thread (falls back to the process's where unsupported).</summary>
    public static double ThreadSeconds() => Read(ClockThreadCpuTime) ?? ProcessSeconds();

    private static double? Read(int clock)
    {
        if (!OperatingSystem.IsLinux())
        {
            return null;
        }
        try
        {
            return clock_gettime(clock, out var ts) == 0 ? ts.Seconds + ts.Nanoseconds * 1e-9 : null;
        }
        catch (DllNotFoundException)
        {
            return null;
        }
        catch (EntryPointNotFoundException)
        {
            return null;
        }
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [LibraryImport("libc", EntryPoint = "clock_gettime")]
    private static partial int clock_gettime(int clock, out TimeSpec value);
}
