using IlgpuOct.Kernels;
using System.Buffers.Binary;
using System.Text;
using System.Text.RegularExpressions;

namespace IlgpuOct.Nn.Data;

/// <summary>The header of a NumPy .npy array: element type (descr), memory order and shape.</summary>
public sealed record NpyHeader(string Descr, bool FortranOrder, long[] Shape)
{
    /// <summary>Product of the dimensions, saturated at long.MaxValue (a damaged header must not wrap it to a small number).</summary>
    public long ElementCount => Shape.Aggregate(1L, (a, b) => b == 0 || a == 0 ? 0 : a > long.MaxValue / b ? long.MaxValue : a * b);

    /// <summary>Bytes per element from the descr (e.g. '|u1' -> 1, '&lt;i8' -> 8).</summary>
    public int ElementSize => int.Parse(Descr[2..], System.Globalization.CultureInfo.InvariantCulture);

    public string ShapeText => "(" + string.Join(", ", Shape) + ")";
}

/// <summary>
/// Reads .npy arrays (format versions 1-3) from a stream: the header is parsed here (magic, version,
/// the Python dict literal with 'descr', 'fortran_order', 'shape'), the data is read by the caller.
/// </summary>
public static partial class Npy
{
    private static readonly byte[] MagicBytes = [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    /// <summary>Reads and parses the header, leaving the stream at the first data byte. <paramref name="name"/> goes into error messages.</summary>
    public static NpyHeader ReadHeader(Stream stream, string name)
    {
        Span<byte> prefix = stackalloc byte[8];
        ReadExactly(stream, prefix, name, "the .npy preamble");
        if (!prefix[..6].SequenceEqual(MagicBytes))
        {
            throw new InvalidFileFormatException($"{name} is not a .npy array (it does not start with \\x93NUMPY).");
        }
        int major = prefix[6];
        int headerLength;
        if (major == 1)
        {
            Span<byte> length = stackalloc byte[2];
            ReadExactly(stream, length, name, "the header length");
            headerLength = BinaryPrimitives.ReadUInt16LittleEndian(length);
        }
        else if (major is 2 or 3)
        {
            Span<byte> length = stackalloc byte[4];
            ReadExactly(stream, length, name, "the header length");
            headerLength = (int)Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(length), int.MaxValue);
        }
        else
        {
            throw new InvalidFileFormatException($"{name} has .npy format version {major}.{prefix[7]}; versions 1-3 are supported.");
        }
        if (headerLength > 1 << 20)
        {
            throw new InvalidFileFormatException($"{name} declares a {headerLength}-byte .npy header, which is not plausible (damaged file).");
        }
        var header = new byte[headerLength];
        ReadExactly(stream, header, name, "the header");
        return ParseHeader(major == 3 ? Encoding.UTF8.GetString(header) : Encoding.Latin1.GetString(header), name);
    }

    /// <summary>Parses the dict literal, e.g. <c>{'descr': '|u1', 'fortran_order': False, 'shape': (468, 28, 28), }</c>.</summary>
    public static NpyHeader ParseHeader(string text, string name)
    {
        var descr = DescrPattern().Match(text);
        var fortran = FortranPattern().Match(text);
        var shape = ShapePattern().Match(text);
        if (!descr.Success || !fortran.Success || !shape.Success)
        {
            throw new InvalidFileFormatException($"{name} has a .npy header without 'descr', 'fortran_order' and 'shape': {Printable(text)}");
        }
        var dims = shape.Groups[1].Value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (dims.Length > 8)
        {
            throw new InvalidFileFormatException($"{name} has a .npy shape of {dims.Length} dimensions; at most 8 are supported.");
        }
        var parsed = new long[dims.Length];
        for (int i = 0; i < dims.Length; i++)
        {
            if (!long.TryParse(dims[i].TrimEnd('L'), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out parsed[i]))
            {
                throw new InvalidFileFormatException($"{name} has a .npy shape that is not a tuple of non-negative integers: ({shape.Groups[1].Value}).");
            }
        }
        string d = descr.Groups[1].Value;
        if (!DescrFormat().IsMatch(d))
        {
            throw new InvalidFileFormatException($"{name} has element type '{d}'; only plain integer types (e.g. '|u1', '<i8') are supported.");
        }
        return new NpyHeader(d, fortran.Groups[1].Value == "True", parsed);
    }

