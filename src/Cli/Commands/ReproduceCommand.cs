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
        var profile = new Option<string>("--profile") { Description = "quick (about 10 min on 2 CPU cores, 64x64 synthetic data, width 8), paper (224x224, width 64, for a GPU) or micro (seconds, for tests).", DefaultValueFactory = _ => "quick" };
        profile.AcceptOnlyFromAmong("quick", "paper", "micro");
        var data = new Option<string?>("--data") { Description = "Data set file (default: generate the synthetic OCT set into the run folder)." };
        var output = new Option<string>("--out") { Description = "Run folder (a rerun with the same folder continues where it stopped).", DefaultValueFactory = _ => "runs/reproduce" };
        var device = CliRunner.DeviceOption();
        var noVerify = CliRunner.NoVerifyOption();
        var seed = new Option<int>("--seed") { Description = "Seed of data, initialisation, batches and attacks.", DefaultValueFactory = _ => 0 };
        foreach (var option in new Option[] { noVerify, profile, data, output, device, seed })
        {
            command.Options.Add(option);
        }
        CliRunner.SetAction(command, (parse, token) =>
        {
            var options = new ReproduceOptions
            {
                Profile = ReproduceProfile.ByName(parse.GetValue(profile)!),
                DataPath = parse.GetValue(data),
                OutputDirectory = parse.GetValue(output)!,
                Seed = parse.GetValue(seed),
                VerifyData = !parse.GetValue(noVerify),
            };
            using var accelerator = CliRunner.OpenDevice(parse.GetValue(device)!);
            var console = CliConsole.Current;
            var clock = Stopwatch.StartNew();
            var stageProgress = ProgressView.Lines<ReproduceProgress>(console, p =>
                string.Create(CultureInfo.InvariantCulture, $"{ProgressView.Elapsed(clock)} {p.Stage}/{p.Stages} {p.What}: {p.Detail}"));
            // A training line at least every 10 seconds, and at each evaluation.
            var trainProgress = ProgressView.Throttled<TrainingProgress>(console, TimeSpan.FromSeconds(10), p => p.Phase != "train", p =>
                string.Create(CultureInfo.InvariantCulture, $"{ProgressView.Elapsed(clock)}   epoch {p.Epoch}/{p.Epochs} step {p.Step}/{p.TotalSteps} {p.Phase} loss {p.Loss:F4} acc {p.Accuracy:P1} {p.ImagesPerSecond:F0} img/s"));
            var results = Reproduce.Run(accelerator, options, stageProgress, trainProgress, token);
            string folder = Path.GetFullPath(options.OutputDirectory);
            console.WriteLine(File.ReadAllText(Path.Combine(folder, Reproduce.ResultsMarkdown)));
            console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"wrote {Path.Combine(folder, Reproduce.ResultsMarkdown)} and {Reproduce.ResultsJson} in {results.WallSeconds:F0} s"));
            return CliRunner.Ok;
        });
        return command;
    }
}
