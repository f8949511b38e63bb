using System.Globalization;

namespace IlgpuOct.Kernels.Verification;

/// <summary>
/// One tensor against its reference: relative L2 error ||a - e||_2 / ||e||_2 against a bound, and
/// the element-wise test |a - e| &lt;= atol + rtol |e| with the first bad index (NaN matches NaN only).
/// </summary>
public sealed record TensorComparison(
    string What,
    int Length,
    double RelativeL2,
    double MaxRelativeL2,
    double Atol,
    double Rtol,
    int FirstBadIndex,
    double FirstBadActual,
    double FirstBadExpected,
    double MaxAbsDifference,
    int MaxAbsDifferenceAt,
    string? LengthMismatch)
{
    public bool Passed => LengthMismatch is null && RelativeL2 <= MaxRelativeL2 && FirstBadIndex < 0;

    public override string ToString() => LengthMismatch ?? (FirstBadIndex >= 0
        ? string.Create(CultureInfo.InvariantCulture,
            $"{What}: element {FirstBadIndex} is {FirstBadActual:R}, expected {FirstBadExpected:R} (atol {Atol}, rtol {Rtol}); largest difference {MaxAbsDifference:G4} at {MaxAbsDifferenceAt} of {Length}; relative L2 {RelativeL2:G4}")
        : RelativeL2 <= MaxRelativeL2
            ? string.Create(CultureInfo.InvariantCulture, $"{What}: relative L2 {RelativeL2:G3} (<= {MaxRelativeL2:G3}), largest difference {MaxAbsDifference:G3}")
            : string.Create(CultureInfo.InvariantCulture, $"{What}: relative L2 error {RelativeL2:G4} exceeds {MaxRelativeL2:G4}"));
}

public static class Comparison
{
    /// <summary>Both tests at once; <paramref name="maxRelativeL2"/> = +inf skips the L2 bound.</summary>
    public static TensorComparison Compare(string what, ReadOnlySpan<double> actual, ReadOnlySpan<double> expected, double atol, double rtol, double maxRelativeL2 = double.PositiveInfinity)
    {
        if (actual.Length != expected.Length)
        {
            return new TensorComparison(what, actual.Length, double.NaN, maxRelativeL2, atol, rtol, -1, 0, 0, 0, 0, $"{what}: length {actual.Length} != expected {expected.Length}");
        }
        int firstBad = -1;
        double maxDiff = 0;
        int maxAt = 0;
        double num = 0, den = 0;
        for (int i = 0; i < actual.Length; i++)
        {
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
            double d = actual[i] - expected[i];
            num += d * d;
            den += expected[i] * expected[i];
        }
        double rel = Math.Sqrt(num) / Math.Max(Math.Sqrt(den), 1e-30);
        return new TensorComparison(what, actual.Length, rel, maxRelativeL2, atol, rtol, firstBad,
            firstBad >= 0 ? actual[firstBad] : 0, firstBad >= 0 ? expected[firstBad] : 0, maxDiff, maxAt, null);
    }

    public static TensorComparison Compare(string what, ReadOnlySpan<float> actual, ReadOnlySpan<float> expected, double atol, double rtol, double maxRelativeL2 = double.PositiveInfinity) =>
        Compare(what, Widen(actual), Widen(expected), atol, rtol, maxRelativeL2);

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

    private static double[] Widen(ReadOnlySpan<float> values)
    {
        var wide = new double[values.Length];
        for (int i = 0; i < wide.Length; i++)
        {
            wide[i] = values[i];
        }
        return wide;
    }
}
