using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using IlgpuOct.Kernels;

namespace IlgpuOct.Nn.IO;

/// <summary>Element types of the safetensors format that this project reads and writes.</summary>
public enum SafeTensorDType
{
    F32,
    F64,
    I64,
    I32,
    U8,
}

/// <summary>One tensor of a safetensors file: type, shape and raw little-endian bytes.</summary>
public sealed class SafeTensor
{
    internal SafeTensor(string name, SafeTensorDType dtype, int[] shape, byte[] data)
    {
        Name = name;
        DType = dtype;
        Shape = shape;
        Data = data;
    }

    public string Name { get; }

    public SafeTensorDType DType { get; }

    public int[] Shape { get; }

    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);

    internal byte[] Data { get; }

    public float[] ToFloat() => DType switch
    {
        SafeTensorDType.F32 => MemoryMarshal.Cast<byte, float>(Data).ToArray(),
        SafeTensorDType.F64 => Array.ConvertAll(MemoryMarshal.Cast<byte, double>(Data).ToArray(), d => (float)d),
        _ => throw WrongType("a floating-point type"),
    };

    public double[] ToDouble() => DType switch
    {
        SafeTensorDType.F64 => MemoryMarshal.Cast<byte, double>(Data).ToArray(),
        SafeTensorDType.F32 => Array.ConvertAll(MemoryMarshal.Cast<byte, float>(Data).ToArray(), f => (double)f),
        SafeTensorDType.I64 => Array.ConvertAll(MemoryMarshal.Cast<byte, long>(Data).ToArray(), l => (double)l),
        _ => throw WrongType("a floating-point type"),
    };

    public long[] ToInt64() => DType switch
    {
        SafeTensorDType.I64 => MemoryMarshal.Cast<byte, long>(Data).ToArray(),
        SafeTensorDType.I32 => Array.ConvertAll(MemoryMarshal.Cast<byte, int>(Data).ToArray(), i => (long)i),
        _ => throw WrongType("an integer type"),
    };

    public int[] ToInt32() => Array.ConvertAll(ToInt64(), l => l is >= int.MinValue and <= int.MaxValue
        ? (int)l
        : throw new InvalidFileFormatException(Source, SafeTensorFile.FormatName, $"tensor '{Name}'", $"value {l} does not fit a 32-bit integer"));

    public byte[] ToBytes() => DType == SafeTensorDType.U8 ? (byte[])Data.Clone() : throw WrongType("U8");

    /// <summary>A scalar (shape [] or [1]) as double.</summary>
    public double Scalar() => ElementCount == 1 ? ToDouble()[0]
        : throw new InvalidFileFormatException(Source, SafeTensorFile.FormatName, $"tensor '{Name}' shape", $"it is [{string.Join(", ", Shape)}], expected a scalar");

    /// <summary>The file the tensor was read from (readers name it in their errors).</summary>
    public string Source { get; internal set; } = "safetensors data";

    private InvalidFileFormatException WrongType(string expected) =>
        new(Source, SafeTensorFile.FormatName, $"tensor '{Name}' dtype", $"it is {DType}, expected {expected}");

    public override string ToString() => $"{Name}: {DType}[{string.Join(", ", Shape)}]";
}

/// <summary>
/// The safetensors format: 8-byte little-endian header length, a JSON header mapping names to
/// dtype/shape/data_offsets plus optional <c>__metadata__</c> (string to string), then the data.
/// </summary>
public sealed class SafeTensorFile
{
    private readonly Dictionary<string, SafeTensor> _tensors;

    public SafeTensorFile(IReadOnlyDictionary<string, string>? metadata = null)
    {
        _tensors = new Dictionary<string, SafeTensor>(StringComparer.Ordinal);
        Metadata = new Dictionary<string, string>(metadata ?? new Dictionary<string, string>(), StringComparer.Ordinal);
    }

    public Dictionary<string, string> Metadata { get; }

    public IEnumerable<string> Keys => _tensors.Keys;

    public int Count => _tensors.Count;

