using System.Collections.Concurrent;
using System.Reflection;
using System.Runtime.CompilerServices;

namespace IlgpuOct.Kernels;

/// <summary>
/// Every kernel of every loaded assembly. Generated module initializers register them; call
/// <see cref="EnsureLoaded"/> with the assemblies whose kernels must be listed.
/// </summary>
public static class KernelRegistry
{
    private static readonly ConcurrentDictionary<string, KernelDefinition> Kernels = new(StringComparer.Ordinal);

    /// <summary>Called by generated code.</summary>
    public static void Register(params KernelDefinition[] definitions)
    {
        foreach (var definition in definitions)
        {
            Kernels[definition.Name] = definition;
        }
    }

    /// <summary>Runs the module initializers of the given assemblies so their kernels are registered.</summary>
    public static void EnsureLoaded(params Assembly[] assemblies)
    {
        foreach (var assembly in assemblies)
        {
            RuntimeHelpers.RunModuleConstructor(assembly.ManifestModule.ModuleHandle);
        }
    }

    public static IReadOnlyList<KernelDefinition> All =>
        Kernels.Values.OrderBy(k => k.Name, StringComparer.Ordinal).ToArray();

    public static KernelDefinition? Find(string name) =>
        Kernels.TryGetValue(name, out var k) ? k
        : Kernels.Values.FirstOrDefault(d => string.Equals(d.Name, name, StringComparison.OrdinalIgnoreCase) || d.EntryPoint == name);
}
