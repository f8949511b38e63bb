using System.Globalization;

namespace IlgpuOct.Tests.Operators;

/// <summary>
/// Helpers for operator tests: seeded random tensors, central differences of a double-precision
/// scalar function, and the "key=value,key=value" settings strings of the golden metadata.
/// </summary>
internal static class GradientCheck
{
    /// <summary>d f / d x_i by central differences, f evaluated in double.</summary>
    public static double[] Numeric(Func<double[], double> f, double[] x, double step = 1e-6)
    {
        var grad = new double[x.Length];
        var probe = (double[])x.Clone();
        for (int i = 0; i < x.Length; i++)
        {
            double keep = probe[i];
            probe[i] = keep + step;
            double plus = f(probe);
            probe[i] = keep - step;
            double minus = f(probe);
            probe[i] = keep;
            grad[i] = (plus - minus) / (2 * step);
        }
        return grad;
    }

    /// <summary>Uniform values in [-scale, scale), rounded to float so float and double runs see the same inputs.</summary>
    public static double[] Random(Random random, int length, double scale = 1.0)
    {
        var values = new double[length];
        for (int i = 0; i < length; i++)
        {
            values[i] = (float)((random.NextDouble() * 2 - 1) * scale);
        }
        return values;
    }

    public static float[] ToFloat(double[] values) => Array.ConvertAll(values, v => (float)v);

    public static double[] ToDouble(float[] values) => Array.ConvertAll(values, v => (double)v);

    /// <summary>sum_i a_i b_i.</summary>
    public static double Dot(double[] a, double[] b)
    {
        double sum = 0;
        for (int i = 0; i < a.Length; i++)
        {
            sum += a[i] * b[i];
        }
        return sum;
    }

    /// <summary>Parses "stride=2,padding=3" into its pairs (keys are case-sensitive).</summary>
    public static Dictionary<string, string> Settings(string text) => IlgpuOct.Defense.Verification.GoldenOperators.Settings(text);

    public static int Int(Dictionary<string, string> settings, string key) => IlgpuOct.Defense.Verification.GoldenOperators.Int(settings, key);
}
