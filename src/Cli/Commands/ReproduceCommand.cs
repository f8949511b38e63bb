using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using IlgpuOct.Defense.Experiments;
using IlgpuOct.Nn.Training;
using IlgpuOct.Cli.Rendering;

namespace IlgpuOct.Cli.Commands;

/// <summary><c>ilgpuoct reproduce</c>: the paper's experiment end to end into one run folder.</summary>
internal static class ReproduceCommand
{
    public static Command Create()
    {
        var command = new Command("reproduce", "Run the paper's experiment end to end: data, NT/GCE/AT/SSAT training, FGSM/PGD/C&W curves, UAD/Mahalanobis/KDE against plain and adaptive attacks, Tables 1 and 2 (results.md).");
        var profile = new Option<string>("--profile") { Description = "quick (three seeds of 64x64 synthetic OCT, width 8: at most 15 min on 2 idle CPU cores), pneumonia (three seeds on the real PneumoniaMNIST chest X-rays of ../shared/data), paper (224x224, width 64, three seeds, for a GPU: an estimated 1-2 hours on one H200) or micro (seconds, for tests).", DefaultValueFactory = _ => "quick" };
        profile.AcceptOnlyFromAmong("quick", "pneumonia", "paper", "micro");
        var data = new Option<string?>("--data") { Description = "Data set file, or a MedMNIST .npz to import (default: the profile's data; synthetic OCT generated into each seed's folder)." };
        var output = new Option<string>("--out") { Description = "Run folder (a rerun with the same folder continues where it stopped).", DefaultValueFactory = _ => "runs/reproduce" };
        var device = CliRunner.DeviceOption();
        var precision = CliRunner.PrecisionOption();
        var noVerify = CliRunner.NoVerifyOption();
        var seeds = new Option<string?>("--seeds") { Description = "Comma-separated seeds, each a full run (data, initialisation, batches, attacks) in its own folder seed-S (default: the profile's, quick 0,1,2)." };
        var pretrained = PretrainedOption.Create();
        foreach (var option in new Option[] { noVerify, profile, data, output, device, precision, seeds, pretrained })
        {
            command.Options.Add(option);
        }
        CliRunner.SetAction(command, (parse, token) =>
        {
            var chosen = ReproduceProfile.ByName(parse.GetValue(profile)!);
            var options = new ReproduceOptions
            {
                Profile = chosen,
                DataPath = parse.GetValue(data) ?? (chosen.DefaultDataPath is { } relative ? ReproduceProfile.LocateData(relative, Environment.CurrentDirectory, AppContext.BaseDirectory) : null),
                OutputDirectory = parse.GetValue(output)!,
                VerifyData = !parse.GetValue(noVerify),
                Pretrained = PretrainedOption.Resolve(parse, pretrained),
            };
            var seedList = parse.GetValue(seeds) is { } text ? ParseSeeds(text) : chosen.Seeds;
            using var accelerator = CliRunner.OpenDevice(parse.GetValue(device)!, parse.GetValue(precision)!);
            var console = CliConsole.Current;
            var clock = Stopwatch.StartNew();
            // Process CPU time beside the wall clock: stages can be sized on a machine that others load.
            var stageProgress = ProgressView.Lines<ReproduceProgress>(console, p =>
                string.Create(CultureInfo.InvariantCulture, $"{ProgressView.Elapsed(clock)} cpu {Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds:F0} s {p.Stage}/{p.Stages} {p.What}: {p.Detail}"));
            // A training line at least every 10 seconds, and at each evaluation.
            var trainProgress = ProgressView.Throttled<TrainingProgress>(console, TimeSpan.FromSeconds(10), p => p.Phase != "train", p =>
                string.Create(CultureInfo.InvariantCulture, $"{ProgressView.Elapsed(clock)}   epoch {p.Epoch}/{p.Epochs} step {p.Step}/{p.TotalSteps} {p.Phase} loss {p.Loss:F4} acc {p.Accuracy:P1} {p.ImagesPerSecond:F0} img/s"));
            var results = ReproduceSeeds.Run(accelerator, options, seedList, stageProgress, trainProgress, token);
            string folder = Path.GetFullPath(options.OutputDirectory);
            console.WriteLine(File.ReadAllText(Path.Combine(folder, Reproduce.ResultsMarkdown)));
            console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"wrote {Path.Combine(folder, ReproduceSeeds.ResultsHtml)}, {Reproduce.ResultsMarkdown} and {Reproduce.ResultsJson} in {results.WallSeconds:F0} s wall, {results.CpuSeconds:F0} s CPU"));
            return CliRunner.Ok;
        });
        return command;
    }

    private static int[] ParseSeeds(string text)
    {
        var parts = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var result = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
        {
            if (!int.TryParse(parts[i], NumberStyles.Integer, CultureInfo.InvariantCulture, out result[i]) || result[i] < 0)
            {
                throw new ArgumentException($"--seeds takes comma-separated non-negative integers such as 0,1,2; '{parts[i]}' is not one.");
            }
        }
        return result;
    }
}