    /// <summary>Reads <paramref name="header"/>.ElementCount integers (labels) of any supported integer type into ints.</summary>
    public static int[] ReadIntegers(Stream stream, NpyHeader header, string name)
    {
        int size = header.ElementSize;
        long count = header.ElementCount;
        if (count > Array.MaxLength / 8)
        {
            throw new InvalidFileFormatException($"{name} has too many labels ({count}).");
        }
        var raw = new byte[count * size];
        ReadExactly(stream, raw, name, $"{count} values of type '{header.Descr}' (the array is truncated)");
        bool big = header.Descr[0] == '>';
        bool unsigned = header.Descr[1] == 'u';
        var values = new int[count];
        for (long i = 0; i < count; i++)
        {
            var bytes = raw.AsSpan((int)(i * size), size);
            long v = (size, unsigned) switch
            {
                (1, true) => bytes[0],
                (1, false) => (sbyte)bytes[0],
                (2, true) => big ? BinaryPrimitives.ReadUInt16BigEndian(bytes) : BinaryPrimitives.ReadUInt16LittleEndian(bytes),
                (2, false) => big ? BinaryPrimitives.ReadInt16BigEndian(bytes) : BinaryPrimitives.ReadInt16LittleEndian(bytes),
                (4, true) => big ? BinaryPrimitives.ReadUInt32BigEndian(bytes) : BinaryPrimitives.ReadUInt32LittleEndian(bytes),
                (4, false) => big ? BinaryPrimitives.ReadInt32BigEndian(bytes) : BinaryPrimitives.ReadInt32LittleEndian(bytes),
                (8, true) => (long)Math.Min(big ? BinaryPrimitives.ReadUInt64BigEndian(bytes) : BinaryPrimitives.ReadUInt64LittleEndian(bytes), long.MaxValue),
                (8, false) => big ? BinaryPrimitives.ReadInt64BigEndian(bytes) : BinaryPrimitives.ReadInt64LittleEndian(bytes),
                _ => throw new InvalidFileFormatException($"{name} has integer size {size}; 1, 2, 4 or 8 are supported."),
            };
            if (v is < int.MinValue or > int.MaxValue)
            {
                throw new InvalidFileFormatException($"{name} value {v} at index {i} does not fit a label.");
            }
            values[i] = (int)v;
        }
        return values;
    }

    /// <summary>Header text fit for a one-line message: printable ASCII only, at most 120 characters.</summary>
    private static string Printable(string text)
    {
        var chars = text.Trim().Select(c => c is >= ' ' and < (char)127 ? c : '?').Take(121).ToArray();
        return chars.Length > 120 ? new string(chars, 0, 120) + "..." : new string(chars);
    }

    public static void ReadExactly(Stream stream, Span<byte> buffer, string name, string what)
    {
        try
        {
            stream.ReadExactly(buffer);
        }
        catch (EndOfStreamException)
        {
            throw new InvalidFileFormatException($"{name} ended early while reading {what}.");
        }
    }

    [GeneratedRegex(@"'descr'\s*:\s*'([^']*)'")]
    private static partial Regex DescrPattern();

    [GeneratedRegex(@"'fortran_order'\s*:\s*(True|False)")]
    private static partial Regex FortranPattern();

    [GeneratedRegex(@"'shape'\s*:\s*\(([^)]*)\)")]
    private static partial Regex ShapePattern();

    [GeneratedRegex(@"^[<>|=][iu][1248]$")]
    private static partial Regex DescrFormat();
}
