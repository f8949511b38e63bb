using IlgpuOct.Kernels.Verification;
using Xunit.Sdk;

namespace IlgpuOct.Tests.Support;

/// <summary>
/// Element-wise comparison |actual - expected| &lt;= atol + rtol * |expected| that reports the first
/// bad index, both values and the largest difference; and relative L2 error for golden tensors.
/// The comparison itself is <see cref="Comparison"/> (shared with <c>ilgpuoct verify</c>); this turns a failure into a test failure.
/// </summary>
public static class Tolerance
{
    public static void AssertClose(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected, double atol, double rtol, string what) =>
        Require(Comparison.Compare(what, actual, expected, atol, rtol));

    public static void AssertClose(ReadOnlySpan<double> actual, ReadOnlySpan<double> expected, double atol, double rtol, string what) =>
        Require(Comparison.Compare(what, actual, expected, atol, rtol));

    /// <summary>||a - e||_2 / max(||e||_2, tiny).</summary>
    public static double RelativeL2(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected) => Comparison.RelativeL2(actual, expected);

    public static void AssertRelativeL2(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected, double maxRelativeL2, string what) =>
        Require(Comparison.Compare(what, actual, expected, double.PositiveInfinity, 0, maxRelativeL2));

    /// <summary>Fails the test with the comparison's message unless every check of every comparison passed.</summary>
    public static void Require(params TensorComparison[] comparisons)
    {
        foreach (var c in comparisons)
        {
            if (!c.Passed)
            {
                throw new XunitException(c.ToString());
            }
        }
    }
}
