using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using IlgpuOct.Cli.Rendering;
using IlgpuOct.Kernels;
using IlgpuOct.Nn;
using IlgpuOct.Nn.Onnx;

namespace IlgpuOct.Cli.Commands;

/// <summary>
/// <c>ilgpuoct bench infer</c>: images/s of evaluation-mode forward passes of one seeded ResNet-18
/// on random images, in this project's engine or in ONNX Runtime (the same model exported in
/// memory), with the same thread count for both.
/// </summary>
internal static class BenchInferCommand
{
    public sealed record Result(
        string Engine, string Device, int Resolution, int Batch, int Width, int Channels, int Classes, int Threads, int WarmupSteps, int Steps,
        double Seconds, double MillisecondsPerStep, double ImagesPerSecond);

    public static Command Create()
    {
        var command = new Command("infer", "Time evaluation-mode forward passes of a seeded ResNet-18 on random images, in this project's engine or in ONNX Runtime.");
        var engine = new Option<string>("--engine") { Description = "cpu: this project's engine on --device; onnxruntime: ONNX Runtime (CPU, sequential execution) on the same model exported to ONNX in memory.", DefaultValueFactory = _ => "cpu" };
        engine.AcceptOnlyFromAmong("cpu", "onnxruntime");
        var device = CliRunner.DeviceOption("cpu");
        var shape = new BenchModelOptions(minBatch: 1, "forward pass", "forward passes");
        var threads = new Option<int>("--threads") { Description = "CPU threads of either engine (the cpu engine's threads, ONNX Runtime's intra-op threads).", DefaultValueFactory = _ => 2 }.InRange(1, 1024);
        var json = CliRunner.JsonOption();
        command.Options.Add(engine);
        command.Options.Add(device);
        var convKernel = CliRunner.ConvKernelOption();
        command.Options.Add(convKernel);
        shape.AddTo(command);
        command.Options.Add(threads);
        command.Options.Add(json);
        CliRunner.SetAction(command, (parse, token) =>
        {
            string engineName = parse.GetValue(engine)!;
            int res = parse.GetValue(shape.Resolution), n = parse.GetValue(shape.Batch), stepCount = parse.GetValue(shape.Steps), warm = parse.GetValue(shape.Warmup);
            int threadCount = parse.GetValue(threads);
            var config = shape.Config(parse);
            bool onnxRuntime = engineName == "onnxruntime";
            if (onnxRuntime && parse.GetValue(device) != "cpu")
            {
                throw new ArgumentException($"--engine onnxruntime runs ONNX Runtime's CPU provider; --device {parse.GetValue(device)} applies to --engine cpu only.");
            }
            CliRunner.ApplyConvKernel(parse, convKernel);
            using var acc = CliRunner.OpenDevice(parse.GetValue(device)!);
            using var model = new ResNet18(acc, config, seed: 0);
            long[] dims = [n, config.InChannels, res, res];
            var images = BenchInputs.Images(n * config.InChannels * res * res);

            Action forward;
            IDisposable? owned = null;
            if (onnxRuntime)
            {
                var session = new OnnxRuntimeSession(OnnxFile.ToBytes(ResNetOnnxExport.Export(model)), threadCount);
                owned = session;
                forward = () => session.Run(images, dims);
            }
            else
            {
                var input = Tensor.FromHost(acc, images, n, config.InChannels, res, res);
                owned = input;
                forward = () => model.Infer(input);
            }
            using (owned)
            {
                for (int i = 0; i < warm; i++)
                {
                    token.ThrowIfCancellationRequested();
                    forward();
                }
                acc.Synchronize();
                var clock = Stopwatch.StartNew();
                for (int i = 0; i < stepCount; i++)
                {
                    token.ThrowIfCancellationRequested();
                    forward();
                }
                acc.Synchronize();
                double seconds = clock.Elapsed.TotalSeconds;
                var result = new Result(engineName, onnxRuntime ? "onnxruntime-cpu" : acc.Id, res, n, config.Width, config.InChannels, config.NumClasses, threadCount,
                    warm, stepCount, seconds, seconds * 1000 / stepCount, n * stepCount / seconds);
                if (parse.GetValue(json))
                {
                    Ui.WriteJson(result);
                }
                else
                {
                    Ui.Table($"ResNet-18 inference (evaluation mode) on {result.Device}", ["resolution", "batch", "width", "threads", "ms/pass", "images/s"],
                    [[
                        $"{res}x{res}", n.ToString(CultureInfo.InvariantCulture), config.Width.ToString(CultureInfo.InvariantCulture), threadCount.ToString(CultureInfo.InvariantCulture),
                        result.MillisecondsPerStep.ToString("F1", CultureInfo.InvariantCulture), result.ImagesPerSecond.ToString("F2", CultureInfo.InvariantCulture),
                    ]]);
                }
            }
            return CliRunner.Ok;
        });
        return command;
    }
}
