using System.Globalization;
using System.IO.Compression;
using System.Text;

namespace IlgpuOct.Fuzz;

/// <summary>One .npy entry of a .npz as the mutator sees it: header fields and data.</summary>
public sealed record NpyEntry(string Name, string Descr, bool Fortran, string Shape, byte[] Data, int Major = 1);

/// <summary>
/// Structure-aware .npz mutations: the arrays' headers (dtype, order, shape tuple with huge or
/// negative or missing dimensions, format version) and data (truncated, label values) are changed
/// and the zip is rebuilt; entries go missing or lose their partner; or the zip bytes are damaged.
/// </summary>
public static class NpzMutator
{
    public static IReadOnlyList<NpyEntry> SeedEntries(int count, int side, Random random)
    {
        var images = new byte[count * side * side];
        random.NextBytes(images);
        var labels = Enumerable.Range(0, count).Select(i => (byte)(i % 2)).ToArray();
        var list = new List<NpyEntry>();
        foreach (string split in new[] { "train", "val", "test" })
        {
            list.Add(new NpyEntry($"{split}_images.npy", "|u1", false, $"({count}, {side}, {side})", images));
            list.Add(new NpyEntry($"{split}_labels.npy", "|u1", false, $"({count}, 1)", labels));
        }
        return list;
    }

    public static byte[] Build(IEnumerable<NpyEntry> entries)
    {
        using var ms = new MemoryStream();
        using (var zip = new ZipArchive(ms, ZipArchiveMode.Create, leaveOpen: true))
        {
            foreach (var e in entries)
            {
                using var s = zip.CreateEntry(e.Name, CompressionLevel.Fastest).Open();
                s.Write(Npy(e));
            }
        }
        return ms.ToArray();
    }

    public static byte[] Mutate(IReadOnlyList<NpyEntry> seed, Random random)
    {
        if (random.Next(6) == 0)
        {
            return ByteMutations.Mutate(Build(seed), random);
        }
        var entries = seed.ToList();
        int i = random.Next(entries.Count);
        var e = entries[i];
        string[] descrs = ["|u1", "<u2", "<i8", ">i4", "<f4", "|b1", "<u8", "|i1", "x", "<i3"];
        entries[i] = random.Next(8) switch
        {
            0 => e with { Descr = descrs[random.Next(descrs.Length)] },
            1 => e with { Fortran = !e.Fortran },
            2 or 3 => e with { Shape = MutateShape(e.Shape, random) },
            4 => e with { Data = e.Data[..random.Next(e.Data.Length + 1)] },
            5 => e with { Data = ByteMutations.Mutate(e.Data, random) },
            6 => e with { Major = random.Next(5) },
            _ => e with { Data = LabelValues(e, random) },
        };
        if (random.Next(8) == 0)
        {
            entries.RemoveAt(random.Next(entries.Count));
        }
        return Build(entries);
    }

    private static byte[] LabelValues(NpyEntry e, Random random)
    {
        var data = (byte[])e.Data.Clone();
        for (int k = 0; k < 1 + random.Next(4) && data.Length > 0; k++)
        {
            data[random.Next(data.Length)] = (byte)random.Next(256);
        }
        return data;
    }

    private static string MutateShape(string shape, Random random)
    {
        var dims = shape.Trim('(', ')').Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList();
        string pick = random.Next(4) switch
        {
            0 => ByteMutations.Text(ByteMutations.Interesting[random.Next(ByteMutations.Interesting.Length)]),
            1 => random.Next(0, 40).ToString(CultureInfo.InvariantCulture),
            2 => ByteMutations.InterestingText[random.Next(ByteMutations.InterestingText.Length)],
            _ => "3",
        };
        switch (random.Next(4))
        {
            case 0 when dims.Count > 0:
                dims[random.Next(dims.Count)] = pick;
                break;
            case 1:
                dims.Add(pick);
                break;
            case 2 when dims.Count > 0:
                dims.RemoveAt(random.Next(dims.Count));
                break;
            default:
                dims.Clear();
                break;
        }
        return "(" + string.Join(", ", dims) + (dims.Count == 1 ? ",)" : ")");
    }

    private static byte[] Npy(NpyEntry e)
    {
        string dict = $"{{'descr': '{e.Descr}', 'fortran_order': {(e.Fortran ? "True" : "False")}, 'shape': {e.Shape}, }}";
        int lengthBytes = e.Major >= 2 ? 4 : 2;
        int total = 6 + 2 + lengthBytes + dict.Length + 1;
        dict = dict.PadRight(dict.Length + (64 - total % 64) % 64) + "\n";
        var header = Encoding.Latin1.GetBytes(dict);
        using var ms = new MemoryStream();
        ms.Write([0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', (byte)e.Major, 0]);
        if (lengthBytes == 2)
        {
            ms.Write(BitConverter.GetBytes((ushort)header.Length));
        }
        else
        {
            ms.Write(BitConverter.GetBytes((uint)header.Length));
        }
        ms.Write(header);
        ms.Write(e.Data);
        return ms.ToArray();
    }
}
