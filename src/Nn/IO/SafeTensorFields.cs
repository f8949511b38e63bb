using System.Globalization;
using IlgpuOct.Kernels;

namespace IlgpuOct.Nn.IO;

/// <summary>
/// Checked access to the metadata and tensors of a <see cref="SafeTensorFile"/> read as one of the
/// project's formats (checkpoint, detector, Gaussian mixture, adversarial set): every value is
/// parsed with its range, every tensor with its type and shape, and any problem is an
/// <see cref="InvalidFileFormatException"/> that names the file, the format and the field.
/// </summary>
public sealed class SafeTensorFields(SafeTensorFile file, string format, string keyPrefix = "")
{
    public SafeTensorFile File { get; } = file ?? throw new ArgumentNullException(nameof(file));

    public string Format { get; } = format;

    /// <summary>The same file viewed under a key prefix (e.g. "class0." in a detector).</summary>
    public SafeTensorFields Under(string prefix) => new(File, Format, keyPrefix + prefix);

    public InvalidFileFormatException Error(string field, string problem, Exception? inner = null) =>
        new(File.Source, Format, field, problem, inner);

    public bool Has(string key) => File.Metadata.ContainsKey(keyPrefix + key);

    public string Text(string key) =>
        File.Metadata.TryGetValue(keyPrefix + key, out var value) ? value : throw Error(MetaField(key), "it is missing");

    /// <summary>A required metadata value equal to <paramref name="expected"/>.</summary>
    public void Expect(string key, string expected)
    {
        string value = Text(key);
        if (value != expected)
        {
            throw Error(MetaField(key), $"it is '{Shorten(value)}', expected '{expected}'");
        }
    }

    public int Int(string key, int min, int max) => (int)Long(key, min, max);

    public long Long(string key, long min, long max)
    {
        string text = Text(key);
        if (!long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long value) || value < min || value > max)
        {
            throw Error(MetaField(key), $"it is '{Shorten(text)}', expected an integer in {min}..{max}");
        }
        return value;
    }

    /// <summary>An optional integer: <paramref name="fallback"/> when absent, else checked like <see cref="Long"/>.</summary>
    public long OptionalLong(string key, long min, long max, long fallback) => Has(key) ? Long(key, min, max) : fallback;

    /// <summary>A finite number in [min, max]; infinities only where <paramref name="allowInfinite"/>.</summary>
    public double Double(string key, double min = double.MinValue, double max = double.MaxValue, bool allowInfinite = false)
    {
        string text = Text(key);
        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double value)
            || double.IsNaN(value) || (!allowInfinite && double.IsInfinity(value)) || (double.IsFinite(value) && (value < min || value > max)))
        {
            throw Error(MetaField(key), $"it is '{Shorten(text)}', expected a {(allowInfinite ? "number (or infinity)" : "finite number")} in [{min.ToString("R", CultureInfo.InvariantCulture)}, {max.ToString("R", CultureInfo.InvariantCulture)}]");
        }
        return value;
    }

    public bool Bool(string key) => Text(key) switch
    {
        "true" => true,
        "false" => false,
        var other => throw Error(MetaField(key), $"it is '{Shorten(other)}', expected true or false"),
    };

    public TEnum Enum<TEnum>(string key)
        where TEnum : struct, System.Enum
    {
        string text = Text(key);
        return System.Enum.TryParse<TEnum>(text, ignoreCase: false, out var value) && System.Enum.IsDefined(value) && !int.TryParse(text, out _)
            ? value
            : throw Error(MetaField(key), $"it is '{Shorten(text)}', expected one of {string.Join(", ", System.Enum.GetNames<TEnum>())}");
    }

    public bool HasTensor(string name) => File.Contains(keyPrefix + name);

    /// <summary>A tensor of exactly <paramref name="shape"/>; <paramref name="floating"/> asks for F32/F64, else an integer type (I32/I64, or U8).</summary>
    public SafeTensor Tensor(string name, bool floating, params int[] shape)
    {
        string key = keyPrefix + name;
        if (!File.Contains(key))
        {
            throw Error($"tensor '{key}'", $"it is missing; expected shape [{string.Join(", ", shape)}]");
        }
        var tensor = File[key];
        if (!tensor.Shape.AsSpan().SequenceEqual(shape))
        {
            throw Error($"tensor '{key}' shape", $"it is [{string.Join(", ", tensor.Shape)}], expected [{string.Join(", ", shape)}]");
        }
        bool isFloating = tensor.DType is SafeTensorDType.F32 or SafeTensorDType.F64;
        if (isFloating != floating)
        {
            throw Error($"tensor '{key}' dtype", $"it is {tensor.DType}, expected {(floating ? "F32 or F64" : "an integer type")}");
        }
        return tensor;
    }

    /// <summary>Floating-point values of a tensor of that shape; with <paramref name="finite"/> every value must be finite.</summary>
    public double[] Doubles(string name, bool finite, params int[] shape)
    {
        double[] values = Tensor(name, floating: true, shape).ToDouble();
        if (finite)
        {
            int bad = Array.FindIndex(values, v => !double.IsFinite(v));
            if (bad >= 0)
            {
                throw Error($"tensor '{keyPrefix + name}'", $"element {bad} is {values[bad]}, expected a finite number");
            }
        }
        return values;
    }

    /// <summary>Integer values of a tensor of that shape, each in [min, max].</summary>
    public int[] Ints(string name, int min, int max, params int[] shape)
    {
        var tensor = Tensor(name, floating: false, shape);
        long[] values = tensor.DType == SafeTensorDType.U8 ? Array.ConvertAll(tensor.ToBytes(), b => (long)b) : tensor.ToInt64();
        var result = new int[values.Length];
        for (int i = 0; i < values.Length; i++)
        {
            if (values[i] < min || values[i] > max)
            {
                throw Error($"tensor '{keyPrefix + name}'", $"element {i} is {values[i]}, expected an integer in {min}..{max}");
            }
            result[i] = (int)values[i];
        }
        return result;
    }

    /// <summary>Checked product of sizes: a clear error when it would not fit <paramref name="max"/>.</summary>
    public int Product(string what, long max, params int[] sizes)
    {
        long product = 1;
        foreach (int size in sizes)
        {
            if (size < 0 || (size > 0 && product > max / size))
            {
                throw Error(what, $"[{string.Join(" x ", sizes)}] holds more than {max} values");
            }
            product *= size;
        }
        return (int)product;
    }

    private string MetaField(string key) => $"__metadata__ '{keyPrefix + key}'";

    private static string Shorten(string text) => text.Length <= 40 ? text : text[..40] + "...";
}