    public bool Contains(string name) => _tensors.ContainsKey(name);

    public SafeTensor this[string name] => _tensors.TryGetValue(name, out var t)
        ? t
        : throw new InvalidFileFormatException(Source, FormatName, $"tensor '{name}'",
            $"it is missing (the file has {_tensors.Count}: {string.Join(", ", _tensors.Keys.Take(8))}{(_tensors.Count > 8 ? ", ..." : "")})");

    public void Add(string name, ReadOnlySpan<float> data, params int[] shape) => AddRaw(name, SafeTensorDType.F32, shape, MemoryMarshal.AsBytes(data), data.Length);

    public void Add(string name, ReadOnlySpan<double> data, params int[] shape) => AddRaw(name, SafeTensorDType.F64, shape, MemoryMarshal.AsBytes(data), data.Length);

    public void Add(string name, ReadOnlySpan<long> data, params int[] shape) => AddRaw(name, SafeTensorDType.I64, shape, MemoryMarshal.AsBytes(data), data.Length);

    public void Add(string name, ReadOnlySpan<int> data, params int[] shape) => AddRaw(name, SafeTensorDType.I32, shape, MemoryMarshal.AsBytes(data), data.Length);

    public void Add(string name, ReadOnlySpan<byte> data, params int[] shape) => AddRaw(name, SafeTensorDType.U8, shape, data, data.Length);

