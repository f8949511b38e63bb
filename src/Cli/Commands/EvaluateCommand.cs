using System.CommandLine;
using System.Globalization;
using IlgpuOct.Cli.Rendering;
using IlgpuOct.Defense.Experiments;

namespace IlgpuOct.Cli.Commands;

/// <summary><c>ilgpuoct evaluate</c>: clean and robust accuracy, detector AUROC/AUPRC, risk with and without the detector.</summary>
internal static class EvaluateCommand
{
    public static Command Create()
    {
        var command = new Command("evaluate", "Clean accuracy, accuracy under an attack, detector AUROC/AUPRC and the risk with and without the detector.");
        var model = new Option<string>("--model") { Description = "Checkpoint from `ilgpuoct train`.", Required = true };
        var data = new Option<string>("--data") { Description = "Data set file (attacks its 'test' split).", Required = true };
        var detector = new Option<string?>("--detector") { Description = "Detector file from `detect fit` (default: fit UAD, Mahalanobis and KDE on the train split)." };
        var attack = new Option<string>("--attack") { Description = "fgsm, pgd, cw, adaptive (HFC + density-PGD against each detector) or none.", DefaultValueFactory = _ => "pgd" };
        attack.AcceptOnlyFromAmong("fgsm", "pgd", "cw", "adaptive", "none");
        var eps = new Option<float>("--eps") { Description = "L-infinity budget (pixel units in [0, 1]).", DefaultValueFactory = _ => 0.005f }.InRange(1e-6f, 1f);
        var steps = new Option<int>("--steps") { Description = "PGD / adaptive steps.", DefaultValueFactory = _ => 10 }.InRange(1, 100_000);
        var c = new Option<double>("--c") { Description = "C&W trade-off constant.", DefaultValueFactory = _ => 0.1 }.InRange(1e-12, 1e12);
        var cwSteps = new Option<int>("--cw-steps") { Description = "C&W Adam iterations.", DefaultValueFactory = _ => 100 }.InRange(1, 100_000);
        var images = new Option<int>("--images") { Description = "Test images attacked (a seeded class-balanced sample).", DefaultValueFactory = _ => 200 }.InRange(1, 1_000_000);
        var lambda = new Option<double>("--lambda") { Description = "Adaptive attacks: weight of the feature term.", DefaultValueFactory = _ => 1.0 }.InRange(0.0, 1e6);
        var saveAdv = new Option<string?>("--save-adv") { Description = "Write the adversarial images (safetensors) for `detect score --adv`." };
        var device = CliRunner.DeviceOption();
        var noVerify = CliRunner.NoVerifyOption();
        var seed = new Option<int>("--seed") { DefaultValueFactory = _ => 0, Description = "Seed of the detectors' fits." };
        var json = CliRunner.JsonOption();
        foreach (var option in new Option[] { noVerify, model, data, detector, attack, eps, steps, c, cwSteps, images, lambda, saveAdv, device, seed, json })
        {
            command.Options.Add(option);
        }
        CliRunner.SetAction(command, (parse, token) =>
        {
            using var accelerator = CliRunner.OpenDevice(parse.GetValue(device)!);
            var result = Evaluate.Run(accelerator, new EvaluateOptions
            {
                ModelPath = parse.GetValue(model)!,
                DataPath = parse.GetValue(data)!,
                VerifyData = !parse.GetValue(noVerify),
                DetectorPath = parse.GetValue(detector),
                Attack = parse.GetValue(attack)!,
                Epsilon = parse.GetValue(eps),
                Steps = parse.GetValue(steps),
                CwConstant = parse.GetValue(c),
                CwIterations = parse.GetValue(cwSteps),
                Images = parse.GetValue(images),
                AdaptiveLambda = parse.GetValue(lambda),
                SaveAdversarialPath = parse.GetValue(saveAdv),
                Seed = parse.GetValue(seed),
            }, ProgressView.Lines<string>(CliConsole.Current, s => s), token);
            if (parse.GetValue(json))
            {
                Ui.WriteJson(result);
                return CliRunner.Ok;
            }
            var inv = CultureInfo.InvariantCulture;
            string P(double v) => double.IsNaN(v) ? "-" : v.ToString("P1", inv);
            string F(double? v) => v is { } x && !double.IsNaN(x) ? x.ToString("F3", inv) : "-";
            CliConsole.Current.WriteLine($"clean accuracy: {P(result.CleanTestAccuracy)} (test split), {P(result.CleanSubsetAccuracy)} on the attacked images");
            Ui.Table("attacks", ["attack", "parameter", "images", "accuracy", "successful", "mean L2", "mean Linf"],
                result.Curve.Select(p => (IReadOnlyList<string>)[p.Attack, $"{p.Parameter} {p.Value.ToString("G4", inv)}", p.Attacked.ToString(inv), P(p.Accuracy),
                    p.Successful.ToString(inv), p.MeanL2.ToString("F4", inv), p.MeanLinf.ToString("F4", inv)]));
            Ui.Table("detection (positives: successful adversarial images)", ["attack", "detector", "AUROC", "AUPRC", "mean AUPRC per class", "rejected successful", "clean rejected"],
                result.Detection.Select(d => (IReadOnlyList<string>)[d.Attack, d.Detector, F(d.AurocPooled), F(d.AuprcPooled), F(d.AuprcMean), P(d.SuccessfulRejected), P(d.CleanRejected)]));
            Ui.Table("risk (unit risks 1; r = R / N)", ["attack", "detector", "N_cln_inc", "N_cln_rej", "N_adv_inc", "R", "r"],
                result.Risk.Select(r => (IReadOnlyList<string>)[r.Attack, r.Detector, r.Counts.CleanAcceptedWrong.ToString(inv), r.Counts.CleanRejected.ToString(inv),
                    r.Counts.AdversarialAcceptedWrong.ToString(inv), r.Risk.ToString("F0", inv), r.RiskPerImage.ToString("F3", inv)]));
            return CliRunner.Ok;
        });
        return command;
    }
}
