using System.Reflection;

namespace IlgpuOct.Kernels.Profiling;

/// <summary>One launch an operator really makes, e.g. the forward convolution of ResNet-18's layer1 at 224x224, batch 64.</summary>
public sealed record LaunchShape(KernelDefinition Kernel, string Case, LaunchConfig Config);

/// <summary>
/// Marks a static parameterless method returning <c>IEnumerable&lt;LaunchShape&gt;</c>: the launch
/// configurations its operator's launchers compute for representative (ResNet-18) shapes, built by
/// the same functions the launchers call. <c>ilgpuoct kernels report</c> computes their occupancy.
/// </summary>
[AttributeUsage(AttributeTargets.Method, Inherited = false)]
public sealed class LaunchShapesAttribute : Attribute;

/// <summary>Finds the [LaunchShapes] methods and the [Kernel(MaySpill = true)] declarations of assemblies.</summary>
public static class KernelDeclarations
{
    private const BindingFlags AllStatic = BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly;

    /// <summary>Every shape of every [LaunchShapes] method, in kernel-name order.</summary>
    public static IReadOnlyList<LaunchShape> LaunchShapes(params Assembly[] assemblies)
    {
        var shapes = new List<LaunchShape>();
        foreach (var (type, method) in MethodsWith<LaunchShapesAttribute>(assemblies))
        {
            if (method.GetParameters().Length != 0 || !typeof(IEnumerable<LaunchShape>).IsAssignableFrom(method.ReturnType))
            {
                throw new InvalidOperationException($"[LaunchShapes] method {type.FullName}.{method.Name} must be static, take no parameters and return IEnumerable<LaunchShape>.");
            }
            shapes.AddRange((IEnumerable<LaunchShape>)method.Invoke(null, null)!);
        }
        return shapes.OrderBy(s => s.Kernel.Name, StringComparer.Ordinal).ToArray();
    }

    /// <summary>Names (as <see cref="KernelDefinition.Name"/>: namespace, containing types and method joined by dots) of the kernels declared <c>[Kernel(MaySpill = true)]</c>.</summary>
    public static IReadOnlySet<string> MaySpill(params Assembly[] assemblies)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (type, method) in MethodsWith<KernelAttribute>(assemblies))
        {
            if (method.GetCustomAttribute<KernelAttribute>()!.MaySpill)
            {
                names.Add((string.IsNullOrEmpty(type.Namespace) ? "" : type.Namespace + ".") + TypeChain(type) + "." + method.Name);
            }
        }
        return names;
    }

    private static IEnumerable<(Type Type, MethodInfo Method)> MethodsWith<TAttribute>(Assembly[] assemblies) where TAttribute : Attribute
    {
        foreach (var assembly in assemblies.Distinct())
        {
            foreach (var type in assembly.GetTypes())
            {
                foreach (var method in type.GetMethods(AllStatic))
                {
                    if (method.GetCustomAttribute<TAttribute>() is not null)
                    {
                        yield return (type, method);
                    }
                }
            }
        }
    }

    private static string TypeChain(Type type) => type.DeclaringType is null ? type.Name : TypeChain(type.DeclaringType) + "." + type.Name;
}
