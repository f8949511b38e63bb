using System.CommandLine;
using System.Globalization;
using IlgpuOct.Cli.Rendering;
using IlgpuOct.Defense.Detection;
using IlgpuOct.Defense.Density;

namespace IlgpuOct.Cli.Commands;

/// <summary><c>ilgpuoct detect fit|score</c>: adversarial-image detectors on a model's penultimate features.</summary>
internal static class DetectCommand
{
    public static Command Create()
    {
        var command = new Command("detect", "Fit an adversarial detector (UAD, Mahalanobis, KDE) on a model's penultimate features, or score images with one.");
        command.Subcommands.Add(Fit());
        command.Subcommands.Add(Score());
        return command;
    }

    private static Command Fit()
    {
        var command = new Command("fit", "Fit on the clean 'train' split; threshold on the 'val' split (else train) at the given clean rejection rate; write a safetensors detector file.");
        var model = new Option<string>("--model") { Description = "Checkpoint (.safetensors) from `ilgpuoct train`.", Required = true };
        var data = new Option<string>("--data") { Description = "Data set file.", Required = true };
        var detector = new Option<string>("--detector") { Description = "uad (per-class GMM), mahalanobis (tied covariance) or kde.", DefaultValueFactory = _ => "uad" };
        detector.AcceptOnlyFromAmong("uad", "mahalanobis", "kde");
        var output = new Option<string>("--out") { Description = "Detector file to write.", Required = true };
        var rate = new Option<double>("--rejection") { Description = "Share of clean validation images the threshold rejects.", DefaultValueFactory = _ => 0.05 }.InRange(0.0, 0.99);
        var components = new Option<int>("--components") { Description = "uad: components per class (capped at N_c / (D + 1)).", DefaultValueFactory = _ => 2 }.InRange(1, 64);
        var covariance = new Option<string>("--covariance") { Description = "uad: full, diagonal, tied or spherical.", DefaultValueFactory = _ => "full" };
        covariance.AcceptOnlyFromAmong("full", "diagonal", "tied", "spherical");
        var reg = new Option<double>("--reg") { Description = "uad: reg_covar relative to the class's mean feature variance.", DefaultValueFactory = _ => 1e-2 }.InRange(1e-12, 1e6);
        var bandwidth = new Option<double?>("--bandwidth") { Description = "kde: kernel bandwidth (default: Scott's rule)." }.InRange(1e-12, 1e12);
        var device = CliRunner.DeviceOption();
        var seed = new Option<int>("--seed") { DefaultValueFactory = _ => 0, Description = "Seed of the k-means start / KDE subset." };
        foreach (var option in new Option[] { model, data, detector, output, rate, components, covariance, reg, bandwidth, device, seed })
        {
            command.Options.Add(option);
        }
        CliRunner.SetAction(command, (parse, token) =>
        {
            using var accelerator = CliRunner.OpenDevice(parse.GetValue(device)!);
            var fitted = DetectorWorkflow.Fit(accelerator, new DetectorFitOptions
            {
                ModelPath = parse.GetValue(model)!,
                DataPath = parse.GetValue(data)!,
                Detector = parse.GetValue(detector)!,
                CleanRejectionRate = parse.GetValue(rate),
                Components = parse.GetValue(components),
                CovarianceType = Enum.Parse<CovarianceType>(parse.GetValue(covariance)!, ignoreCase: true),
                RelativeRegularization = parse.GetValue(reg),
                Bandwidth = parse.GetValue(bandwidth),
                Seed = parse.GetValue(seed),
            }, token);
            string path = parse.GetValue(output)!;
            fitted.Save(path);
            CliConsole.Current.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{fitted.Name}: {fitted.Classes} classes, {fitted.Features} features, threshold {fitted.Threshold:G6} ({fitted.CleanRejectionRate:P1} clean rejection); wrote {path}"));
            return CliRunner.Ok;
        });
        return command;
    }

    private static Command Score()
    {
        var command = new Command("score", "Score images with a detector (higher = more normal; rejected below the threshold).");
        var detector = new Option<string>("--detector") { Description = "Detector file from `detect fit`.", Required = true };
        var model = new Option<string>("--model") { Description = "The checkpoint the detector was fitted with.", Required = true };
        var data = new Option<string?>("--data") { Description = "Data set file (scores --split)." };
        var split = new Option<string>("--split") { Description = "Split of --data to score.", DefaultValueFactory = _ => "test" };
        var adv = new Option<string?>("--adv") { Description = "Adversarial images: an `ilgpuoct attack` output folder or adversarial.safetensors ('adv' (N, C, H, W), optional 'labels'), or `evaluate --save-adv` output." };
        var device = CliRunner.DeviceOption();
        var json = CliRunner.JsonOption();
        foreach (var option in new Option[] { detector, model, data, split, adv, device, json })
        {
            command.Options.Add(option);
        }
        CliRunner.SetAction(command, (parse, token) =>
        {
            using var accelerator = CliRunner.OpenDevice(parse.GetValue(device)!);
            var summary = DetectorWorkflow.Score(accelerator, parse.GetValue(detector)!, parse.GetValue(model)!, parse.GetValue(data), parse.GetValue(split)!, parse.GetValue(adv), token);
            if (parse.GetValue(json))
            {
                Ui.WriteJson(summary);
                return CliRunner.Ok;
            }
            var inv = CultureInfo.InvariantCulture;
            Ui.Table("detector scores", ["detector", "images", "rejected", "rejected %", "threshold", "mean score", "accuracy"],
                [[summary.Detector, summary.Images.ToString(inv), summary.Rejected.ToString(inv), (summary.Rejected / (double)summary.Images).ToString("P1", inv),
                  summary.Threshold.ToString("G6", inv), summary.MeanScore.ToString("G6", inv), double.IsNaN(summary.Accuracy) ? "-" : summary.Accuracy.ToString("P1", inv)]]);
            return CliRunner.Ok;
        });
        return command;
    }
}
