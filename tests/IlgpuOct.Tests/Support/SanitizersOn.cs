using System.Runtime.CompilerServices;
using IlgpuOct.Kernels;

namespace IlgpuOct.Tests.Support;

/// <summary>
/// Every cpu-kernels accelerator the tests open (and every CLI run they start) runs the kernel
/// sanitizers: racecheck and initcheck of shared memory. Set ILGPUOCT_SANITIZE=0 to run without them.
/// </summary>
internal static class SanitizersOn
{
#pragma warning disable CA2255 // a module initializer is how a test assembly sets process-wide defaults before any test
    [ModuleInitializer]
    internal static void Enable()
#pragma warning restore CA2255
    {
        if (Environment.GetEnvironmentVariable(HostAccelerator.SanitizeVariable) is null)
        {
            Environment.SetEnvironmentVariable(HostAccelerator.SanitizeVariable, "1");
        }
    }
}
