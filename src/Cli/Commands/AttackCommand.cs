using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using IlgpuOct.Cli.Rendering;
using IlgpuOct.Defense.Attacks;
using IlgpuOct.Defense.Density;
using IlgpuOct.Nn.Checkpoints;
using IlgpuOct.Nn.Data;

namespace IlgpuOct.Cli.Commands;

/// <summary><c>ilgpuoct attack</c>: white-box attacks (FGSM, PGD, C&amp;W L2, adaptive HFC) on a checkpoint over a data set split.</summary>
internal static class AttackCommand
{
    public static Command Create()
    {
        var command = new Command("attack", "Attack a trained model on a data set split and write the adversarial set, per-image results and a summary.");
        var model = new Option<string>("--model") { Description = "Checkpoint (.safetensors) written by training.", Required = true };
        var data = new Option<string>("--data") { Description = "Data set file.", Required = true };
        var split = new Option<string>("--split") { Description = "Split to attack.", DefaultValueFactory = _ => "test" };
        var attack = new Option<string>("--attack") { Description = "fgsm | pgd | cw | hfc", DefaultValueFactory = _ => "pgd" };
        attack.AcceptOnlyFromAmong("fgsm", "pgd", "cw", "hfc");
        var eps = new Option<float>("--eps") { Description = "L-infinity budget in [0, 1] pixel units (fgsm, pgd, hfc).", DefaultValueFactory = _ => 0.005f }.InRange(1e-6f, 1f);
        var steps = new Option<int>("--steps") { Description = "PGD/HFC steps.", DefaultValueFactory = _ => 10 }.InRange(1, 100_000);
        var stepSize = new Option<float?>("--step-size") { Description = "PGD/HFC step size (default 2.5 eps / steps)." }.InRange(1e-6f, 1f);
        var randomStart = new Option<bool>("--random-start") { Description = "Start PGD/HFC uniformly inside the eps ball." };
        var restarts = new Option<int>("--restarts") { Description = "PGD/HFC runs per image (needs --random-start); the first success is kept.", DefaultValueFactory = _ => 1 }.InRange(1, 1000);
        var c = new Option<double>("--c") { Description = "C&W initial trade-off constant.", DefaultValueFactory = _ => 0.01 }.InRange(1e-12, 1e12);
        var kappa = new Option<float>("--kappa") { Description = "C&W confidence margin.", DefaultValueFactory = _ => 0f }.InRange(0f, 1e6f);
        var binarySteps = new Option<int>("--binary-steps") { Description = "C&W binary-search rounds over c.", DefaultValueFactory = _ => 9 }.InRange(1, 100);
        var iterations = new Option<int>("--iterations") { Description = "C&W Adam iterations per round.", DefaultValueFactory = _ => 100 }.InRange(1, 100_000);
        var learningRate = new Option<double>("--lr") { Description = "C&W Adam learning rate.", DefaultValueFactory = _ => 0.01 }.InRange(1e-9, 1e3);
        var targeted = new Option<bool>("--targeted") { Description = "Targeted attack (default target: the most likely other class)." };
        var target = new Option<int?>("--target") { Description = "Target class for every image (with --targeted); images of that class go to the next class." }.InRange(0, 65_535);
        var lambda = new Option<double>("--lambda") { Description = "HFC weight of the hierarchical feature constraint.", DefaultValueFactory = _ => 1.0 }.InRange(0.0, 1e6);
        var gmmSplit = new Option<string>("--gmm-split") { Description = "HFC: split whose correctly classified clean images fit the per-class, per-stage mixtures.", DefaultValueFactory = _ => "train" };
        var gmmLimit = new Option<int>("--gmm-limit") { Description = "HFC: at most this many images to fit the mixtures (0 = all).", DefaultValueFactory = _ => 2000 }.InRange(0, 10_000_000);
        var gmmComponents = new Option<int>("--gmm-components") { Description = "HFC: Gaussian components per class and stage.", DefaultValueFactory = _ => 1 }.InRange(1, 64);
        var gmmCovariance = new Option<string>("--gmm-covariance") { Description = "HFC: full | diag | tied | spherical.", DefaultValueFactory = _ => "full" };
        gmmCovariance.AcceptOnlyFromAmong("full", "diag", "tied", "spherical");
        var batchSize = new Option<int>("--batch-size") { Description = "Images per batch.", DefaultValueFactory = _ => 32 }.InRange(1, 4096);
        var limit = new Option<int>("--limit") { Description = "Attack only the first N images of the split (0 = all).", DefaultValueFactory = _ => 0 }.InRange(0, int.MaxValue);
        var seed = new Option<int>("--seed") { Description = "Seed of the random starts and mixture fits.", DefaultValueFactory = _ => 0 };
        var device = CliRunner.DeviceOption();
        var noVerify = CliRunner.NoVerifyOption();
        var json = CliRunner.JsonOption();
        var output = new Option<string>("--out") { Description = "Output folder.", Required = true };
        foreach (var option in new Option[] { model, data, split, attack, eps, steps, stepSize, randomStart, restarts, c, kappa, binarySteps, iterations, learningRate,
                     targeted, target, lambda, gmmSplit, gmmLimit, gmmComponents, gmmCovariance, batchSize, limit, seed, device, noVerify, json, output })
        {
            command.Options.Add(option);
        }
        CliRunner.SetAction(command, (parse, token) =>
        {
            var settings = new AttackSettings
            {
                Attack = parse.GetValue(attack) switch
                {
                    "fgsm" => AttackKind.Fgsm,
                    "cw" => AttackKind.Cw,
                    "hfc" => AttackKind.Hfc,
                    _ => AttackKind.Pgd,
                },
                Epsilon = parse.GetValue(eps),
                Steps = parse.GetValue(steps),
                StepSize = parse.GetValue(stepSize),
                RandomStart = parse.GetValue(randomStart),
                Restarts = parse.GetValue(restarts),
                C = parse.GetValue(c),
                Kappa = parse.GetValue(kappa),
                BinarySearchSteps = parse.GetValue(binarySteps),
                CwIterations = parse.GetValue(iterations),
                LearningRate = parse.GetValue(learningRate),
                Targeted = parse.GetValue(targeted),
                Target = parse.GetValue(target),
                Lambda = parse.GetValue(lambda),
                GmmComponents = parse.GetValue(gmmComponents),
                GmmCovariance = parse.GetValue(gmmCovariance) switch
                {
                    "diag" => CovarianceType.Diagonal,
                    "tied" => CovarianceType.Tied,
                    "spherical" => CovarianceType.Spherical,
                    _ => CovarianceType.Full,
                },
                BatchSize = parse.GetValue(batchSize),
                Seed = parse.GetValue(seed),
            };
            int imageLimit = parse.GetValue(limit);
            if (imageLimit < 0)
            {
                throw new ArgumentException($"--limit must be 0 (all) or positive; got {imageLimit}.");
            }
            string modelPath = parse.GetValue(model)!;
            string dataPath = parse.GetValue(data)!;
            string splitName = parse.GetValue(split)!;
            string outDir = parse.GetValue(output)!;

            using var accelerator = CliRunner.OpenDevice(parse.GetValue(device)!);
            var (network, _) = Checkpoint.Open(accelerator, modelPath);
            using var ownedNetwork = network;
            using var dataset = DatasetFile.Open(dataPath, verifyChecksum: !parse.GetValue(noVerify));
            var attackSplit = dataset.Split(splitName);
            DatasetSplit? fitSplit = settings.Attack == AttackKind.Hfc ? dataset.Split(parse.GetValue(gmmSplit)!) : null;

            var clock = Stopwatch.StartNew();
            var progress = new Progress<AttackSetProgress>(p =>
            {
                if (p.Step is null)
                {
                    CliConsole.Current.ErrorLine($"batch {p.Batch}/{p.Batches}: {p.Images} images attacked ({clock.Elapsed.TotalSeconds:F1} s)");
                }
            });
            var result = AttackSetRunner.Run(network, attackSplit, settings, imageLimit, fitSplit, parse.GetValue(gmmLimit), progress, token);
            var summary = result.Summarise(accelerator.ToString(), Path.GetFullPath(modelPath), Path.GetFullPath(dataPath), splitName, clock.Elapsed.TotalSeconds);
            result.Write(outDir, summary);

            if (parse.GetValue(json))
            {
                Ui.WriteJson(summary);
                return CliRunner.Ok;
            }
            var inv = CultureInfo.InvariantCulture;
            Ui.Table($"{summary.Attack} on {summary.Images} '{splitName}' images ({accelerator.Id}, {summary.Seconds:F1} s)", ["measure", "value"],
            [
                ["success rate", summary.SuccessRate.ToString("P2", inv)],
                ["success rate (clean-correct)", summary.SuccessRateOnCorrect.ToString("P2", inv)],
                ["clean accuracy", summary.CleanAccuracy.ToString("P2", inv)],
                ["robust accuracy", summary.RobustAccuracy.ToString("P2", inv)],
                ["L2 mean / median", $"{summary.MeanL2.ToString("G4", inv)} / {summary.MedianL2.ToString("G4", inv)}"],
                ["Linf mean / median", $"{summary.MeanLinf.ToString("G4", inv)} / {summary.MedianLinf.ToString("G4", inv)}"],
            ]);
            CliConsole.Current.WriteLine($"wrote {Path.Combine(outDir, "adversarial.safetensors")}, per_image.csv, summary.json");
            return CliRunner.Ok;
        });
        return command;
    }
}