    private void AddRaw(string name, SafeTensorDType dtype, int[] shape, ReadOnlySpan<byte> bytes, int elements)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (name == "__metadata__")
        {
            throw new ArgumentException("'__metadata__' is reserved.", nameof(name));
        }
        long expected = shape.Aggregate(1L, (a, b) => a * b);
        if (expected != elements)
        {
            throw new ArgumentException($"Tensor '{name}': shape [{string.Join(", ", shape)}] holds {expected} elements but {elements} were given.");
        }
        _tensors[name] = new SafeTensor(name, dtype, (int[])shape.Clone(), bytes.ToArray());
    }

    /// <summary>What <see cref="Read"/> calls the file in its messages.</summary>
    public const string FormatName = "safetensors file";

    /// <summary>The largest JSON header accepted (the format's own reference reader uses 100 MB).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    /// <summary>The file this was read from (or "safetensors data" for bytes parsed in memory); readers name it in their errors.</summary>
    public string Source { get; private set; } = "safetensors data";

    /// <summary>
    /// Reads a file tensor by tensor (so files over 2 GB work); every header field, shape and offset
    /// is checked before use and any problem is an <see cref="InvalidFileFormatException"/> naming the file.
    /// </summary>
    public static SafeTensorFile Read(string path)
    {
        using var stream = InputFile.OpenRead(path, FormatName);
        long length = stream.Length;
        Span<byte> prefix = stackalloc byte[8];
        if (length < 8)
        {
            throw Bad(path, "header length", $"the file is {length} bytes, shorter than the 8-byte header length");
        }
        stream.ReadExactly(prefix);
        long headerLength = CheckHeaderLength(path, BinaryPrimitives.ReadUInt64LittleEndian(prefix), length - 8);
        var header = new byte[headerLength];
        stream.ReadExactly(header);
        long dataStart = 8 + headerLength;
        var file = new SafeTensorFile { Source = path };
        foreach (var entry in ParseHeader(path, header, length - dataStart, file.Metadata))
        {
            var data = new byte[entry.End - entry.Begin];
            stream.Position = dataStart + entry.Begin;
            stream.ReadExactly(data);
            file._tensors[entry.Name] = new SafeTensor(entry.Name, entry.DType, entry.Shape, data) { Source = path };
        }
        return file;
    }

    /// <summary>Parses a whole file held in memory; <paramref name="source"/> names it in errors.</summary>
    public static SafeTensorFile Parse(ReadOnlySpan<byte> bytes, string source = "safetensors data")
    {
        if (bytes.Length < 8)
        {
            throw Bad(source, "header length", $"the data is {bytes.Length} bytes, shorter than the 8-byte header length");
        }
        long headerLength = CheckHeaderLength(source, BinaryPrimitives.ReadUInt64LittleEndian(bytes), bytes.Length - 8);
        var data = bytes[(8 + (int)headerLength)..];
        var file = new SafeTensorFile { Source = source };
        foreach (var entry in ParseHeader(source, bytes.Slice(8, (int)headerLength), data.Length, file.Metadata))
        {
            file._tensors[entry.Name] = new SafeTensor(entry.Name, entry.DType, entry.Shape, data[(int)entry.Begin..(int)entry.End].ToArray()) { Source = source };
        }
        return file;
    }

    private sealed record HeaderEntry(string Name, SafeTensorDType DType, int[] Shape, long Begin, long End);

    private static InvalidFileFormatException Bad(string source, string field, string problem, Exception? inner = null) =>
        new(source, FormatName, field, problem, inner);

    private static long CheckHeaderLength(string source, ulong headerLength, long available)
    {
        if (headerLength < 2 || headerLength > MaxHeaderBytes || headerLength > (ulong)available)
        {
            throw Bad(source, "header length", $"it is {headerLength}, expected 2..{Math.Min(MaxHeaderBytes, available)} (the bytes that follow it; truncated or not safetensors?)");
        }
        return (long)headerLength;
    }

    /// <summary>Checks every entry of the JSON header against <paramref name="dataLength"/> and fills <paramref name="metadata"/>.</summary>
    private static List<HeaderEntry> ParseHeader(string source, ReadOnlySpan<byte> json, long dataLength, Dictionary<string, string> metadata)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json.ToArray(), new JsonDocumentOptions { MaxDepth = 8 });
        }
        catch (JsonException e)
        {
            throw Bad(source, "header", $"it is not valid JSON ({e.Message})", e);
        }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw Bad(source, "header", $"it is a JSON {root.ValueKind}, expected an object");
            }
            var entries = new List<HeaderEntry>();
            try
            {
                foreach (var property in root.EnumerateObject())
                {
                    if (property.Name == "__metadata__")
                    {
                        ReadMetadata(source, property.Value, metadata);
                        continue;
                    }
                    entries.Add(ReadEntry(source, property.Name, property.Value, dataLength));
                }
            }
            catch (InvalidOperationException e)
            {
                // System.Text.Json validates UTF-8 only when a name or string is read.
                throw Bad(source, "header", $"it holds text that is not valid UTF-8 ({e.Message})", e);
            }
            return entries;
        }
    }

    private static void ReadMetadata(string source, JsonElement node, Dictionary<string, string> metadata)
    {
        if (node.ValueKind == JsonValueKind.Null)
        {
            return;
        }
        if (node.ValueKind != JsonValueKind.Object)
        {
            throw Bad(source, "__metadata__", $"it is a JSON {node.ValueKind}, expected an object of strings");
        }
        foreach (var item in node.EnumerateObject())
        {
            metadata[item.Name] = item.Value.ValueKind == JsonValueKind.String
                ? item.Value.GetString()!
                : throw Bad(source, $"__metadata__ '{item.Name}'", $"it is a JSON {item.Value.ValueKind}, expected a string");
        }
    }

    private static HeaderEntry ReadEntry(string source, string name, JsonElement node, long dataLength)
    {
        string field = $"tensor '{name}'";
        if (name.Length == 0)
        {
            throw Bad(source, "tensor name", "it is empty");
        }
        if (node.ValueKind != JsonValueKind.Object)
        {
            throw Bad(source, field, $"it is a JSON {node.ValueKind}, expected an object with dtype, shape and data_offsets");
        }
        string? dtypeText = node.TryGetProperty("dtype", out var d) && d.ValueKind == JsonValueKind.String ? d.GetString() : null;
        var dtype = dtypeText switch
        {
            "F32" => SafeTensorDType.F32,
            "F64" => SafeTensorDType.F64,
            "I64" => SafeTensorDType.I64,
            "I32" => SafeTensorDType.I32,
            "U8" => SafeTensorDType.U8,
            _ => throw Bad(source, field + " dtype", $"it is {(dtypeText is null ? "missing" : $"'{dtypeText}'")}, expected F32, F64, I64, I32 or U8"),
        };
        if (!node.TryGetProperty("shape", out var shapeNode) || shapeNode.ValueKind != JsonValueKind.Array || shapeNode.GetArrayLength() > 8)
        {
            throw Bad(source, field + " shape", "it is missing or not an array of at most 8 dimensions");
        }
        var shape = new int[shapeNode.GetArrayLength()];
        long elements = 1;
        int i = 0;
        foreach (var dim in shapeNode.EnumerateArray())
        {
            if (dim.ValueKind != JsonValueKind.Number || !dim.TryGetInt32(out int size) || size < 0)
            {
                throw Bad(source, field + " shape", $"dimension {i} is {dim.GetRawText()}, expected an integer in 0..{int.MaxValue}");
            }
            shape[i++] = size;
            elements = elements > long.MaxValue / Math.Max(size, 1) ? long.MaxValue : elements * size;
        }
        if (!node.TryGetProperty("data_offsets", out var offsets) || offsets.ValueKind != JsonValueKind.Array || offsets.GetArrayLength() != 2
            || !offsets[0].TryGetInt64(out long begin) || !offsets[1].TryGetInt64(out long end))
        {
            throw Bad(source, field + " data_offsets", "it is missing or not two integers [begin, end]");
        }
        long size8 = SizeOf(dtype);
        long expectedBytes = elements > Array.MaxLength / size8 ? long.MaxValue : elements * size8;
        if (expectedBytes > Array.MaxLength)
        {
            throw Bad(source, field + " shape", $"[{string.Join(", ", shape)}] {dtype} needs more than {Array.MaxLength} bytes, the most one tensor may hold");
        }
        if (begin < 0 || end < begin || end > dataLength || end - begin != expectedBytes)
        {
            throw Bad(source, field + " data_offsets", $"[{begin}, {end}) do not fit shape [{string.Join(", ", shape)}] {dtype} ({expectedBytes} bytes) within the {dataLength} data bytes");
        }
        return new HeaderEntry(name, dtype, shape, begin, end);
    }

    /// <summary>Writes the file atomically (temporary file, then rename), tensors in name order.</summary>
    public void Write(string path) => AtomicFile.Write(path, WriteTo);

    public void WriteTo(Stream stream)
    {
        var header = new JsonObject();
        if (Metadata.Count > 0)
        {
            var meta = new JsonObject();
            foreach (var (k, v) in Metadata.OrderBy(p => p.Key, StringComparer.Ordinal))
            {
                meta[k] = v;
            }
            header["__metadata__"] = meta;
        }
        long offset = 0;
        var ordered = _tensors.Values.OrderBy(t => t.Name, StringComparer.Ordinal).ToArray();
        foreach (var t in ordered)
        {
            header[t.Name] = new JsonObject
            {
                ["dtype"] = t.DType.ToString(),
                ["shape"] = new JsonArray(t.Shape.Select(s => (JsonNode)s).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + t.Data.Length),
            };
            offset += t.Data.Length;
        }
        byte[] json = JsonSerializer.SerializeToUtf8Bytes(header);
        int padding = (8 - json.Length % 8) % 8; // the format pads the header with spaces to 8-byte alignment
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)(json.Length + padding));
        stream.Write(length);
        stream.Write(json);
        for (int i = 0; i < padding; i++)
        {
            stream.WriteByte((byte)' ');
        }
        foreach (var t in ordered)
        {
            stream.Write(t.Data);
        }
    }

    private static int SizeOf(SafeTensorDType dtype) => dtype switch
    {
        SafeTensorDType.F32 or SafeTensorDType.I32 => 4,
        SafeTensorDType.F64 or SafeTensorDType.I64 => 8,
        _ => 1,
    };
}
