using IlgpuOct.Kernels;
using IlgpuOct.Nn;
using Xunit.Sdk;

namespace IlgpuOct.Tests.Onnx;

internal static class OnnxTestSupport
{
    /// <summary>Seeded values uniform in [low, high).</summary>
    public static float[] Uniform(int count, int seed, float low = 0f, float high = 1f)
    {
        var random = new Random(seed);
        var values = new float[count];
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = low + (high - low) * random.NextSingle();
        }
        return values;
    }

    /// <summary>Gives every batch norm of the model seeded non-trivial parameters and running statistics, so swapped inputs show.</summary>
    public static void RandomizeBatchNorms(ResNet18 model, int seed)
    {
        int i = 0;
        foreach (var bn in model.BatchNorms)
        {
            int c = bn.Channels;
            bn.Weight.Value.Upload(Uniform(c, seed + 4 * i, 0.5f, 1.5f));
            bn.Bias.Value.Upload(Uniform(c, seed + 4 * i + 1, -0.2f, 0.2f));
            bn.RunningMean.Value.Upload(Uniform(c, seed + 4 * i + 2, -0.3f, 0.3f));
            bn.RunningVar.Value.Upload(Uniform(c, seed + 4 * i + 3, 0.5f, 2f));
            i++;
        }
    }

    /// <summary>Fails at the first index where |actual - expected| > atol + rtol |expected|.</summary>
    public static void AssertClose(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected, double atol, double rtol, string what)
    {
        if (actual.Length != expected.Length)
        {
            throw new XunitException($"{what}: {actual.Length} values, expected {expected.Length}.");
        }
        double worst = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            double error = Math.Abs((double)actual[i] - expected[i]);
            worst = Math.Max(worst, error);
            if (!(error <= atol + rtol * Math.Abs(expected[i])))
            {
                throw new XunitException($"{what}: first bad index {i}: got {actual[i]}, expected {expected[i]} (|a-e| = {error:G3} > atol {atol:G3} + rtol {rtol:G3} x |e|).");
            }
        }
    }

    public static float MaxAbs(ReadOnlySpan<float> values)
    {
        float max = 0;
        foreach (float v in values)
        {
            max = Math.Max(max, Math.Abs(v));
        }
        return max;
    }

    public static Accelerator Cpu() => DeviceSelection.Open("cpu", out _);
}
