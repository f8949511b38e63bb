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
        var resolution = new Option<int>("--resolution") { Description = "Image height and width.", DefaultValueFactory = _ => 64 }.InRange(16, 4096);
        var batch = new Option<int>("--batch") { Description = "Images per forward pass.", DefaultValueFactory = _ => 32 }.InRange(1, 65_536);
        var width = new Option<int>("--width") { Description = "Base width (64 = torchvision).", DefaultValueFactory = _ => 64 }.InRange(1, 4096);
        var channels = new Option<int>("--channels") { Description = "Input channels (1 or 3).", DefaultValueFactory = _ => 1 };
        channels.AcceptOnlyFromAmong("1", "3");
        var classes = new Option<int>("--classes") { Description = "Classes.", DefaultValueFactory = _ => 4 }.InRange(2, 65_536);
        var steps = new Option<int>("--steps") { Description = "Timed forward passes.", DefaultValueFactory = _ => 5 }.InRange(1, 100_000);
        var warmup = new Option<int>("--warmup") { Description = "Untimed forward passes first (buffers, JIT, caches).", DefaultValueFactory = _ => 2 }.InRange(0, 100_000);
        var threads = new Option<int>("--threads") { Description = "CPU threads of either engine (the cpu engine's threads, ONNX Runtime's intra-op threads).", DefaultValueFactory = _ => 2 }.InRange(1, 1024);
        var json = CliRunner.JsonOption();
        foreach (var option in new Option[] { engine, device, resolution, batch, width, channels, classes, steps, warmup, threads, json })
        {
            command.Options.Add(option);
        }
        command.Require(r =>
        {
            long elements = (long)r.GetValue(batch) * r.GetValue(width) * ((r.GetValue(resolution) + 1) / 2) * ((r.GetValue(resolution) + 1) / 2);
            return elements > int.MaxValue
                ? $"--batch {r.GetValue(batch)} x --width {r.GetValue(width)} x (--resolution {r.GetValue(resolution)} / 2)^2 = {elements} activations, more than one tensor may hold ({int.MaxValue}); lower --batch, --width or --resolution."
                : null;
        });
        CliRunner.SetAction(command, (parse, token) =>
        {
            string engineName = parse.GetValue(engine)!;
            int res = parse.GetValue(resolution), n = parse.GetValue(batch), stepCount = parse.GetValue(steps), warm = parse.GetValue(warmup);
            int threadCount = parse.GetValue(threads);
            var config = new ResNetConfig(parse.GetValue(width), parse.GetValue(channels), parse.GetValue(classes));
            bool onnxRuntime = engineName == "onnxruntime";
            if (onnxRuntime && parse.GetValue(device) != "cpu")
            {
                throw new ArgumentException($"--engine onnxruntime runs ONNX Runtime's CPU provider; --device {parse.GetValue(device)} applies to --engine cpu only.");
            }
            using var acc = CliRunner.OpenDevice(parse.GetValue(device)!);
            using var model = new ResNet18(acc, config, seed: 0);
            long[] shape = [n, config.InChannels, res, res];
            var images = new float[n * config.InChannels * res * res];
            var random = new Random(1);
            for (int i = 0; i < images.Length; i++)
            {
                images[i] = random.NextSingle();
            }

            Action forward;
            IDisposable? owned = null;
            if (onnxRuntime)
            {
                var session = new OnnxRuntimeSession(OnnxFile.ToBytes(ResNetOnnxExport.Export(model)), threadCount);
                owned = session;
                forward = () => session.Run(images, shape);
            }
            else
            {
                var input = Tensor.FromHost(acc, images, n, config.InChannels, res, res);
                owned = input;
                forward = () => model.ForwardEval(input);
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
