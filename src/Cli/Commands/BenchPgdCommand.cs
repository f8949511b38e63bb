using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using IlgpuOct.Cli.Rendering;
using IlgpuOct.Kernels;

namespace IlgpuOct.Cli.Commands;

/// <summary><c>ilgpuoct bench pgd</c>: images/s of an untargeted L-infinity PGD attack on a ResNet-18.</summary>
internal static class BenchPgdCommand
{
    public sealed record Result(string Device, string Precision, int Resolution, int Batch, int Width, int PgdSteps, int Repeat, double Seconds, double ImagesPerSecond);

    public static Command Create()
    {
        var command = new Command("pgd", "Time PGD batches (eps 0.005, no random start) against a seeded ResNet-18 on random images.");
        var device = CliRunner.DeviceOption("cpu");
        var precision = CliRunner.PrecisionOption();
        var resolution = new Option<int>("--resolution") { Description = "Image height and width.", DefaultValueFactory = _ => 64 };
        var batch = new Option<int>("--batch") { Description = "Images per batch.", DefaultValueFactory = _ => 32 };
        var width = new Option<int>("--width") { Description = "Base width (64 = torchvision).", DefaultValueFactory = _ => 64 };
        var steps = new Option<int>("--pgd-steps") { Description = "PGD iterations.", DefaultValueFactory = _ => 10 };
        var repeat = new Option<int>("--repeat") { Description = "Timed batches after one untimed batch.", DefaultValueFactory = _ => 2 };
        var json = CliRunner.JsonOption();
        foreach (var option in new Option[] { device, precision, resolution, batch, width, steps, repeat, json })
        {
            command.Options.Add(option);
        }
        CliRunner.SetAction(command, (parse, token) =>
        {
            int repeats = parse.GetValue(repeat) >= 1 ? parse.GetValue(repeat) : throw new ArgumentException("--repeat must be 1 or more.");
            using var acc = CliRunner.OpenDevice(parse.GetValue(device)!, parse.GetValue(precision)!);
            using var workload = new PgdWorkload(acc, parse.GetValue(width), parse.GetValue(resolution), parse.GetValue(batch), parse.GetValue(steps));
            workload.Run(token);
            acc.Synchronize();
            var clock = Stopwatch.StartNew();
            for (int i = 0; i < repeats; i++)
            {
                workload.Run(token);
            }
            acc.Synchronize();
            double seconds = clock.Elapsed.TotalSeconds;
            var result = new Result(acc.Id, Accelerator.PrecisionName(acc.Precision), parse.GetValue(resolution), workload.Batch, parse.GetValue(width), workload.Options.Steps, repeats, seconds, workload.Batch * repeats / seconds);
            if (parse.GetValue(json))
            {
                Ui.WriteJson(result);
            }
            else
            {
                var inv = CultureInfo.InvariantCulture;
                Ui.Table($"PGD-{result.PgdSteps} on {acc.Id}", ["resolution", "batch", "width", "seconds", "images/s"],
                    [[$"{result.Resolution}x{result.Resolution}", result.Batch.ToString(inv), result.Width.ToString(inv), seconds.ToString("F3", inv), result.ImagesPerSecond.ToString("F2", inv)]]);
            }
            return CliRunner.Ok;
        });
        return command;
    }
}
