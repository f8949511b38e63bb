using System.Runtime.CompilerServices;

namespace IlgpuOct.Kernels;

/// <summary>
/// Atomic read-modify-write operations usable in kernels, with CUDA's semantics: each returns the
/// value the target held before. Translated to <c>atomicAdd</c>, <c>atomicMin</c>, <c>atomicMax</c>,
/// <c>atomicCAS</c>, <c>atomicExch</c> (float min/max through a CAS loop helper).
/// Write the target as <c>ref view[index]</c>. On host accelerators an atomic on global memory waits
/// until every block of lower linear index has finished (<c>BlockState.BeforeAtomic</c>): one of the
/// orders a GPU may choose, and the same one in every run, so float sums are reproducible.
/// </summary>
public static class Atomic
{
    public static int Add(ref int target, int value)
    {
        BlockState.BeforeAtomic(ref target);
        return Interlocked.Add(ref target, value) - value;
    }

    public static uint Add(ref uint target, uint value)
    {
        BlockState.BeforeAtomic(ref target);
        return Interlocked.Add(ref target, value) - value;
    }

    public static long Add(ref long target, long value)
    {
        BlockState.BeforeAtomic(ref target);
        return Interlocked.Add(ref target, value) - value;
    }

    public static float Add(ref float target, float value)
    {
        BlockState.BeforeAtomic(ref target);
        float old = Volatile.Read(ref target);
        while (true)
        {
            float seen = Interlocked.CompareExchange(ref target, old + value, old);
            if (BitEquals(seen, old))
            {
                return old;
            }
            old = seen;
        }
    }

    public static double Add(ref double target, double value)
    {
        BlockState.BeforeAtomic(ref target);
        double old = Volatile.Read(ref target);
        while (true)
        {
            double seen = Interlocked.CompareExchange(ref target, old + value, old);
            if (BitConverter.DoubleToInt64Bits(seen) == BitConverter.DoubleToInt64Bits(old))
            {
                return old;
            }
            old = seen;
        }
    }

    public static int Min(ref int target, int value)
    {
        BlockState.BeforeAtomic(ref target);
        int old = Volatile.Read(ref target);
        while (value < old)
        {
            int seen = Interlocked.CompareExchange(ref target, value, old);
            if (seen == old)
            {
                return old;
            }
            old = seen;
        }
        return old;
    }

    public static int Max(ref int target, int value)
    {
        BlockState.BeforeAtomic(ref target);
        int old = Volatile.Read(ref target);
        while (value > old)
        {
            int seen = Interlocked.CompareExchange(ref target, value, old);
            if (seen == old)
            {
                return old;
            }
            old = seen;
        }
        return old;
    }

    public static float Min(ref float target, float value)
    {
        BlockState.BeforeAtomic(ref target);
        float old = Volatile.Read(ref target);
        while (value < old)
        {
            float seen = Interlocked.CompareExchange(ref target, value, old);
            if (BitEquals(seen, old))
            {
                return old;
            }
            old = seen;
        }
        return old;
    }

    public static float Max(ref float target, float value)
    {
        BlockState.BeforeAtomic(ref target);
        float old = Volatile.Read(ref target);
        while (value > old)
        {
            float seen = Interlocked.CompareExchange(ref target, value, old);
            if (BitEquals(seen, old))
            {
                return old;
            }
            old = seen;
        }
        return old;
    }

    /// <summary>CUDA's atomicCAS: if target == expected, store desired. Note the argument order (CUDA's, not Interlocked's).</summary>
    public static int CompareExchange(ref int target, int expected, int desired)
    {
        BlockState.BeforeAtomic(ref target);
        return Interlocked.CompareExchange(ref target, desired, expected);
    }

    /// <summary>Bitwise compare-and-swap on a float, as <c>atomicCAS</c> on its bits.</summary>
    public static float CompareExchange(ref float target, float expected, float desired)
    {
        BlockState.BeforeAtomic(ref target);
        ref int bits = ref Unsafe.As<float, int>(ref target);
        int old = Interlocked.CompareExchange(ref bits, BitConverter.SingleToInt32Bits(desired), BitConverter.SingleToInt32Bits(expected));
        return BitConverter.Int32BitsToSingle(old);
    }

    public static int Exchange(ref int target, int value)
    {
        BlockState.BeforeAtomic(ref target);
        return Interlocked.Exchange(ref target, value);
    }

    public static float Exchange(ref float target, float value)
    {
        BlockState.BeforeAtomic(ref target);
        return Interlocked.Exchange(ref target, value);
    }

    private static bool BitEquals(float a, float b) => BitConverter.SingleToInt32Bits(a) == BitConverter.SingleToInt32Bits(b);
}
