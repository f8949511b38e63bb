using IlgpuOct.Kernels;
using IlgpuOct.Nn.Checkpoints;
using IlgpuOct.Nn.IO;
using IlgpuOct.Nn.Onnx.Proto;

namespace IlgpuOct.Nn.Onnx;

/// <summary>One residual block found in an ONNX graph: its torchvision name and the tensors around it.</summary>
public sealed record OnnxResNetBlock(string Name, string Input, string Output, bool Kept);

/// <summary>
/// The weights of an ONNX ResNet-18 under torchvision names (parameters and running statistics),
/// with the blocks found and the pooling node that reads the last one.
/// </summary>
public sealed record OnnxResNetWeights(
    SafeTensorFile State,
    int Width,
    int InChannels,
    IReadOnlyList<OnnxResNetBlock> Blocks,
    NodeProto Pool,
    IReadOnlyList<string> Notices);

/// <summary>
/// The pixel transform an ONNX model expects in front of it: model input channel c is
/// <c>PixelScale * x[SourceChannel[c]] - Mean[c]</c> for pixels x in [0, 1] (the channel order of
/// the image, RGB or gray, indexed by SourceChannel).
/// </summary>
public sealed record PixelPreprocessing(int[] SourceChannel, float[] Mean, float PixelScale);

/// <summary>
/// Maps an ONNX ResNet-18 (torchvision's topology, as exported by CNTK, PyTorch or this project)
/// onto this project's parameter names by walking the graph from its input: stem conv-bn-relu-maxpool,
/// then residual blocks (a block that starts with a 1x1 downsample convolution opens a new stage),
/// then the global pooling. Node and tensor names do not matter; shapes, strides and pads are
/// checked. Stages with more than two blocks (the CNTK ResNet-18 has three in layer4) keep the
/// first two: the extra blocks are dropped and named in a notice.
/// </summary>
public static class ResNetOnnxImport
{
    /// <summary>The width of every ImageNet ResNet-18 (torchvision's conv1 has 64 filters).</summary>
    public const int PretrainedWidth = 64;

    /// <summary>
    /// The ML.NET image pipeline that feeds the packaged model gives pixels as 0..255 floats, while
    /// this project's images are x / 255 in [0, 1].
    /// </summary>
    public const float PackagePixelScale = 255f;

    public static OnnxResNetWeights Map(ModelProto model, string source)
    {
        ArgumentNullException.ThrowIfNull(model);
        return new Walker(model.Graph, source).Walk();
    }

    /// <summary>
    /// Reads a preprocessing graph of the form Split(channels) -> Concat(a permutation) -> Sub(mean
    /// image) (ML.NET's ResNetPreprocess.onnx: RGB to BGR, minus the ImageNet mean image) and
    /// returns the permutation and each channel's mean over the image.
    /// </summary>
    public static PixelPreprocessing ReadPreprocessing(ModelProto model, string source, float pixelScale = PackagePixelScale)
    {
        ArgumentNullException.ThrowIfNull(model);
        var g = model.Graph;
        InvalidFileFormatException Bad(string problem) => new(source, "ONNX preprocessing model", "graph", problem + "; expected Split -> Concat -> Sub(mean image) as in ML.NET's ResNetPreprocess.onnx");
        if (g.Node.Count != 3 || g.Node[0].OpType != "Split" || g.Node[1].OpType != "Concat" || g.Node[2].OpType != "Sub")
        {
            throw Bad($"its nodes are {string.Join(" -> ", g.Node.Select(n => n.OpType))}");
        }
        var (split, concat, sub) = (g.Node[0], g.Node[1], g.Node[2]);
        if (OnnxTensors.IntOr(split, "axis", 0) != 1 || OnnxTensors.IntOr(concat, "axis", 0) != 1 || concat.Input.Count != split.Output.Count || sub.Input[0] != concat.Output[0])
        {
            throw Bad("the split, concatenation and subtraction are not chained along the channel axis");
        }
        int channels = split.Output.Count;
        var order = new int[channels];
        for (int c = 0; c < channels; c++)
        {
            order[c] = split.Output.IndexOf(concat.Input[c]);
            if (order[c] < 0)
            {
                throw Bad($"the concatenation's input '{concat.Input[c]}' is not an output of the split");
            }
        }
        var meanImage = g.Initializer.FirstOrDefault(t => t.Name == sub.Input[1]) ?? throw Bad($"the subtrahend '{sub.Input[1]}' is not an initializer");
        int[] shape = OnnxTensors.Shape(meanImage, source);
        if (shape.Length != 4 || shape[0] != 1 || shape[1] != channels)
        {
            throw Bad($"the mean image has shape {Tensor.ShapeText(shape)}, expected (1, {channels}, H, W)");
        }
        float[] values = OnnxTensors.ToFloat(meanImage, source);
        int plane = shape[2] * shape[3];
        var mean = new float[channels];
        for (int c = 0; c < channels; c++)
        {
            double sum = 0;
            for (int i = 0; i < plane; i++)
            {
                sum += values[c * plane + i];
            }
            mean[c] = (float)(sum / plane);
        }
        return new PixelPreprocessing(order, mean, pixelScale);
    }

