using System.Runtime.InteropServices;
using Google.Protobuf;
using IlgpuOct.Kernels;
using IlgpuOct.Nn.Onnx.Proto;

namespace IlgpuOct.Nn.Onnx;

/// <summary>Float tensors and node attributes of ONNX graphs.</summary>
public static class OnnxTensors
{
    /// <summary>A FLOAT initializer (little-endian raw_data or float_data).</summary>
    public static TensorProto FromFloat(string name, ReadOnlySpan<float> values, params int[] shape)
    {
        long count = shape.Aggregate(1L, (a, b) => a * b);
        if (count != values.Length)
        {
            throw new ArgumentException($"ONNX tensor '{name}': {values.Length} values do not fill shape {Tensor.ShapeText(shape)}.");
        }
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("ONNX raw_data is little-endian; this writer assumes a little-endian machine.");
        }
        var tensor = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Float };
        tensor.Dims.AddRange(shape.Select(d => (long)d));
        tensor.RawData = ByteString.CopyFrom(MemoryMarshal.AsBytes(values));
        return tensor;
    }

    /// <summary>The shape of an initializer, each dimension checked to fit an int.</summary>
    public static int[] Shape(TensorProto tensor, string source)
    {
        var shape = new int[tensor.Dims.Count];
        for (int i = 0; i < shape.Length; i++)
        {
            long d = tensor.Dims[i];
            if (d is < 0 or > int.MaxValue)
            {
                throw new InvalidFileFormatException(source, OnnxFile.FormatName, $"initializer '{tensor.Name}'", $"dimension {i} is {d}");
            }
            shape[i] = (int)d;
        }
        return shape;
    }

    /// <summary>The values of a FLOAT initializer, checked against its shape.</summary>
    public static float[] ToFloat(TensorProto tensor, string source)
    {
        string field = $"initializer '{tensor.Name}'";
        if (tensor.DataType != (int)TensorProto.Types.DataType.Float)
        {
            throw new InvalidFileFormatException(source, OnnxFile.FormatName, field, $"data_type is {tensor.DataType}, expected 1 (FLOAT)");
        }
        if (tensor.HasDataLocation && tensor.DataLocation != 0)
        {
            throw new InvalidFileFormatException(source, OnnxFile.FormatName, field, "its data is in an external file, which this reader does not follow; save the model with its weights inside");
        }
        long count = Shape(tensor, source).Aggregate(1L, (a, b) => a * b);
        float[] values;
        if (tensor.HasRawData)
        {
            if (tensor.RawData.Length != count * sizeof(float))
            {
                throw new InvalidFileFormatException(source, OnnxFile.FormatName, field, $"raw_data has {tensor.RawData.Length} bytes, expected {count * sizeof(float)} for shape [{string.Join(", ", tensor.Dims)}]");
            }
            values = MemoryMarshal.Cast<byte, float>(tensor.RawData.Span).ToArray();
        }
        else
        {
            if (tensor.FloatData.Count != count)
            {
                throw new InvalidFileFormatException(source, OnnxFile.FormatName, field, $"float_data has {tensor.FloatData.Count} values, expected {count} for shape [{string.Join(", ", tensor.Dims)}]");
            }
            values = [.. tensor.FloatData];
        }
        return values;
    }

    public static AttributeProto Ints(string name, params long[] values)
    {
        var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        a.Ints.AddRange(values);
        return a;
    }

    public static AttributeProto Int(string name, long value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

    public static AttributeProto Float(string name, float value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = value };

    public static AttributeProto? Find(NodeProto node, string name) => node.Attribute.FirstOrDefault(a => a.Name == name);

    public static long[] IntsOr(NodeProto node, string name, long[] fallback) => Find(node, name) is { } a ? [.. a.Ints] : fallback;

    public static long IntOr(NodeProto node, string name, long fallback) => Find(node, name) is { HasI: true } a ? a.I : fallback;

    public static float FloatOr(NodeProto node, string name, float fallback) => Find(node, name) is { HasF: true } a ? a.F : fallback;

    public static string StringOr(NodeProto node, string name, string fallback) => Find(node, name) is { HasS: true } a ? a.S.ToStringUtf8() : fallback;
}
