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

    /// <summary>
    /// A kernel by its namespace-qualified name, its entry point, or a shorter name (<c>Type.Method</c>)
    /// when exactly one kernel ends with it; null when none or several match.
    /// </summary>
    public static KernelDefinition? Find(string name)
    {
        if (Kernels.TryGetValue(name, out var k))
        {
            return k;
        }
        var exact = Kernels.Values.FirstOrDefault(d => string.Equals(d.Name, name, StringComparison.OrdinalIgnoreCase) || d.EntryPoint == name);
        if (exact is not null)
        {
            return exact;
        }
        var suffix = Kernels.Values.Where(d => d.Name.EndsWith("." + name, StringComparison.OrdinalIgnoreCase)).Take(2).ToArray();
        return suffix.Length == 1 ? suffix[0] : null;
    }
}
