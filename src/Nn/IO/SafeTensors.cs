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
        _ => throw new InvalidDataException($"Tensor '{Name}' is {DType}; read it with ToInt64/ToInt32/ToBytes."),
    };

    public double[] ToDouble() => DType switch
    {
        SafeTensorDType.F64 => MemoryMarshal.Cast<byte, double>(Data).ToArray(),
        SafeTensorDType.F32 => Array.ConvertAll(MemoryMarshal.Cast<byte, float>(Data).ToArray(), f => (double)f),
        SafeTensorDType.I64 => Array.ConvertAll(MemoryMarshal.Cast<byte, long>(Data).ToArray(), l => (double)l),
        _ => throw new InvalidDataException($"Tensor '{Name}' is {DType}, not a floating-point type."),
    };

    public long[] ToInt64() => DType switch
    {
        SafeTensorDType.I64 => MemoryMarshal.Cast<byte, long>(Data).ToArray(),
        SafeTensorDType.I32 => Array.ConvertAll(MemoryMarshal.Cast<byte, int>(Data).ToArray(), i => (long)i),
        _ => throw new InvalidDataException($"Tensor '{Name}' is {DType}, not an integer type."),
    };

    public int[] ToInt32() => Array.ConvertAll(ToInt64(), l => checked((int)l));

    public byte[] ToBytes() => DType == SafeTensorDType.U8 ? (byte[])Data.Clone() : throw new InvalidDataException($"Tensor '{Name}' is {DType}, not U8.");

    /// <summary>A scalar (shape [] or [1]) as double.</summary>
    public double Scalar() => ElementCount == 1 ? ToDouble()[0] : throw new InvalidDataException($"Tensor '{Name}' has shape [{string.Join(", ", Shape)}], not a scalar.");

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
        : throw new KeyNotFoundException($"No tensor '{name}' in the safetensors file (it has {_tensors.Count}: {string.Join(", ", _tensors.Keys.Take(8))}{(_tensors.Count > 8 ? ", ..." : "")}).");

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

    public static SafeTensorFile Read(string path)
    {
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"Safetensors file '{path}' does not exist.", path);
        }
        byte[] bytes = File.ReadAllBytes(path);
        try
        {
            return Parse(bytes);
        }
        catch (Exception e) when (e is InvalidDataException or JsonException or ArgumentException or OverflowException or InvalidOperationException)
        {
            throw new InvalidDataException($"'{path}' is not a valid safetensors file: {e.Message}", e);
        }
    }

    public static SafeTensorFile Parse(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length < 8)
        {
            throw new InvalidDataException($"file of {bytes.Length} bytes is shorter than the 8-byte header length");
        }
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        if (headerLength > (ulong)(bytes.Length - 8))
        {
            throw new InvalidDataException($"header claims {headerLength} bytes but only {bytes.Length - 8} follow (truncated?)");
        }
        var header = JsonNode.Parse(bytes.Slice(8, (int)headerLength).ToArray())?.AsObject()
            ?? throw new InvalidDataException("header is not a JSON object");
        var data = bytes[(8 + (int)headerLength)..];
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        var file = new SafeTensorFile();
        foreach (var (key, node) in header)
        {
            if (node is null)
            {
                continue;
            }
            if (key == "__metadata__")
            {
                foreach (var (mk, mv) in node.AsObject())
                {
                    file.Metadata[mk] = mv?.GetValue<string>() ?? "";
                }
                continue;
            }
            var dtype = (node["dtype"]?.GetValue<string>()) switch
            {
                "F32" => SafeTensorDType.F32,
                "F64" => SafeTensorDType.F64,
                "I64" => SafeTensorDType.I64,
                "I32" => SafeTensorDType.I32,
                "U8" => SafeTensorDType.U8,
                var other => throw new InvalidDataException($"tensor '{key}' has unsupported dtype '{other}'"),
            };
            int[] shape = node["shape"]!.AsArray().Select(n => n!.GetValue<int>()).ToArray();
            var offsets = node["data_offsets"]!.AsArray();
            long begin = offsets[0]!.GetValue<long>();
            long end = offsets[1]!.GetValue<long>();
            long elements = shape.Aggregate(1L, (a, b) => a * b);
            if (begin < 0 || end < begin || end > data.Length || end - begin != elements * SizeOf(dtype))
            {
                throw new InvalidDataException($"tensor '{key}' has data offsets [{begin}, {end}) inconsistent with shape [{string.Join(", ", shape)}] {dtype} and {data.Length} data bytes");
            }
            file._tensors[key] = new SafeTensor(key, dtype, shape, data[(int)begin..(int)end].ToArray());
        }
        return file;
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
