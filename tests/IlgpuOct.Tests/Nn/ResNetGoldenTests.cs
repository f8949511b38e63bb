using System.Globalization;
using FluentAssertions;
using IlgpuOct.Kernels;
using IlgpuOct.Nn;
using IlgpuOct.Nn.Checkpoints;
using IlgpuOct.Nn.IO;
using IlgpuOct.Nn.Training;
using IlgpuOct.Tests.Support;
using Xunit;

namespace IlgpuOct.Tests.Nn;

/// <summary>
/// The whole network against PyTorch (golden/resnet18.safetensors): train-mode forward, loss,
/// backward (input and every parameter), running statistics plus one SGD step, eval forward.
/// Tolerances: relative L2 &lt;= 1e-4 for forward outputs, &lt;= 1e-3 for gradients and updated
/// state; element-wise |a - e| &lt;= atol + rtol |e| with rtol 1e-3 and atol 1e-4 * max|e| (forward)
/// or 1e-3 * max|e| (gradients, updated state).
/// </summary>
[Trait("Category", "Golden")]
public sealed class ResNetGoldenTests
{
    private static ResNetConfig ConfigOf(SafeTensorFile file) => new(
        int.Parse(file.Metadata["width"], CultureInfo.InvariantCulture),
        int.Parse(file.Metadata["in_channels"], CultureInfo.InvariantCulture),
        int.Parse(file.Metadata["num_classes"], CultureInfo.InvariantCulture));

    private static void AssertForward(float[] actual, SafeTensor expected) => AssertTensor(actual, expected, 1e-4, 1e-4);

    private static void AssertGradient(float[] actual, SafeTensor expected) => AssertTensor(actual, expected, 1e-3, 1e-3);

    private static void AssertTensor(float[] actual, SafeTensor expected, double maxRelativeL2, double atolFraction)
    {
        float[] e = expected.ToFloat();
        double maxAbs = e.Length == 0 ? 0 : e.Max(v => Math.Abs((double)v));
        Tolerance.AssertRelativeL2(actual, e, maxRelativeL2, expected.Name);
        Tolerance.AssertClose(actual, e, Math.Max(atolFraction * maxAbs, 1e-7), 1e-3, expected.Name);
    }

    [Fact]
    public void Train_step_and_eval_match_pytorch_on_cpu() => TrainStepAndEvalMatchPytorch("cpu");

    [Fact]
    public void Train_step_and_eval_match_pytorch_on_cpu_kernels() => TrainStepAndEvalMatchPytorch("cpu-kernels");

    private static void TrainStepAndEvalMatchPytorch(string device)
    {
        var file = Golden.Load("resnet18.safetensors");
        using var acc = DeviceSelection.Open(device, out _);
        var config = ConfigOf(file);
        using var model = new ResNet18(acc, config, seed: 1);
        Checkpoint.LoadState(model, file, prefix: "", strict: false, loadOptimizer: false);

        var inputFile = file["input"];
        using var input = Tensor.FromHost(acc, inputFile.ToFloat(), inputFile.Shape);
        int[] labels = file["labels"].ToInt32();
        using var labelBuffer = acc.Upload<int>(labels);
        int n = input.Dim(0);

        // Train-mode forward and loss.
        var logits = model.Forward(input, training: true);
        AssertForward(logits.Download(), file["train.logits"]);
        using var dLogits = Tensor.Zeros(acc, logits.Shape);
        using var loss = acc.Allocate<float>(1);
        new CrossEntropyLoss().Compute(logits, labelBuffer.View, dLogits, loss.View);
        float lossValue = acc.Download(loss.View)[0];
        AssertForward([lossValue], file["train.loss"]);
        int[] expectedCorrect = [Enumerable.Range(0, n).Count(i => ArgMax(file["train.logits"].ToFloat().AsSpan(i * config.NumClasses, config.NumClasses)) == labels[i])];
        Accuracy.CountCorrect(logits, labels).Should().Be(expectedCorrect[0]);

        // Backward: input gradient and every parameter gradient.
        var dInput = model.Backward(dLogits, BackwardMode.ParametersAndInput);
        dInput.Should().NotBeNull();
        AssertGradient(dInput!.Download(), file["grad.input"]);
        int checkedGrads = 0;
        foreach (var p in model.Parameters)
        {
            AssertGradient(p.Grad.Download(), file["grad." + p.Name]);
            checkedGrads++;
        }
        checkedGrads.Should().Be(file.Keys.Count(k => k.StartsWith("grad.", StringComparison.Ordinal) && k != "grad.input"));

        // One SGD step with the file's settings; then every parameter and buffer.
        var (lr, sgd) = SgdOptimizer.Parse(file.Metadata["sgd"]);
        sgd.Step(model.Parameters, lr);
        var state = Checkpoint.ToFile(model, 0, 1, "", includeOptimizer: false);
        int checkedAfter = 0;
        foreach (string key in file.Keys.Where(k => k.StartsWith("after.", StringComparison.Ordinal)))
        {
            string name = key["after.".Length..];
            state.Contains(name).Should().BeTrue($"the model should have state '{name}'");
            if (file[key].DType == SafeTensorDType.I64)
            {
                state[name].ToInt64().Should().Equal(file[key].ToInt64(), key);
            }
            else
            {
                AssertGradient(state[name].ToFloat(), file[key]);
            }
            checkedAfter++;
        }
        checkedAfter.Should().BeGreaterThanOrEqualTo(model.Parameters.Count + 2 * model.BatchNorms.Count());

        // Eval forward with the updated state, straight from the file's after.* tensors.
        Checkpoint.LoadState(model, file, prefix: "after.", strict: false, loadOptimizer: false);
        var eval = model.ForwardEval(input);
        AssertForward(eval.Logits.Download(), file["eval.logits"]);
        AssertForward(eval.Features.Download(), file["eval.features"]);
    }

    private static int ArgMax(ReadOnlySpan<float> values)
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++)
        {
            if (values[i] > values[best])
            {
                best = i;
            }
        }
        return best;
    }
}
