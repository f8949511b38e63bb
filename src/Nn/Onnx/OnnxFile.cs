using Google.Protobuf;
using IlgpuOct.Kernels;
using IlgpuOct.Nn.Onnx.Proto;

namespace IlgpuOct.Nn.Onnx;

/// <summary>
/// Reads and writes ONNX models (a protobuf <see cref="ModelProto"/>). Bytes that are not a model
/// raise <see cref="InvalidFileFormatException"/> naming the file; writes are atomic.
/// </summary>
public static class OnnxFile
{
    /// <summary>What the readers call an ONNX file in their errors.</summary>
    public const string FormatName = "ONNX model";

    /// <summary>Protobuf messages cannot exceed 2 GiB; ONNX keeps larger weights in external files, which this reader refuses.</summary>
    public const long MaxBytes = int.MaxValue;

    public static ModelProto Read(string path) => Parse(InputFile.ReadAllBytes(path, FormatName, MaxBytes), path);

    /// <summary>Parses a model and checks the fields every reader relies on (IR version, operator set, graph).</summary>
    public static ModelProto Parse(byte[] bytes, string source = "ONNX data")
    {
        ArgumentNullException.ThrowIfNull(bytes);
        ModelProto model;
        try
        {
            model = ModelProto.Parser.ParseFrom(bytes);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new InvalidFileFormatException(source, FormatName, "protobuf", FirstLine(e.Message) + " (truncated or not an ONNX file)", e);
        }
        if (!model.HasIrVersion || model.IrVersion < 3)
        {
            throw new InvalidFileFormatException(source, FormatName, "ir_version", model.HasIrVersion ? $"it is {model.IrVersion}, expected 3 or later" : "it is missing (truncated or not an ONNX file)");
        }
        if (model.OpsetImport.Count == 0)
        {
            throw new InvalidFileFormatException(source, FormatName, "opset_import", "it is empty (truncated or not an ONNX file)");
        }
        if (model.Graph is null || model.Graph.Node.Count == 0)
        {
            throw new InvalidFileFormatException(source, FormatName, "graph", "it is missing or has no nodes (truncated or not an ONNX file)");
        }
        return model;
    }

    public static byte[] ToBytes(ModelProto model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return model.ToByteArray();
    }

    /// <summary>Writes atomically (temporary file, then rename).</summary>
    public static void Write(string path, ModelProto model)
    {
        byte[] bytes = ToBytes(model);
        AtomicFile.Write(path, stream => stream.Write(bytes));
    }

    /// <summary>The version of the default ("" or "ai.onnx") operator set the model imports, 0 when none.</summary>
    public static long DefaultOpset(ModelProto model) =>
        model.OpsetImport.Where(o => o.Domain is "" or "ai.onnx").Select(o => o.Version).DefaultIfEmpty(0).Max();

    private static string FirstLine(string text)
    {
        int newline = text.IndexOfAny(['\r', '\n']);
        return (newline < 0 ? text : text[..newline]).TrimEnd('.');
    }
}
