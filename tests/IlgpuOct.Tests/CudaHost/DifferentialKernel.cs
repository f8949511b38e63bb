using System.Reflection;
using FluentAssertions;
using IlgpuOct.Kernels;
using IlgpuOct.Kernels.CudaHost;
using IlgpuOct.Kernels.Cuda;
using IlgpuOct.Kernels.Fuzzing;
using Microsoft.CodeAnalysis;

namespace IlgpuOct.Tests.CudaHost;

/// <summary>
/// Runs one small kernel written in C# on cpu-kernels (its C# meaning) and on cuda-host (the CUDA C
/// it is translated to) and requires the same bits. The kernel is
/// <c>IlgpuOct.Regress.C.K(KernelContext ctx, View&lt;long&gt; o, View&lt;int&gt; x)</c>, launched as one
/// block of <see cref="Threads"/> threads with x[i] = i and o zeroed.
/// </summary>
internal static class DifferentialKernel
{
    public const int Threads = 32;

    /// <summary>The outputs of both accelerators; fails the test with the first differing element.</summary>
    public static long[] AssertSameOnBoth(string source, int dynamicSharedBytes = 0, bool sanitize = false, string type = "IlgpuOct.Regress.C")
    {
        var (expected, actual) = Run(source, dynamicSharedBytes, sanitize, type);
        for (int i = 0; i < expected.Length; i++)
        {
            actual[i].Should().Be(expected[i], $"o[{i}] must be the same on cpu-kernels (C# meaning) and cuda-host (the generated CUDA C)");
        }
        return expected;
    }

    /// <summary>The IDs of the generator's errors for the kernel source (empty when it is accepted).</summary>
    public static IReadOnlyList<string> GeneratorErrors(string source) =>
        KernelSourceBuild.Run(source, "Regress" + Guid.NewGuid().ToString("N")).GeneratorDiagnostics
            .Where(d => d.Severity == DiagnosticSeverity.Error).Select(d => d.Id).ToList();

    public static (long[] CpuKernels, long[] CudaHost) Run(string source, int dynamicSharedBytes = 0, bool sanitize = false, string type = "IlgpuOct.Regress.C")
    {
        var build = KernelSourceBuild.Run(source, "Regress" + Guid.NewGuid().ToString("N"));
        build.GeneratorDiagnostics.Where(d => d.Severity == DiagnosticSeverity.Error).Should().BeEmpty("the generator accepts the kernel");
        build.Errors.Should().BeEmpty("the kernel and its generated launcher compile");
        var assembly = build.Load();
        var launch = assembly.GetType(type + "+KKernel")!.GetMethod("Launch")!;
        var config = new LaunchConfig(new Dim3(1), new Dim3(Threads), dynamicSharedBytes);
        using var cpu = new HostAccelerator(AcceleratorKind.CpuKernels);
        long[] expected = Execute(cpu, launch, config);
        using var host = CudaHostAccelerator.Open(sanitize, new KernelCache(enabled: false));
        long[] actual = Execute(host, launch, config);
        return (expected, actual);
    }

    private static long[] Execute(Accelerator accelerator, MethodInfo launch, LaunchConfig config)
    {
        using var o = accelerator.Upload<long>(new long[Threads]);
        using var x = accelerator.Upload<int>(Enumerable.Range(0, Threads).ToArray());
        try
        {
            // Scalar parameters after o and x get their default value.
            object?[] arguments = [accelerator, config, o.View, x.View, .. launch.GetParameters().Skip(4).Select(p => Activator.CreateInstance(p.ParameterType))];
            launch.Invoke(null, arguments);
        }
        catch (TargetInvocationException e) when (e.InnerException is not null)
        {
            throw e.InnerException;
        }
        return accelerator.Download(o.View);
    }
}
