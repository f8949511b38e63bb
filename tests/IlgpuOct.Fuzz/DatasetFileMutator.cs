using System.Buffers.Binary;
using System.Security.Cryptography;
using IlgpuOct.Nn.Data;

namespace IlgpuOct.Fuzz;

/// <summary>
/// Structure-aware mutations of the data set file: a header field (counts, shape, lengths, names,
/// split sizes) is set to an interesting value and the header CRC is usually recomputed so the change
/// reaches the checks behind it; labels are changed with the payload SHA-256 recomputed; or raw bytes.
/// </summary>
public static class DatasetFileMutator
{
    private const int CrcCovered = 0; // marker: the CRC covers everything before its own offset

    public static byte[] Mutate(byte[] file, Random random)
    {
        if (random.Next(6) == 0)
        {
            return ByteMutations.Mutate(file, random);
        }
        var bytes = (byte[])file.Clone();
        var layout = Layout.Parse(bytes);
        if (random.Next(4) == 0)
        {
            // A label out of range (or any payload byte) with a matching checksum: only label validation can catch it.
            int at = layout.HeaderLength + random.Next(bytes.Length - layout.HeaderLength);
            bytes[at] = (byte)(random.Next(2) == 0 ? 255 : random.Next(256));
            var hash = SHA256.HashData(bytes.AsSpan(layout.HeaderLength));
            hash.CopyTo(bytes, 48);
        }
        else
        {
            var (offset, width) = layout.Fields[random.Next(layout.Fields.Count)];
            long value = ByteMutations.Interesting[random.Next(ByteMutations.Interesting.Length)];
            if (random.Next(3) == 0)
            {
                value = width switch { 1 => random.Next(256), 2 => random.Next(65536), _ => random.Next(-4, 1 << 16) };
            }
            BitConverter.GetBytes(value).AsSpan(0, width).CopyTo(bytes.AsSpan(offset));
        }
        if (random.Next(5) != 0)
        {
            var fresh = Layout.TryCrcOffset(bytes);
            if (fresh is int crcAt && crcAt + 4 <= bytes.Length)
            {
                BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(crcAt), Crc32.Compute(bytes.AsSpan(0, crcAt)));
            }
        }
        return random.Next(10) == 0 ? bytes[..random.Next(bytes.Length + 1)] : bytes;
    }

    /// <summary>Where each integer field of a valid header lies (offset, width in bytes).</summary>
    private sealed record Layout(int HeaderLength, List<(int Offset, int Width)> Fields)
    {
        public static Layout Parse(byte[] b)
        {
            var fields = new List<(int, int)> { (8, 4), (12, 4), (16, 8), (24, 4), (28, 4), (32, 4), (36, 1), (40, 8), (80, 4) };
            int p = 84;
            int classes = BinaryPrimitives.ReadInt32LittleEndian(b.AsSpan(80));
            for (int i = 0; i < classes; i++)
            {
                fields.Add((p, 2));
                p += 2 + BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(p));
            }
            fields.Add((p, 4));
            int splits = BinaryPrimitives.ReadInt32LittleEndian(b.AsSpan(p));
            p += 4;
            for (int s = 0; s < splits; s++)
            {
                fields.Add((p, 2));
                p += 2 + BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(p));
                fields.Add((p, 8));
                p += 8;
            }
            fields.Add((p, 4));
            return new Layout((int)BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(12)), fields);
        }

        /// <summary>The CRC's offset in a (possibly mutated) header, or null when the header no longer parses.</summary>
        public static int? TryCrcOffset(byte[] b)
        {
            try
            {
                int p = 84;
                int classes = BinaryPrimitives.ReadInt32LittleEndian(b.AsSpan(80));
                if (classes is < 0 or > 1 << 16)
                {
                    return null;
                }
                for (int i = 0; i < classes; i++)
                {
                    p += 2 + BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(p));
                }
                int splits = BinaryPrimitives.ReadInt32LittleEndian(b.AsSpan(p));
                if (splits is < 0 or > 1024)
                {
                    return null;
                }
                p += 4;
                for (int s = 0; s < splits; s++)
                {
                    p += 2 + BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(p)) + 8;
                }
                long source = BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(p));
                long crc = p + 4 + source;
                return crc + 4 <= b.Length ? (int)crc + CrcCovered : null;
            }
            catch (ArgumentOutOfRangeException)
            {
                return null;
            }
        }
    }
}
