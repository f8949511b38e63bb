using System.Globalization;

namespace IlgpuOct.Fuzz;

/// <summary>Format-blind mutations every format also gets: bit flips, truncation, splices, overwritten integers.</summary>
public static class ByteMutations
{
    /// <summary>Integers that break size arithmetic: zero, signs, powers of two around 2^31 and 2^63.</summary>
    public static readonly long[] Interesting =
    [
        0, 1, -1, 2, 3, 7, 8, 255, 256, 65535, 65536, int.MaxValue, (long)int.MaxValue + 1, int.MinValue, uint.MaxValue,
        1L << 32, 1L << 40, long.MaxValue, long.MinValue, 1 << 20, 1 << 28, 46341, 65537 * 65537L,
    ];

    public static readonly string[] InterestingText =
    [
        "", "-1", "0", "1e999", "-1e999", "nan", "NaN", "Infinity", "99999999999999999999999", "2147483648", "-2147483649",
        "9223372036854775808", "0x10", " 5", "5 ", "1.5", "true", "null", "\u0000", new string('9', 400),
    ];

    public static byte[] Mutate(byte[] input, Random random)
    {
        var bytes = (byte[])input.Clone();
        switch (random.Next(6))
        {
            case 0: // bit flips
                for (int i = 0, n = 1 + random.Next(8); i < n && bytes.Length > 0; i++)
                {
                    bytes[random.Next(bytes.Length)] ^= (byte)(1 << random.Next(8));
                }
                return bytes;
            case 1: // truncation
                return bytes[..random.Next(bytes.Length + 1)];
            case 2: // an interesting integer written over 1, 2, 4 or 8 bytes
            {
                if (bytes.Length < 8)
                {
                    return bytes;
                }
                int width = 1 << random.Next(4);
                int at = random.Next(bytes.Length - width + 1);
                BitConverter.GetBytes(Interesting[random.Next(Interesting.Length)]).AsSpan(0, width).CopyTo(bytes.AsSpan(at));
                return bytes;
            }
            case 3: // a chunk duplicated or removed
            {
                if (bytes.Length < 2)
                {
                    return bytes;
                }
                int a = random.Next(bytes.Length), b = random.Next(a, Math.Min(bytes.Length, a + 256) + 1);
                return random.Next(2) == 0 ? [.. bytes[..b], .. bytes[a..b], .. bytes[b..]] : [.. bytes[..a], .. bytes[b..]];
            }
            case 4: // random bytes overwritten
                for (int i = 0, n = 1 + random.Next(32); i < n && bytes.Length > 0; i++)
                {
                    bytes[random.Next(bytes.Length)] = (byte)random.Next(256);
                }
                return bytes;
            default: // extended with garbage
                var tail = new byte[random.Next(1, 512)];
                random.NextBytes(tail);
                return [.. bytes, .. tail];
        }
    }

    public static string Text(long value) => value.ToString(CultureInfo.InvariantCulture);
}
