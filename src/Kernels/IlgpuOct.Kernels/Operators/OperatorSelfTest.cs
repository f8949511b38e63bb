namespace IlgpuOct.Kernels.Operators;

/// <summary>
/// The common shape of the operators' [SelfTests] cases: seeded inputs, the kernels on the device,
/// the CPU implementation on the host copies, the largest absolute difference over the outputs.
/// </summary>
internal static class OperatorSelfTest
{
    /// <summary>Uniform values in [-scale, scale) from a seeded generator.</summary>
    public static float[] Random(int seed, int length, float scale = 1f)
    {
        var random = new Random(seed);
        var values = new float[length];
        for (int i = 0; i < length; i++)
        {
            values[i] = (float)((random.NextDouble() * 2 - 1) * scale);
        }
        return values;
    }

    /// <summary>
    /// Uploads every host array, runs <paramref name="onDevice"/> on their views, runs
    /// <paramref name="onHost"/> on copies of the arrays, and compares the arrays listed in
    /// <paramref name="outputs"/> (by index) element by element.
    /// </summary>
    public static SelfTestResult Compare(Accelerator accelerator, float[][] arrays, int[] outputs,
        Action<Accelerator, View<float>[]> onDevice, Action<float[][]> onHost, double tolerance)
    {
        var buffers = new DeviceBuffer<float>[arrays.Length];
        try
        {
            for (int i = 0; i < arrays.Length; i++)
            {
                buffers[i] = accelerator.Upload<float>(arrays[i]);
            }
            onDevice(accelerator, Array.ConvertAll(buffers, b => b.View));
            accelerator.Synchronize();
            var host = Array.ConvertAll(arrays, a => (float[])a.Clone());
            onHost(host);
            double worst = 0;
            foreach (int o in outputs)
            {
                worst = Math.Max(worst, SelfTestCatalog.MaxAbsDifference(accelerator.Download(buffers[o].View), host[o]));
            }
            return new SelfTestResult(worst, tolerance);
        }
        finally
        {
            foreach (var buffer in buffers)
            {
                buffer?.Dispose();
            }
        }
    }

    /// <summary>Runs <paramref name="check"/> with the accelerator's matrix-product precision set, then restores it.</summary>
    public static SelfTestResult WithPrecision(Accelerator accelerator, MatmulPrecision precision, Func<SelfTestResult> check)
    {
        var previous = accelerator.Precision;
        accelerator.Precision = precision;
        try
        {
            return check();
        }
        finally
        {
            accelerator.Precision = previous;
        }
    }
}
