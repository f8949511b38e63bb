namespace IlgpuOct.Nn.Data;

/// <summary>
/// Derives independent seeds from (seed, stream, index) so that images and epochs can be produced
/// in any order or in parallel and still come out identical for the same inputs.
/// </summary>
public static class Seeds
{
    /// <summary>SplitMix64 finaliser of the combined inputs, folded to a non-negative int for <see cref="Random"/>.</summary>
    public static int Derive(int seed, int stream, long index)
    {
        ulong z = unchecked((ulong)(uint)seed * 0x9E3779B97F4A7C15UL ^ ((ulong)(uint)stream << 32) ^ (ulong)index);
        z = Mix(z + 0x9E3779B97F4A7C15UL);
        z = Mix(z ^ ((ulong)(uint)seed << 17));
        return (int)(z & 0x7FFFFFFF);
    }

    internal static ulong Mix(ulong z)
    {
        unchecked
        {
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }
    }

    /// <summary>Fisher-Yates permutation of 0..count-1 from one seeded <see cref="Random"/>.</summary>
    public static int[] Permutation(int count, int seed)
    {
        var order = new int[count];
        for (int i = 0; i < count; i++)
        {
            order[i] = i;
        }
        new Random(seed).Shuffle(order);
        return order;
    }
}

/// <summary>
/// A small, fast, explicitly seeded generator (xorshift-multiply) for per-pixel noise, where
/// <see cref="Random"/> per pixel would dominate the rendering time. Seeded from a <see cref="Random"/>.
/// </summary>
internal struct PixelNoise
{
    private ulong _state;

    public PixelNoise(Random source)
    {
        _state = (ulong)source.NextInt64() | 1UL;
    }

    /// <summary>Uniform in [0, 1).</summary>
    public float NextFloat()
    {
        unchecked
        {
            _state ^= _state >> 12;
            _state ^= _state << 25;
            _state ^= _state >> 27;
            return ((_state * 0x2545F4914F6CDD1DUL) >> 40) * (1f / (1 << 24));
        }
    }

    /// <summary>Standard normal by table: one of 4096 equiprobable quantiles, picked by the top 12 bits.</summary>
    public float NextGaussian()
    {
        unchecked
        {
            _state ^= _state >> 12;
            _state ^= _state << 25;
            _state ^= _state >> 27;
            return GaussianQuantiles[(int)((_state * 0x2545F4914F6CDD1DUL) >> 52)];
        }
    }

    private static readonly float[] GaussianQuantiles = BuildQuantiles();

    /// <summary>Quantiles at (i + 0.5) / 4096 (Abramowitz and Stegun 26.2.23, |error| &lt; 4.5e-4).</summary>
    private static float[] BuildQuantiles()
    {
        var table = new float[4096];
        for (int i = 0; i < table.Length; i++)
        {
            double p = (i + 0.5) / table.Length;
            double q = Math.Min(p, 1 - p);
            double t = Math.Sqrt(-2 * Math.Log(q));
            double z = t - (2.515517 + 0.802853 * t + 0.010328 * t * t) / (1 + 1.432788 * t + 0.189269 * t * t + 0.001308 * t * t * t);
            table[i] = (float)(p < 0.5 ? -z : z);
        }
        return table;
    }
}
