using System.CommandLine;
using System.Globalization;
using IlgpuOct.Cli.Rendering;
using IlgpuOct.Defense.Training;
using IlgpuOct.Nn.Training;

namespace IlgpuOct.Cli.Commands;

/// <summary><c>ilgpuoct train</c>: train a ResNet-18 on a data set file; Ctrl+C writes a checkpoint and stops cleanly.</summary>
internal static class TrainCommand
{
    public static Command Create()
    {
        var command = new Command("train", "Train a ResNet-18 (SGD, momentum 0.9, weight decay 5e-4) on a data set file; writes metrics.jsonl and a checkpoint per epoch.");
        var data = new Option<string>("--data") { Description = "Data set file (from `ilgpuoct data import` or `data generate`).", Required = true };
        var epochs = new Option<int>("--epochs") { Description = "Epochs to train.", DefaultValueFactory = _ => 10 }.InRange(1, 100_000);
        var batch = new Option<int>("--batch") { Description = "Mini-batch size.", DefaultValueFactory = _ => 64 }.InRange(2, 65_536);
        var lr = new Option<float>("--lr") { Description = "Base learning rate.", DefaultValueFactory = _ => 0.05f }.InRange(1e-9f, 1e3f);
        var device = CliRunner.DeviceOption();
        var precision = CliRunner.PrecisionOption();
        var noVerify = CliRunner.NoVerifyOption();
        var output = new Option<string>("--out") { Description = "Run folder: config.json, metrics.jsonl, checkpoints.", Required = true };
        var resume = new Option<bool>("--resume") { Description = "Continue the run in --out from its last checkpoint (same options)." };
        var mode = new Option<string>("--mode") { Description = "Training mode: nt (cross-entropy), gce (guided complement entropy), at (half FGSM batches), ssat (at + lambda x FGSM on pseudo-labelled unlabeled images).", DefaultValueFactory = _ => "nt" };
        mode.AcceptOnlyFromAmong([.. DefenseTrainingModes.All]);
        var unlabeled = new Option<string?>("--unlabeled") { Description = "ssat: data set file of unlabeled images (its 'unlabeled' split, else 'train'); default: the --data file's 'unlabeled' split." };
        var lambda = new Option<float>("--lambda") { Description = "ssat: weight of the unlabeled loss.", DefaultValueFactory = _ => 5f }.InRange(0f, 1e6f);
        var warmup = new Option<long>("--lambda-warmup") { Description = "ssat: steps over which lambda ramps up linearly (0 = full lambda from the start, as the paper).", DefaultValueFactory = _ => 0 }.InRange(0L, long.MaxValue);
        var threshold = new Option<float>("--pseudo-threshold") { Description = "ssat: only unlabeled images predicted with at least this softmax probability get a pseudo-label term (0 = all, as the paper).", DefaultValueFactory = _ => 0f }.InRange(0f, 1f);
        var teacher = new Option<string?>("--teacher") { Description = "ssat: checkpoint of a model trained on the labeled data (e.g. an nt run's last.safetensors) whose fixed predictions are the pseudo-labels (robust self-training, Carmon et al. 2019); default: the model being trained labels them at each step, as the paper." };
        var normalizeLambda = new Option<bool>("--normalize-lambda") { Description = "ssat: divide the loss by 1 + lambda, so a step is as large as an AT step (default: L_sup + lambda L_unsup, as the paper)." };
        var unlabeledShare = new Option<float>("--unlabeled-per-labeled") { Description = "ssat: unlabeled images per step as a share of the labeled batch.", DefaultValueFactory = _ => 1f }.InRange(1e-3f, 16f);
        var randomStart = new Option<bool>("--fgsm-random-start") { Description = "at/ssat: FGSM from a uniform random start with step 1.25 eps (Wong et al. 2020)." };
        var seed = new Option<int>("--seed") { Description = "Seed of the initialisation and the batch order.", DefaultValueFactory = _ => 0 };
        var width = new Option<int>("--width") { Description = "Base width of the ResNet-18 (64 = torchvision).", DefaultValueFactory = _ => 64 }.InRange(1, 4096);
        var schedule = new Option<string>("--schedule") { Description = "cosine (per step) or step (x0.1 after each third of the steps).", DefaultValueFactory = _ => "cosine" };
        schedule.AcceptOnlyFromAmong("cosine", "step");
        var pretrained = PretrainedOption.Create();
        foreach (var option in new Option[] { noVerify, data, epochs, batch, lr, device, precision, output, resume, mode, seed, width, schedule, unlabeled, lambda, warmup, threshold, teacher, normalizeLambda, unlabeledShare, randomStart, pretrained })
        {
            command.Options.Add(option);
        }
        CliRunner.SetAction(command, (parse, token) =>
        {
            var options = new TrainingOptions
            {
                DataPath = parse.GetValue(data)!,
                OutputDirectory = parse.GetValue(output)!,
                Epochs = parse.GetValue(epochs),
                BatchSize = parse.GetValue(batch),
                LearningRate = parse.GetValue(lr),
                Resume = parse.GetValue(resume),
                Mode = parse.GetValue(mode)!,
                Seed = parse.GetValue(seed),
                Width = parse.GetValue(width),
                Pretrained = PretrainedOption.Resolve(parse, pretrained),
                Schedule = parse.GetValue(schedule)!,
                VerifyData = !parse.GetValue(noVerify),
                ModeFactory = DefenseTrainingModes.Factory(parse.GetValue(mode)!, parse.GetValue(data)!, parse.GetValue(unlabeled),
                    new AdversarialTrainingOptions { Lambda = parse.GetValue(lambda), LambdaWarmupSteps = parse.GetValue(warmup), PseudoLabelThreshold = parse.GetValue(threshold),
                        PseudoLabelTeacher = parse.GetValue(teacher) is { } t ? Path.GetFullPath(t) : null, NormalizeByLambda = parse.GetValue(normalizeLambda),
                        UnlabeledPerLabeled = parse.GetValue(unlabeledShare), RandomStart = parse.GetValue(randomStart) }, parse.GetValue(seed)),
            };
            options.Validate();
            using var accelerator = CliRunner.OpenDevice(parse.GetValue(device)!, parse.GetValue(precision)!);
            var console = CliConsole.Current;
            // A line at least every 10 seconds, and at each evaluation (the end of an epoch).
            var lines = ProgressView.Throttled<TrainingProgress>(console, TimeSpan.FromSeconds(10), p => p.Phase != "train", p => $"step {p.Step}/{p.TotalSteps} {Describe(p)}");
            var result = ProgressView.WithBar(console, p => (p.Step, p.TotalSteps, Describe(p)), lines, progress => Trainer.Run(accelerator, options, progress, token));
            foreach (string notice in result.Notices)
            {
                CliConsole.Current.ErrorLine(notice);
            }
            if (result.Epochs.Count > 0)
            {
                Ui.Table("epochs", ["epoch", "train loss", "train acc", "test acc", "images/s", "lr", "seconds"],
                result.Epochs.Select(m => (IReadOnlyList<string>)
                [
                    m.Epoch.ToString(CultureInfo.InvariantCulture), F(m.TrainLoss, "F4"), F(m.TrainAccuracy, "P2"), F(m.TestAccuracy, "P2"),
                    F(m.ImagesPerSecond, "F1"), F(m.Lr, "G4"), F(m.Seconds, "F1"),
                ]));
            }
            CliConsole.Current.WriteLine($"checkpoint: {result.CheckpointPath}");
            return result.Cancelled ? CliRunner.Cancelled : CliRunner.Ok;
        });
        return command;
    }

    private static string F(double value, string format) => value.ToString(format, CultureInfo.InvariantCulture);

    private static string Describe(TrainingProgress p) => string.Create(CultureInfo.InvariantCulture,
        $"epoch {p.Epoch}/{p.Epochs} {p.Phase} loss {p.Loss:F4} acc {p.Accuracy:P1} {p.ImagesPerSecond:F1} img/s left {Left(p.Remaining)}");

    private static string Left(TimeSpan? remaining) =>
        remaining is { } r ? (r.TotalHours >= 1 ? $"{(int)r.TotalHours}h{r.Minutes:D2}m" : $"{r.Minutes}m{r.Seconds:D2}s") : "-";
}
