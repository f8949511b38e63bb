using IlgpuOct.Nn.Checkpoints;
using IlgpuOct.Nn.Onnx.Proto;

namespace IlgpuOct.Nn.Onnx;

/// <summary>
/// Writes a ResNet-18 in evaluation mode as a standard ONNX graph (operator set 13): Conv without
/// bias, BatchNormalization nodes holding the running statistics (not folded into the
/// convolutions, so the file keeps every torchvision tensor under its own name), Relu, MaxPool,
/// Add, GlobalAveragePool, Flatten and Gemm. Input "input" (batch, C, height, width) in the model's
/// own pixel scale; output "logits" (batch, classes).
/// </summary>
public static class ResNetOnnxExport
{
    public const int Opset = 13;
    public const long IrVersion = 7; // the IR that operator set 13 shipped with
    public const string InputName = "input";
    public const string OutputName = "logits";

    public static ModelProto Export(ResNet18 model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var state = Checkpoint.ToFile(model, 0, 0, "", includeOptimizer: false);
        var epsilons = model.BatchNorms.ToDictionary(b => b.Name, b => b.Eps, StringComparer.Ordinal);
        var graph = new GraphProto { Name = "resnet18" };
        var builder = new Builder(graph, state, epsilons);

        string x = builder.Conv(InputName, "conv1", stride: 2, pad: 3);
        x = builder.Node("Relu", [builder.BatchNorm(x, "bn1")]);
        x = builder.Node("MaxPool", [x], OnnxTensors.Ints("kernel_shape", 3, 3), OnnxTensors.Ints("strides", 2, 2), OnnxTensors.Ints("pads", 1, 1, 1, 1));
        for (int stage = 1; stage <= 4; stage++)
        {
            for (int block = 0; state.Contains($"layer{stage}.{block}.conv1.weight"); block++)
            {
                string name = $"layer{stage}.{block}";
                int stride = stage > 1 && block == 0 ? 2 : 1; // torchvision: the first block of layer2..4 halves the size
                string h = builder.Node("Relu", [builder.BatchNorm(builder.Conv(x, name + ".conv1", stride, 1), name + ".bn1")]);
                h = builder.BatchNorm(builder.Conv(h, name + ".conv2", 1, 1), name + ".bn2");
                string shortcut = state.Contains(name + ".downsample.0.weight")
                    ? builder.BatchNorm(builder.Conv(x, name + ".downsample.0", stride, 0), name + ".downsample.1")
                    : x;
                x = builder.Node("Relu", [builder.Node("Add", [h, shortcut])]);
            }
        }
        x = builder.Node("Flatten", [builder.Node("GlobalAveragePool", [x])], OnnxTensors.Int("axis", 1));
        builder.Initializer("fc.weight");
        builder.Initializer("fc.bias");
        graph.Node.Add(NewNode("Gemm", [x, "fc.weight", "fc.bias"], OutputName, OnnxTensors.Int("transB", 1)));

        var c = model.Config;
        graph.Input.Add(TensorInfo(InputName, ("batch", 0), (null, c.InChannels), ("height", 0), ("width", 0)));
        graph.Output.Add(TensorInfo(OutputName, ("batch", 0), (null, c.NumClasses)));
        var onnx = new ModelProto
        {
            IrVersion = IrVersion,
            ProducerName = "ilgpuoct",
            ProducerVersion = typeof(ResNetOnnxExport).Assembly.GetName().Version?.ToString() ?? "",
            DocString = $"ResNet-18 (width {c.Width}, {c.InChannels} input channel(s), {c.NumClasses} classes, seed {model.Seed}) in evaluation mode; pixels in [0, 1].",
            Graph = graph,
        };
        onnx.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = Opset });
        return onnx;
    }

    private static NodeProto NewNode(string op, string[] inputs, string output, params AttributeProto[] attributes)
    {
        var node = new NodeProto { OpType = op, Name = output };
        node.Input.AddRange(inputs);
        node.Output.Add(output);
        node.Attribute.AddRange(attributes);
        return node;
    }

    /// <summary>A float tensor value; each dimension is either symbolic (a name) or fixed.</summary>
    private static ValueInfoProto TensorInfo(string name, params (string? Symbol, int Size)[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (var (symbol, size) in dims)
        {
            shape.Dim.Add(symbol is null ? new TensorShapeProto.Types.Dimension { DimValue = size } : new TensorShapeProto.Types.Dimension { DimParam = symbol });
        }
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float, Shape = shape } },
        };
    }

    private sealed class Builder(GraphProto graph, IO.SafeTensorFile state, IReadOnlyDictionary<string, float> epsilons)
    {
        private int _next;

        public void Initializer(string name)
        {
            var t = state[name];
            graph.Initializer.Add(OnnxTensors.FromFloat(name, t.ToFloat(), t.Shape));
        }

        public string Node(string op, string[] inputs, params AttributeProto[] attributes)
        {
            string output = $"{op.ToLowerInvariant()}_{_next++}";
            graph.Node.Add(NewNode(op, inputs, output, attributes));
            return output;
        }

        public string Conv(string x, string layer, int stride, int pad)
        {
            string weight = layer + ".weight";
            Initializer(weight);
            int k = state[weight].Shape[2];
            return Node("Conv", [x, weight], OnnxTensors.Ints("kernel_shape", k, k), OnnxTensors.Ints("strides", stride, stride), OnnxTensors.Ints("pads", pad, pad, pad, pad));
        }

        public string BatchNorm(string x, string layer)
        {
            string[] inputs = [x, layer + ".weight", layer + ".bias", layer + ".running_mean", layer + ".running_var"];
            foreach (string name in inputs.Skip(1))
            {
                Initializer(name);
            }
            return Node("BatchNormalization", inputs, OnnxTensors.Float("epsilon", epsilons[layer]));
        }
    }
}