    /// <summary>
    /// Folds a pixel transform into the stem so that the state takes this project's pixels (x in
    /// [0, 1], channels in image order): conv1's filter for image channel s becomes PixelScale times
    /// the sum of the filters of the model channels read from s, and the constant -Mean[c] * (sum of
    /// that channel's filter) that each output channel k then misses is moved into bn1's running mean
    /// (bn1.running_mean[k] += sum_c Mean[c] * sum(W[k, c])). Exact wherever the 7x7 window lies inside
    /// the image; within 3 pixels of the border the original padded with the mean pixel, this pads
    /// with 0. Uses the per-channel mean of the mean image, which is nearly constant across the image.
    /// </summary>
    public static void FoldPreprocessing(SafeTensorFile state, PixelPreprocessing preprocessing)
    {
        ArgumentNullException.ThrowIfNull(state);
        ArgumentNullException.ThrowIfNull(preprocessing);
        var conv = state["conv1.weight"];
        float[] w = conv.ToFloat();
        int[] shape = conv.Shape;
        int k = shape[0], channels = shape[1], taps = shape[2] * shape[3];
        if (preprocessing.SourceChannel.Length != channels)
        {
            throw new ArgumentException($"The preprocessing has {preprocessing.SourceChannel.Length} channels; conv1.weight {Tensor.ShapeText(shape)} reads {channels}.");
        }
        int sourceChannels = preprocessing.SourceChannel.Max() + 1;
        var folded = new float[k * sourceChannels * taps];
        float[] runningMean = state["bn1.running_mean"].ToFloat();
        for (int o = 0; o < k; o++)
        {
            double shift = 0;
            for (int c = 0; c < channels; c++)
            {
                int s = preprocessing.SourceChannel[c];
                double filterSum = 0;
                for (int i = 0; i < taps; i++)
                {
                    float v = w[(o * channels + c) * taps + i];
                    folded[(o * sourceChannels + s) * taps + i] += preprocessing.PixelScale * v;
                    filterSum += v;
                }
                shift += preprocessing.Mean[c] * filterSum;
            }
            runningMean[o] = (float)(runningMean[o] + shift);
        }
        state.Add("conv1.weight", folded, k, sourceChannels, shape[2], shape[3]);
        state.Add("bn1.running_mean", runningMean, k);
    }

