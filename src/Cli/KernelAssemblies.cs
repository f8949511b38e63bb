using System.Reflection;
using IlgpuOct.Kernels;

namespace IlgpuOct.Cli;

/// <summary>The assemblies that hold kernels and self-tests (Kernels, Nn, Defense): one list for every verb that needs them.</summary>
internal static class KernelAssemblies
{
    private static readonly string[] Names = ["IlgpuOct.Kernels", "IlgpuOct.Nn", "IlgpuOct.Defense"];

    /// <summary>Every kernel-bearing assembly, loaded; a missing one is an install error worth a clear message.</summary>
    public static IReadOnlyList<Assembly> All()
    {
        var assemblies = new List<Assembly> { typeof(Accelerator).Assembly };
        foreach (var name in Names.Skip(1))
        {
            try
            {
                assemblies.Add(Assembly.Load(new AssemblyName(name)));
            }
            catch (FileNotFoundException e)
            {
                throw new FileNotFoundException($"The {name} assembly is missing from the installation ({e.Message}); reinstall or rebuild ilgpuoct.", e);
            }
        }
        return assemblies;
    }

    /// <summary>Registers every kernel of <see cref="All"/> and returns the registry's contents.</summary>
    public static IReadOnlyList<KernelDefinition> LoadKernels()
    {
        KernelRegistry.EnsureLoaded([.. All()]);
        return KernelRegistry.All;
    }
}
