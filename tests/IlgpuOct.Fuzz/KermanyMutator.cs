using System.Runtime.InteropServices;

namespace IlgpuOct.Fuzz;

/// <summary>
/// Kermany folder mutations: class folders of small JPEGs in which some files are damaged (bit
/// flips, truncation, a forged frame size), empty, or replaced by what is not a regular file: a FIFO,
/// a dangling link, a link to /dev/zero, a folder named like a JPEG.
/// </summary>
public static partial class KermanyMutator
{
    public static readonly string[] Classes = ["CNV", "DME", "DRUSEN", "NORMAL"];

    public static void Materialize(string root, IReadOnlyList<byte[]> seedJpegs, Random random)
    {
        int perClass = 3;
        foreach (string name in Classes)
        {
            string folder = Path.Combine(root, random.Next(12) == 0 ? name.ToLowerInvariant() : name);
            Directory.CreateDirectory(folder);
            for (int i = 0; i < perClass; i++)
            {
                string file = Path.Combine(folder, $"{name}-{i}.jpeg");
                byte[] jpeg = seedJpegs[random.Next(seedJpegs.Count)];
                switch (random.Next(14))
                {
                    case 0:
                        File.WriteAllBytes(file, ByteMutations.Mutate(jpeg, random));
                        break;
                    case 1:
                        File.WriteAllBytes(file, ForgeFrameSize(jpeg, random));
                        break;
                    case 2:
                        File.WriteAllBytes(file, []);
                        break;
                    case 3:
                        if (mkfifo(file, Convert.ToUInt32("644", 8)) != 0)
                        {
                            File.WriteAllBytes(file, jpeg);
                        }
                        break;
                    case 4:
                        File.CreateSymbolicLink(file, Path.Combine(root, "missing-target.jpeg"));
                        break;
                    case 5:
                        File.CreateSymbolicLink(file, "/dev/zero");
                        break;
                    case 6:
                        Directory.CreateDirectory(file);
                        break;
                    default:
                        File.WriteAllBytes(file, jpeg);
                        break;
                }
            }
        }
    }

    /// <summary>Overwrites the height/width of the first SOF marker with an interesting value.</summary>
    private static byte[] ForgeFrameSize(byte[] jpeg, Random random)
    {
        var bytes = (byte[])jpeg.Clone();
        for (int i = 0; i + 8 < bytes.Length; i++)
        {
            if (bytes[i] == 0xFF && bytes[i + 1] is 0xC0 or 0xC1 or 0xC2)
            {
                ushort value = (ushort)(random.Next(3) switch { 0 => 0, 1 => 0xFFFF, _ => random.Next(65536) });
                int at = i + 5 + 2 * random.Next(2);
                bytes[at] = (byte)(value >> 8);
                bytes[at + 1] = (byte)value;
                break;
            }
        }
        return bytes;
    }

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int mkfifo(string path, uint mode);
}
