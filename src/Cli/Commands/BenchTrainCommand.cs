using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using IlgpuOct.Cli.Rendering;
using IlgpuOct.Kernels;
using IlgpuOct.Nn;

namespace IlgpuOct.Cli.Commands;

/// <summary><c>ilgpuoct bench train</c>: images/s of a full ResNet-18 training step (forward, loss, backward, SGD).</summary>
internal static class BenchTrainCommand
{
    public sealed record Result(
        string Device, string Precision, int Resolution, int Batch, int Width, int Channels, int Classes, int WarmupSteps, int Steps,
        double Seconds, double MillisecondsPerStep, double ImagesPerSecond);

    public static Command Create()
    {
        var command = new Command("train", "Time full training steps (forward, cross-entropy, backward, SGD) of a ResNet-18 on random images.");
        var device = CliRunner.DeviceOption("cpu");
        var precision = CliRunner.PrecisionOption();
        var resolution = new Option<int>("--resolution") { Description = "Image height and width.", DefaultValueFactory = _ => 64 }.InRange(16, 4096);
        var batch = new Option<int>("--batch") { Description = "Images per step.", DefaultValueFactory = _ => 32 }.InRange(2, 65_536);
        var width = new Option<int>("--width") { Description = "Base width (64 = torchvision).", DefaultValueFactory = _ => 64 }.InRange(1, 4096);
        var channels = new Option<int>("--channels") { Description = "Input channels (1 or 3).", DefaultValueFactory = _ => 1 };
        channels.AcceptOnlyFromAmong("1", "3");
        var classes = new Option<int>("--classes") { Description = "Classes.", DefaultValueFactory = _ => 4 }.InRange(2, 65_536);
        var steps = new Option<int>("--steps") { Description = "Timed steps.", DefaultValueFactory = _ => 5 }.InRange(1, 100_000);
        var warmup = new Option<int>("--warmup") { Description = "Untimed steps first (buffers, JIT, caches).", DefaultValueFactory = _ => 2 }.InRange(0, 100_000);
        var json = CliRunner.JsonOption();
        foreach (var option in new Option[] { device, precision, resolution, batch, width, channels, classes, steps, warmup, json })
        {
            command.Options.Add(option);
        }
        // The largest activation is conv1's output, batch x width x (resolution / 2)^2 floats.
        command.Require(r =>
        {
            long elements = (long)r.GetValue(batch) * r.GetValue(width) * ((r.GetValue(resolution) + 1) / 2) * ((r.GetValue(resolution) + 1) / 2);
            return elements > int.MaxValue
                ? $"--batch {r.GetValue(batch)} x --width {r.GetValue(width)} x (--resolution {r.GetValue(resolution)} / 2)^2 = {elements} activations, more than one tensor may hold ({int.MaxValue}); lower --batch, --width or --resolution."
                : null;
        });
        CliRunner.SetAction(command, (parse, token) =>
        {
            int res = parse.GetValue(resolution);
            int n = parse.GetValue(batch);
            int stepCount = parse.GetValue(steps);
            int warm = parse.GetValue(warmup);
            if (res < 16 || n < 2 || stepCount < 1 || warm < 0)
            {
                throw new ArgumentException("Use --resolution >= 16, --batch >= 2, --steps >= 1 and --warmup >= 0.");
            }
            var config = new ResNetConfig(parse.GetValue(width), parse.GetValue(channels), parse.GetValue(classes));
            using var acc = CliRunner.OpenDevice(parse.GetValue(device)!, parse.GetValue(precision)!);
            using var workload = new TrainStepWorkload(acc, config, res, n);
            void Step(int i)
            {
                token.ThrowIfCancellationRequested();
                workload.Step(i);
            }
            for (int i = 0; i < warm; i++)
            {
                Step(i);
            }
            acc.Synchronize();
            var clock = Stopwatch.StartNew();
            for (int i = 0; i < stepCount; i++)
            {
                Step(warm + i);
            }
            acc.Synchronize();
            double seconds = clock.Elapsed.TotalSeconds;
            var result = new Result(acc.Id, Accelerator.PrecisionName(acc.Precision), res, n, config.Width, config.InChannels, config.NumClasses, warm, stepCount,
                seconds, seconds * 1000 / stepCount, n * stepCount / seconds);
            if (parse.GetValue(json))
            {
                Ui.WriteJson(result);
            }
            else
            {
                Ui.Table($"ResNet-18 training step on {acc.Id}", ["resolution", "batch", "width", "ms/step", "images/s"],
                [[
                    $"{res}x{res}", n.ToString(CultureInfo.InvariantCulture), config.Width.ToString(CultureInfo.InvariantCulture),
                    result.MillisecondsPerStep.ToString("F1", CultureInfo.InvariantCulture), result.ImagesPerSecond.ToString("F2", CultureInfo.InvariantCulture),
                ]]);
            }
            return CliRunner.Ok;
        });
        return command;
    }
}