    /// <summary>
    /// Loads an ImageNet ResNet-18 from ONNX into <paramref name="model"/> (width 64): maps the graph,
    /// folds the source's preprocessing pixel transform into the stem when given, then
    /// adapts channels and classifier as <see cref="Checkpoint.LoadPretrained"/> does (RGB filters
    /// summed for a gray model, fc kept at the model's seeded initialisation). Returns what was adapted.
    /// </summary>
    public static IReadOnlyList<string> LoadPretrained(ResNet18 model, PretrainedSource source)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(source);
        RequirePretrainedWidth(model.Config.Width);
        string onnxPath = source.ModelPath;
        string? preprocessingPath = source.PreprocessingPath;
        var weights = Map(OnnxFile.Read(onnxPath), onnxPath);
        if (weights.InChannels != 3 && model.Config.InChannels == 3)
        {
            throw new InvalidFileFormatException(onnxPath, OnnxFile.FormatName, "conv1", $"the network reads {weights.InChannels} channel(s); a 3-channel model needs RGB weights");
        }
        if (weights.Width != model.Config.Width)
        {
            throw new InvalidFileFormatException(onnxPath, OnnxFile.FormatName, "conv1", $"the network has width {weights.Width}, the model {model.Config.Width}");
        }
        var notices = new List<string>(weights.Notices);
        if (preprocessingPath is not null)
        {
            var prep = ReadPreprocessing(OnnxFile.Read(preprocessingPath), preprocessingPath);
            FoldPreprocessing(weights.State, prep);
            notices.Add($"conv1/bn1: the model's preprocessing (channels [{string.Join(", ", prep.SourceChannel)}] of the image, pixels x {prep.PixelScale}, minus means [{string.Join(", ", prep.Mean.Select(m => m.ToString("F2", System.Globalization.CultureInfo.InvariantCulture)))}]) was folded into conv1's filters and bn1's running mean.");
        }
        notices.AddRange(Checkpoint.LoadPretrained(model, weights.State));
        return notices;
    }

    /// <summary>Refuses a model width other than the pretrained weights' (64) with a one-line error.</summary>
    public static void RequirePretrainedWidth(int width, string what = "the model asked for")
    {
        if (width != PretrainedWidth)
        {
            throw new ArgumentException($"--pretrained loads ImageNet weights of a width-{PretrainedWidth} ResNet-18, but {what} has width {width}; use width {PretrainedWidth} or leave out --pretrained.");
        }
    }

    private sealed class Walker(GraphProto graph, string source)
    {
        private readonly Dictionary<string, TensorProto> _initializers = graph.Initializer.ToDictionary(t => t.Name, StringComparer.Ordinal);
        private readonly ILookup<string, NodeProto> _consumers = graph.Node.SelectMany(n => n.Input.Select(i => (i, n))).ToLookup(p => p.i, p => p.n, StringComparer.Ordinal);
        private readonly SafeTensorFile _state = new();
        private readonly SafeTensorFile _dropped = new();

        public OnnxResNetWeights Walk()
        {
            var input = graph.Input.FirstOrDefault(i => !_initializers.ContainsKey(i.Name)) ?? throw Bad("graph input", "every input is an initializer; the network has no image input");
            var stem = Next(input.Name, "Conv", "the image input");
            int width = Conv(_state, stem, "conv1", kernel: 7, stride: 2, pad: 3, inChannels: null);
            int inChannels = Shape(stem.Input[1])[1];
            string x = Relu(BatchNorm(_state, Next(stem.Output[0], "BatchNormalization", "conv1"), "bn1", width), "bn1");
            var maxPool = Next(x, "MaxPool", "the stem's relu");
            CheckWindow(maxPool, "maxpool", 3, 2, 1);
            x = maxPool.Output[0];

            var blocks = new List<OnnxResNetBlock>();
            var notices = new List<string>();
            int stage = 1, index = -1, channels = width;
            while (true)
            {
                var convs = _consumers[x].Where(n => n.OpType == "Conv").ToList();
                if (convs.Count == 0)
                {
                    break;
                }
                var down = convs.FirstOrDefault(n => Shape(n.Input[1])[2] == 1);
                var main = convs.Where(n => n != down).ToList();
                if (main.Count != 1 || convs.Count > 2)
                {
                    throw Bad($"convolutions reading '{x}'", $"found {convs.Count}, expected a 3x3 convolution and at most one 1x1 downsample");
                }
                if (down is not null && index >= 0)
                {
                    stage++;
                    index = 0;
                    channels *= 2;
                }
                else
                {
                    index++;
                }
                string name = $"layer{stage}.{index}";
                bool kept = index < 2 && stage <= 4;
                var target = kept ? _state : _dropped;
                int stride = stage > 1 && index == 0 ? 2 : 1;
                Conv(target, main[0], name + ".conv1", 3, stride, 1, channels / (stage > 1 && index == 0 ? 2 : 1));
                string h = Relu(BatchNorm(target, Next(main[0].Output[0], "BatchNormalization", name + ".conv1"), name + ".bn1", channels), name + ".bn1");
                var conv2 = Next(h, "Conv", name + ".bn1's relu");
                Conv(target, conv2, name + ".conv2", 3, 1, 1, channels);
                string main2 = BatchNorm(target, Next(conv2.Output[0], "BatchNormalization", name + ".conv2"), name + ".bn2", channels);
                string shortcut = x;
                if (down is not null)
                {
                    Conv(target, down, name + ".downsample.0", 1, stride, 0, channels / 2);
                    shortcut = BatchNorm(target, Next(down.Output[0], "BatchNormalization", name + ".downsample.0"), name + ".downsample.1", channels);
                }
                var add = Next(main2, "Add", name + ".bn2");
                if (!add.Input.Contains(shortcut))
                {
                    throw Bad($"node '{add.Name}'", $"{name}'s sum does not add the shortcut '{shortcut}'");
                }
                string output = Relu(add.Output[0], name + "'s sum");
                blocks.Add(new OnnxResNetBlock(name, x, output, kept));
                if (!kept)
                {
                    notices.Add($"{name}: an extra basic block (torchvision's ResNet-18 has two per stage) was dropped; the network continues from layer{stage}.1's output.");
                }
                x = output;
            }
            for (int s = 1; s <= 4; s++)
            {
                int count = blocks.Count(b => b.Name.StartsWith($"layer{s}.", StringComparison.Ordinal));
                if (count < 2)
                {
                    throw Bad("residual stages", $"layer{s} has {count} blocks, expected 2 (the network is not a ResNet-18: stages found {string.Join(", ", blocks.Select(b => b.Name))})");
                }
            }
            if (blocks.Count(b => b.Name.StartsWith("layer5", StringComparison.Ordinal)) > 0)
            {
                throw Bad("residual stages", "more than four stages");
            }
            var pool = _consumers[x].FirstOrDefault(n => n.OpType is "GlobalAveragePool" or "AveragePool")
                ?? throw Bad($"the output of {blocks[^1].Name}", "no GlobalAveragePool or AveragePool reads it");
            return new OnnxResNetWeights(_state, width, inChannels, blocks, pool, notices);
        }

        private NodeProto Next(string tensor, string op, string after)
        {
            var nodes = _consumers[tensor].ToList();
            if (nodes.Count != 1)
            {
                throw Bad($"the output of {after} ('{tensor}')", $"{nodes.Count} nodes read it ({string.Join(", ", nodes.Select(n => n.OpType))}), expected one {op}");
            }
            var node = nodes.FirstOrDefault(n => n.OpType == op) ?? throw Bad($"the output of {after} ('{tensor}')", $"it feeds {nodes[0].OpType}, expected {op}");
            return node;
        }

        private string Relu(string tensor, string after) => Next(tensor, "Relu", after).Output[0];

        private int Conv(SafeTensorFile target, NodeProto conv, string name, int kernel, int stride, int pad, int? inChannels)
        {
            string field = $"{name} (node '{conv.Name}')";
            if (conv.Input.Count > 2 && conv.Input[2] != "")
            {
                throw Bad(field, "the convolution has a bias; ResNet-18 convolutions have none");
            }
            if (OnnxTensors.IntOr(conv, "group", 1) != 1 || OnnxTensors.IntsOr(conv, "dilations", [1, 1]).Any(d => d != 1))
            {
                throw Bad(field, "grouped or dilated convolution");
            }
            int[] shape = Shape(conv.Input[1]);
            if (shape.Length != 4 || shape[2] != kernel || shape[3] != kernel || (inChannels is { } c && shape[1] != c))
            {
                throw Bad(field, $"weight {Tensor.ShapeText(shape)}, expected (K, {(inChannels?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "C")}, {kernel}, {kernel})");
            }
            CheckWindow(conv, name, kernel, stride, pad);
            target.Add(name + ".weight", OnnxTensors.ToFloat(_initializers[conv.Input[1]], source), shape);
            return shape[0];
        }

        /// <summary>
        /// Kernel, strides and pads of a window. Pads at the end may be one less than at the start on
        /// a stride-2 window (CNTK's [1, 1, 0, 0]): on even input sizes the last window never reaches
        /// that row, so the output equals torchvision's.
        /// </summary>
        private void CheckWindow(NodeProto node, string name, int kernel, int stride, int pad)
        {
            string field = $"{name} (node '{node.Name}')";
            if (OnnxTensors.StringOr(node, "auto_pad", "NOTSET") != "NOTSET")
            {
                throw Bad(field, $"auto_pad {OnnxTensors.StringOr(node, "auto_pad", "")}; expected explicit pads");
            }
            long[] k = OnnxTensors.IntsOr(node, "kernel_shape", [kernel, kernel]);
            long[] s = OnnxTensors.IntsOr(node, "strides", [1, 1]);
            long[] p = OnnxTensors.IntsOr(node, "pads", [0, 0, 0, 0]);
            bool padsFit = p.Length == 4 && p[0] == pad && p[1] == pad && p[2] == p[3] && (p[2] == pad || (stride == 2 && p[2] == pad - 1));
            if (k.Length != 2 || k[0] != kernel || k[1] != kernel || s.Length != 2 || s[0] != stride || s[1] != stride || !padsFit
                || OnnxTensors.IntOr(node, "ceil_mode", 0) != 0)
            {
                throw Bad(field, $"kernel [{string.Join(", ", k)}], strides [{string.Join(", ", s)}], pads [{string.Join(", ", p)}]; expected kernel {kernel}, stride {stride}, pads {pad} (torchvision's ResNet-18)");
            }
        }

        private string BatchNorm(SafeTensorFile target, NodeProto bn, string name, int channels)
        {
            string field = $"{name} (node '{bn.Name}')";
            float eps = OnnxTensors.FloatOr(bn, "epsilon", 1e-5f);
            if (Math.Abs(eps - 1e-5f) > 1e-9f)
            {
                throw Bad(field, $"epsilon {eps}, expected 1e-5 (this project's batch norm)");
            }
            if (OnnxTensors.IntOr(bn, "spatial", 1) != 1 || bn.Input.Count != 5)
            {
                throw Bad(field, "not a per-channel (spatial) batch normalisation with scale, bias, mean and variance");
            }
            string[] suffixes = ["weight", "bias", "running_mean", "running_var"];
            for (int i = 0; i < 4; i++)
            {
                if (!_initializers.TryGetValue(bn.Input[i + 1], out var t))
                {
                    throw Bad(field, $"its {suffixes[i]} '{bn.Input[i + 1]}' is not an initializer");
                }
                float[] values = OnnxTensors.ToFloat(t, source);
                if (values.Length != channels)
                {
                    throw Bad(field, $"its {suffixes[i]} has {values.Length} values, expected {channels}");
                }
                target.Add($"{name}.{suffixes[i]}", values, channels);
            }
            return bn.Output[0];
        }

        private int[] Shape(string initializer) => _initializers.TryGetValue(initializer, out var t)
            ? OnnxTensors.Shape(t, source)
            : throw Bad($"tensor '{initializer}'", "a convolution weight that is not an initializer");

        private InvalidFileFormatException Bad(string field, string problem) =>
            new(source, "ONNX ResNet-18", field, problem);
    }
}
