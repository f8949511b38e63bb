namespace IlgpuOct.Cli.Commands;

/// <summary>The inputs the bench and profile workloads run on: seeded, so two runs time the same work.</summary>
internal static class BenchInputs
{
    /// <summary><paramref name="count"/> pixels uniform in [0, 1) from seed 1.</summary>
    public static float[] Images(int count)
    {
        var random = new Random(1);
        var pixels = new float[count];
        for (int i = 0; i < pixels.Length; i++)
        {
            pixels[i] = (float)random.NextDouble();
        }
        return pixels;
    }
}
