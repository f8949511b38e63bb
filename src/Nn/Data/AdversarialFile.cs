using IlgpuOct.Nn.IO;

namespace IlgpuOct.Nn.Data;

/// <summary>Adversarial images read back from `attack` or `evaluate --save-adv` output: images (N, C, H, W) and optional labels (N).</summary>
public sealed record AdversarialImages(float[] Images, int Count, int Channels, int Height, int Width, int[]? Labels);

/// <summary>
/// Reads an adversarial-image file ("adv" or "images" (N, C, H, W) float, optional "labels" (N)),
/// checking it against the model that will score it: every shape, size and value is validated and
/// any problem is an InvalidFileFormatException naming the file and the field.
/// </summary>
public static class AdversarialFile
{
    public const string FormatName = "adversarial-image file";

    /// <summary>The "format" metadata value every writer of this file sets.</summary>
    public const string FormatTag = "ilgpuoct.adversarial.v1";

    /// <summary>Smallest and largest image side accepted (the network's stem needs 8 pixels; 4096 is the data sets' limit).</summary>
    public const int MinSide = 8;
    public const int MaxSide = 4096;

    /// <summary>
    /// A new file holding "adv" (N, C, H, W) and "labels" (N): the part every writer shares (`attack`, `evaluate
    /// --save-adv`); callers add their own tensors and metadata before writing it.
    /// </summary>
    public static SafeTensorFile Create(float[] images, int[] shape, int[] labels, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(labels);
        var header = new Dictionary<string, string> { ["format"] = FormatTag };
        foreach (var (key, value) in metadata ?? new Dictionary<string, string>())
        {
            header[key] = value;
        }
        var file = new SafeTensorFile(header);
        file.Add("adv", images, shape);
        file.Add("labels", Array.ConvertAll(labels, v => (long)v), labels.Length);
        return file;
    }

    public static AdversarialImages Read(string path, int channels, int classes)
    {
        var fields = new SafeTensorFields(SafeTensorFile.Read(path), FormatName);
        string key = fields.HasTensor("adv") ? "adv" : fields.HasTensor("images") ? "images"
            : throw fields.Error("tensor 'adv'", "it is missing; expected adversarial images (N, C, H, W) written by `ilgpuoct attack` or `ilgpuoct evaluate --save-adv`");
        int[] shape = fields.File[key].Shape;
        if (shape.Length != 4 || shape[0] < 1 || shape[1] != channels || shape[2] < MinSide || shape[2] > MaxSide || shape[3] < MinSide || shape[3] > MaxSide)
        {
            throw fields.Error($"tensor '{key}' shape", $"it is [{string.Join(", ", shape)}], expected (N >= 1, {channels}, H, W) with H and W in {MinSide}..{MaxSide} for this model");
        }
        fields.Product($"tensor '{key}'", Array.MaxLength, shape);
        var images = Array.ConvertAll(fields.Doubles(key, finite: true, shape), v => (float)v);
        int bad = Array.FindIndex(images, v => !(v >= 0 && v <= 1));
        if (bad >= 0)
        {
            throw fields.Error($"tensor '{key}'", $"element {bad} is {images[bad]}, expected a pixel in [0, 1]");
        }
        int[]? labels = fields.HasTensor("labels") ? fields.Ints("labels", 0, classes - 1, shape[0]) : null;
        return new AdversarialImages(images, shape[0], shape[1], shape[2], shape[3], labels);
    }
}
