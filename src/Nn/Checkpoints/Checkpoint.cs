using System.Globalization;
using IlgpuOct.Kernels;
using IlgpuOct.Nn.IO;

namespace IlgpuOct.Nn.Checkpoints;

/// <summary>Where a training run stood when a checkpoint was written.</summary>
public sealed record CheckpointInfo(
    ResNetConfig Config,
    int Epoch,
    long Step,
    int Seed,
    string DataChecksum,
    IReadOnlyDictionary<string, string> Metadata);

/// <summary>
/// ResNet-18 checkpoints as safetensors: parameters and buffers under torchvision names
/// (<c>num_batches_tracked</c> as a 0-d I64), SGD momentum buffers as
/// <c>optimizer.momentum.&lt;name&gt;</c>, and <c>__metadata__</c> with width, in_channels,
/// num_classes, epoch, step, seed and the data checksum. Written atomically.
/// </summary>
public static class Checkpoint
{
    public const string Format = "ilgpuoct-resnet18";
    public const string MomentumPrefix = "optimizer.momentum.";
    public const string NumBatchesTrackedSuffix = ".num_batches_tracked";

    /// <summary>The model's state (and optimizer state) as a safetensors file in memory.</summary>
    public static SafeTensorFile ToFile(ResNet18 model, int epoch, long step, string dataChecksum, bool includeOptimizer = true,
        IReadOnlyDictionary<string, string>? extraMetadata = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        var file = new SafeTensorFile();
        if (extraMetadata is not null)
        {
            foreach (var (k, v) in extraMetadata)
            {
                file.Metadata[k] = v;
            }
        }
        file.Metadata["format"] = Format;
        file.Metadata["width"] = Invariant(model.Config.Width);
        file.Metadata["in_channels"] = Invariant(model.Config.InChannels);
        file.Metadata["num_classes"] = Invariant(model.Config.NumClasses);
        file.Metadata["epoch"] = Invariant(epoch);
        file.Metadata["step"] = Invariant(step);
        file.Metadata["seed"] = Invariant(model.Seed);
        file.Metadata["data_checksum"] = dataChecksum ?? "";
        foreach (var p in model.Parameters)
        {
            file.Add(p.Name, p.Value.Download(), p.Shape);
            if (includeOptimizer)
            {
                file.Add(MomentumPrefix + p.Name, p.Momentum.Download(), p.Shape);
            }
        }
        foreach (var bn in model.BatchNorms)
        {
            file.Add(bn.RunningMean.Name, bn.RunningMean.Value.Download(), bn.RunningMean.Value.Shape);
            file.Add(bn.RunningVar.Name, bn.RunningVar.Value.Download(), bn.RunningVar.Value.Shape);
            file.Add(bn.Name + NumBatchesTrackedSuffix, new long[] { bn.BatchesTracked });
        }
        return file;
    }

    /// <summary>Writes a checkpoint atomically (temporary file, then rename).</summary>
    public static void Save(string path, ResNet18 model, int epoch, long step, string dataChecksum, IReadOnlyDictionary<string, string>? extraMetadata = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ToFile(model, epoch, step, dataChecksum, true, extraMetadata).Write(path);
    }

    /// <summary>What a checkpoint's readers call it in their errors.</summary>
    public const string FormatName = "checkpoint";

    /// <summary>The widest ResNet-18 a checkpoint may declare (torchvision's is 64).</summary>
    public const int MaxWidth = 4096;

    /// <summary>The most classes a checkpoint may declare.</summary>
    public const int MaxClasses = 1 << 16;

    /// <summary>Reads the model size and run position from a checkpoint's metadata, each value checked against its range.</summary>
    public static CheckpointInfo ReadInfo(SafeTensorFile file)
    {
        ArgumentNullException.ThrowIfNull(file);
        var fields = new SafeTensorFields(file, FormatName);
        if (!fields.Has("width"))
        {
            throw fields.Error("__metadata__ 'width'", "it is missing: the file was not written by this project (for pretrained weights use LoadPretrained)");
        }
        var config = new ResNetConfig(
            fields.Int("width", 1, MaxWidth),
            fields.Int("in_channels", 1, 3),
            fields.Int("num_classes", 2, MaxClasses));
        if (config.InChannels == 2)
        {
            throw fields.Error("__metadata__ 'in_channels'", "it is 2, expected 1 (grayscale) or 3 (RGB)");
        }
        return new CheckpointInfo(
            config,
            (int)fields.OptionalLong("epoch", 0, int.MaxValue, 0),
            fields.OptionalLong("step", 0, long.MaxValue, 0),
            (int)fields.OptionalLong("seed", int.MinValue, int.MaxValue, 0),
            file.Metadata.GetValueOrDefault("data_checksum", ""),
            file.Metadata);
    }

