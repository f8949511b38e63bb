using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using IlgpuOct.Cli.Rendering;
using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Cpu;
using IlgpuOct.Nn;

namespace IlgpuOct.Cli.Commands;

/// <summary><c>ilgpuoct bench train</c>: images/s of a full ResNet-18 training step (forward, loss, backward, SGD).</summary>
internal static class BenchTrainCommand
{
    public sealed record Result(
        string Device, string Precision, int Resolution, int Batch, int Width, int Channels, int Classes, int WarmupSteps, int Steps,
        double Seconds, double MillisecondsPerStep, double ImagesPerSecond, double CpuSeconds);

    public static Command Create()
    {
        var command = new Command("train", "Time full training steps (forward, cross-entropy, backward, SGD) of a ResNet-18 on random images.");
        var device = CliRunner.DeviceOption("cpu");
        var precision = CliRunner.PrecisionOption();
        var shape = new BenchModelOptions(minBatch: 2, "step", "steps");
        var json = CliRunner.JsonOption();
        command.Options.Add(device);
        command.Options.Add(precision);
        var convKernel = CliRunner.ConvKernelOption();
        command.Options.Add(convKernel);
        shape.AddTo(command);
        command.Options.Add(json);
        CliRunner.SetAction(command, (parse, token) =>
        {
            int res = parse.GetValue(shape.Resolution);
            int n = parse.GetValue(shape.Batch);
            int stepCount = parse.GetValue(shape.Steps);
            int warm = parse.GetValue(shape.Warmup);
            if (res < 16 || n < 2 || stepCount < 1 || warm < 0)
            {
                throw new ArgumentException("Use --resolution >= 16, --batch >= 2, --steps >= 1 and --warmup >= 0.");
            }
            CliRunner.ApplyConvKernel(parse, convKernel);
            var config = shape.Config(parse);
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
            // CPU time of the process over the timed steps: on a shared machine it shows what the steps cost
            // per core they actually got (wall time also measures the other work).
            double cpuBefore = CpuTime.ProcessSeconds();
            var clock = Stopwatch.StartNew();
            for (int i = 0; i < stepCount; i++)
            {
                Step(warm + i);
            }
            acc.Synchronize();
            double seconds = clock.Elapsed.TotalSeconds;
            double cpuSeconds = CpuTime.ProcessSeconds() - cpuBefore;
            var result = new Result(acc.Id, Accelerator.PrecisionName(acc.Precision), res, n, config.Width, config.InChannels, config.NumClasses, warm, stepCount,
                seconds, seconds * 1000 / stepCount, n * stepCount / seconds, cpuSeconds);
            if (parse.GetValue(json))
            {
                Ui.WriteJson(result);
            }
            else
            {
                Ui.Table($"ResNet-18 training step on {acc.Id}", ["resolution", "batch", "width", "ms/step", "images/s", "CPU s"],
                [[
                    $"{res}x{res}", n.ToString(CultureInfo.InvariantCulture), config.Width.ToString(CultureInfo.InvariantCulture),
                    result.MillisecondsPerStep.ToString("F1", CultureInfo.InvariantCulture), result.ImagesPerSecond.ToString("F2", CultureInfo.InvariantCulture),
                    cpuSeconds.ToString("F2", CultureInfo.InvariantCulture),
                ]]);
            }
            return CliRunner.Ok;
        });
        return command;
    }
}
