using System.Globalization;
using Xunit.Sdk;

namespace IlgpuOct.Tests.Support;

/// <summary>
/// Element-wise comparison |actual - expected| &lt;= atol + rtol * |expected| that reports the first
/// bad index, both values and the largest difference; and relative L2 error for golden tensors.
/// </summary>
public static class Tolerance
{
    public static void AssertClose(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected, double atol, double rtol, string what)
    {
        var a = new double[actual.Length];
        var e = new double[expected.Length];
        for (int i = 0; i < a.Length; i++)
        {
            a[i] = actual[i];
        }
        for (int i = 0; i < e.Length; i++)
        {
            e[i] = expected[i];
        }
        AssertClose(a, e, atol, rtol, what);
    }

    public static void AssertClose(ReadOnlySpan<double> actual, ReadOnlySpan<double> expected, double atol, double rtol, string what)
    {
        if (actual.Length != expected.Length)
        {
            throw new XunitException($"{what}: length {actual.Length} != expected {expected.Length}");
        }
        int firstBad = -1;
        double maxDiff = 0;
        int maxAt = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            // NaN matches NaN (e.g. ReLU passing NaN through); NaN against a number never does.
            double diff = double.IsNaN(actual[i]) && double.IsNaN(expected[i]) ? 0
                : double.IsNaN(actual[i]) || double.IsNaN(expected[i]) ? double.PositiveInfinity
                : Math.Abs(actual[i] - expected[i]);
            if (diff > maxDiff)
            {
                maxDiff = diff;
                maxAt = i;
            }
            if (firstBad < 0 && !(diff <= atol + rtol * Math.Abs(expected[i])))
            {
                firstBad = i;
            }
        }
        if (firstBad >= 0)
        {
            throw new XunitException(string.Create(CultureInfo.InvariantCulture,
                $"{what}: element {firstBad} is {actual[firstBad]:R}, expected {expected[firstBad]:R} (atol {atol}, rtol {rtol}); largest difference {maxDiff:G4} at {maxAt} of {actual.Length}"));
        }
    }

    /// <summary>||a - e||_2 / max(||e||_2, tiny).</summary>
    public static double RelativeL2(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected)
    {
        double num = 0;
        double den = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double d = (double)actual[i] - expected[i];
            num += d * d;
            den += (double)expected[i] * expected[i];
        }
        return Math.Sqrt(num) / Math.Max(Math.Sqrt(den), 1e-30);
    }

    public static void AssertRelativeL2(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected, double maxRelativeL2, string what)
    {
        if (actual.Length != expected.Length)
        {
            throw new XunitException($"{what}: length {actual.Length} != expected {expected.Length}");
        }
        double rel = RelativeL2(actual, expected);
        if (!(rel <= maxRelativeL2))
        {
            throw new XunitException(string.Create(CultureInfo.InvariantCulture, $"{what}: relative L2 error {rel:G4} exceeds {maxRelativeL2:G4}"));
        }
    }
}