    /// <summary>
    /// Copies parameters and buffers named <paramref name="prefix"/> + torchvision name into the
    /// model, and the momentum buffers when <paramref name="loadOptimizer"/> and present. Every
    /// missing name and wrong shape (and, when <paramref name="strict"/>, every unexpected
    /// model-state name) is reported together in one exception before anything is changed.
    /// </summary>
    public static void LoadState(ResNet18 model, SafeTensorFile file, string prefix = "", bool strict = true, bool loadOptimizer = true)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(file);
        var problems = new List<string>();
        var expected = ExpectedShapes(model);
        foreach (var (name, shape) in expected)
        {
            string key = prefix + name;
            bool optionalTracked = name.EndsWith(NumBatchesTrackedSuffix, StringComparison.Ordinal);
            if (!file.Contains(key))
            {
                if (!optionalTracked)
                {
                    problems.Add($"missing '{key}' {Tensor.ShapeText(shape)}");
                }
                continue;
            }
            var t = file[key];
            if (optionalTracked)
            {
                if (t.ElementCount != 1)
                {
                    problems.Add($"'{key}' has shape [{string.Join(", ", t.Shape)}], expected a scalar");
                }
                continue;
            }
            if (!t.Shape.AsSpan().SequenceEqual(shape))
            {
                problems.Add($"'{key}' has shape [{string.Join(", ", t.Shape)}], expected {Tensor.ShapeText(shape)}");
            }
            else if (t.DType is not (SafeTensorDType.F32 or SafeTensorDType.F64))
            {
                problems.Add($"'{key}' is {t.DType}, expected F32");
            }
        }
        if (strict)
        {
            foreach (string key in file.Keys)
            {
                if (!key.StartsWith(prefix, StringComparison.Ordinal) || key.StartsWith(prefix + MomentumPrefix, StringComparison.Ordinal))
                {
                    continue;
                }
                if (!expected.ContainsKey(key[prefix.Length..]))
                {
                    problems.Add($"unexpected '{key}'");
                }
            }
        }
        var momentum = new List<Parameter>();
        if (loadOptimizer)
        {
            foreach (var p in model.Parameters)
            {
                string key = prefix + MomentumPrefix + p.Name;
                if (!file.Contains(key))
                {
                    continue;
                }
                if (!file[key].Shape.AsSpan().SequenceEqual(p.Shape))
                {
                    problems.Add($"'{key}' has shape [{string.Join(", ", file[key].Shape)}], expected {Tensor.ShapeText(p.Shape)}");
                }
                momentum.Add(p);
            }
        }
        if (problems.Count > 0)
        {
            var c = model.Config;
            throw new InvalidFileFormatException(file.Source, FormatName, "tensors",
                $"the state does not fit a ResNet-18 of width {c.Width}, {c.InChannels} input channel(s) and {c.NumClasses} classes; {problems.Count} problem(s): {string.Join("; ", problems)}");
        }
        foreach (var p in model.Parameters)
        {
            p.Value.Upload(file[prefix + p.Name].ToFloat());
        }
        foreach (var bn in model.BatchNorms)
        {
            bn.RunningMean.Value.Upload(file[prefix + bn.RunningMean.Name].ToFloat());
            bn.RunningVar.Value.Upload(file[prefix + bn.RunningVar.Name].ToFloat());
            string tracked = prefix + bn.Name + NumBatchesTrackedSuffix;
            bn.BatchesTracked = file.Contains(tracked) ? file[tracked].ToInt64()[0] : 0;
        }
        if (loadOptimizer)
        {
            foreach (var p in model.Parameters)
            {
                if (momentum.Contains(p))
                {
                    p.Momentum.Upload(file[prefix + MomentumPrefix + p.Name].ToFloat());
                }
                else
                {
                    p.Momentum.Zero();
                }
            }
        }
    }

    /// <summary>Opens a checkpoint file: builds the model from its metadata and loads its state and optimizer state.</summary>
    public static (ResNet18 Model, CheckpointInfo Info) Open(Kernels.Accelerator accelerator, string path)
    {
        var file = SafeTensorFile.Read(path);
        var info = ReadInfo(file);
        // The metadata must agree with the stem and classifier before a model of that size is allocated.
        var fields = new SafeTensorFields(file, FormatName);
        var c = info.Config;
        fields.Tensor("conv1.weight", floating: true, c.Width, c.InChannels, 7, 7);
        fields.Tensor("fc.weight", floating: true, c.NumClasses, c.FeatureCount);
        var model = new ResNet18(accelerator, info.Config, info.Seed);
        try
        {
            LoadState(model, file);
        }
        catch
        {
            model.Dispose();
            throw;
        }
        return (model, info);
    }

    /// <summary>
    /// Loads an ImageNet-pretrained torchvision/timm ResNet-18 (width 64). A 3-channel conv1 is
    /// summed over its input channels for a 1-channel model; a classifier of another size keeps
    /// the model's own (seeded) initialisation. Returns notices describing each adaptation.
    /// </summary>
    public static IReadOnlyList<string> LoadPretrained(ResNet18 model, SafeTensorFile file)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(file);
        var notices = new List<string>();
        var adapted = new SafeTensorFile();
        string[] skip = ["fc.weight", "fc.bias"];
        foreach (string key in file.Keys)
        {
            var t = file[key];
            if (t.DType == SafeTensorDType.I64)
            {
                adapted.Add(key, t.ToInt64(), t.Shape);
                continue;
            }
            float[] values = t.ToFloat();
            int[] shape = t.Shape;
            if (key == "conv1.weight" && shape.Length == 4 && shape[1] == 3 && model.Config.InChannels == 1)
            {
                int k = shape[0];
                int rr = shape[2] * shape[3];
                var summed = new float[k * rr];
                for (int o = 0; o < k; o++)
                {
                    for (int c = 0; c < 3; c++)
                    {
                        for (int i = 0; i < rr; i++)
                        {
                            summed[o * rr + i] += values[(o * 3 + c) * rr + i];
                        }
                    }
                }
                values = summed;
                shape = [k, 1, shape[2], shape[3]];
                notices.Add("conv1.weight: the 3-channel pretrained filters were summed over their input channels for the 1-channel model.");
            }
            adapted.Add(key, values, shape);
        }
        var fcWeight = model.Classifier.Weight;
        bool fcFits = file.Contains("fc.weight") && file["fc.weight"].Shape.AsSpan().SequenceEqual(fcWeight.Shape)
            && file.Contains("fc.bias") && file["fc.bias"].Shape.AsSpan().SequenceEqual(model.Classifier.Bias.Shape);
        if (!fcFits)
        {
            var fcState = ToFile(model, 0, 0, "", includeOptimizer: false);
            foreach (string key in skip)
            {
                adapted.Add(key, fcState[key].ToFloat(), fcState[key].Shape);
            }
            string found = file.Contains("fc.weight") ? $"[{string.Join(", ", file["fc.weight"].Shape)}]" : "none";
            notices.Add($"fc: the pretrained classifier ({found}) does not fit {model.Config.NumClasses} classes; it was re-initialised from the model's seed.");
        }
        // Pretrained files carry no optimizer state; non-model keys (e.g. timm's extras) are errors too.
        LoadState(model, adapted, "", strict: true, loadOptimizer: true);
        return notices;
    }

    /// <summary>Torchvision names of every parameter and buffer, with shapes.</summary>
    public static Dictionary<string, int[]> ExpectedShapes(ResNet18 model)
    {
        var map = new Dictionary<string, int[]>(StringComparer.Ordinal);
        foreach (var p in model.Parameters)
        {
            map[p.Name] = p.Shape;
        }
        foreach (var bn in model.BatchNorms)
        {
            map[bn.RunningMean.Name] = bn.RunningMean.Value.Shape;
            map[bn.RunningVar.Name] = bn.RunningVar.Value.Shape;
            map[bn.Name + NumBatchesTrackedSuffix] = [];
        }
        return map;
    }

    private static string Invariant(long value) => value.ToString(CultureInfo.InvariantCulture);
}
