using System.Reflection;

namespace IlgpuOct.Kernels;

/// <summary>Outcome of one self-test: the largest |kernel - CPU| and the tolerance it is held to.</summary>
public readonly record struct SelfTestResult(double MaxAbsError, double Tolerance)
{
    public bool Passed => MaxAbsError <= Tolerance;
}

/// <summary>
/// One check that runs a kernel on an accelerator with seeded random inputs and compares it with the
/// operator's CPU implementation. <paramref name="Run"/> gets the accelerator and a seed.
/// </summary>
public sealed record SelfTestCase(string Kernel, string Shape, Func<Accelerator, int, SelfTestResult> Run);

/// <summary>Marks a static parameterless method returning <c>IEnumerable&lt;SelfTestCase&gt;</c>; <c>ilgpuoct selftest</c> runs them all.</summary>
[AttributeUsage(AttributeTargets.Method, Inherited = false)]
public sealed class SelfTestsAttribute : Attribute;

public static class SelfTestCatalog
{
    /// <summary>Every case from every [SelfTests] method of the given assemblies, ordered by kernel name.</summary>
    public static IReadOnlyList<SelfTestCase> Discover(params Assembly[] assemblies)
    {
        var cases = new List<SelfTestCase>();
        foreach (var assembly in assemblies.Distinct())
        {
            foreach (var type in assembly.GetTypes())
            {
                foreach (var method in type.GetMethods(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
                {
                    if (method.GetCustomAttribute<SelfTestsAttribute>() is null)
                    {
                        continue;
                    }
                    if (method.GetParameters().Length != 0 || !typeof(IEnumerable<SelfTestCase>).IsAssignableFrom(method.ReturnType))
                    {
                        throw new InvalidOperationException($"[SelfTests] method {type.FullName}.{method.Name} must be static, take no parameters and return IEnumerable<SelfTestCase>.");
                    }
                    cases.AddRange((IEnumerable<SelfTestCase>)method.Invoke(null, null)!);
                }
            }
        }
        return cases.OrderBy(c => c.Kernel, StringComparer.Ordinal).ThenBy(c => c.Shape, StringComparer.Ordinal).ToArray();
    }

    /// <summary>Largest absolute difference of two equally long spans (NaN on either side counts as infinite).</summary>
    public static double MaxAbsDifference(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected)
    {
        if (actual.Length != expected.Length)
        {
            return double.PositiveInfinity;
        }
        double max = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            double d = Math.Abs((double)actual[i] - expected[i]);
            if (double.IsNaN(d))
            {
                return double.PositiveInfinity;
            }
            max = Math.Max(max, d);
        }
        return max;
    }
}
