using System.CommandLine;
using IlgpuOct.Cli.Rendering;
using IlgpuOct.Defense.Verification;
using IlgpuOct.Nn.IO;

namespace IlgpuOct.Cli.Commands;

/// <summary><c>ilgpuoct verify --golden DIR</c>: the golden checks of the test suite on any device (for GPU machines, where xunit cannot run).</summary>
internal static class VerifyCommand
{
    public static Command Create()
    {
        var command = new Command("verify", "Compare the operators with the golden PyTorch tensors (ops.safetensors) on a device, as the golden tests do.");
        var golden = new Option<string>("--golden") { Description = "Folder of the golden files (the tests' ILGPUOCT_GOLDEN).", Required = true };
        var device = CliRunner.DeviceOption("auto");
        var json = CliRunner.JsonOption();
        command.Options.Add(golden);
        command.Options.Add(device);
        command.Options.Add(json);
        CliRunner.SetAction(command, (parse, token) =>
        {
            string folder = parse.GetValue(golden)!;
            string path = Path.Combine(folder, GoldenOperators.FileName);
            if (!File.Exists(path))
            {
                throw new FileNotFoundException($"'{path}' is missing: --golden must name the folder of the golden files (ops.safetensors, ...).", path);
            }
            var ops = SafeTensorFile.Read(path);
            using var acc = CliRunner.OpenDevice(parse.GetValue(device)!);
            var rows = new List<Row>();
            foreach (var check in GoldenOperators.All(ops))
            {
                token.ThrowIfCancellationRequested();
                try
                {
                    var result = check.Run(acc);
                    rows.Add(new Row(check.Name, result.Passed, result.Shape,
                        result.Comparisons.Select(c => c.RelativeL2).Where(double.IsFinite).DefaultIfEmpty(double.PositiveInfinity).Max() is var worst && double.IsFinite(worst) ? worst : null, result.Passed ? "" : string.Join("; ", result.Comparisons.Where(c => !c.Passed))));
                }
                catch (Exception e) when (e is InvalidDataException or KeyNotFoundException or ArgumentException or InvalidOperationException)
                {
                    rows.Add(new Row(check.Name, false, "", null, e.Message));
                }
            }
            var notCovered = new[] { "resnet18.safetensors", "attacks.safetensors", "gmm.safetensors", "metrics.safetensors" }
                .Where(f => File.Exists(Path.Combine(folder, f))).ToArray();
            int failed = rows.Count(r => !r.Passed);
            if (parse.GetValue(json))
            {
                Ui.WriteJson(new { device = acc.Id, device_name = acc.Name, checks = rows, passed = rows.Count - failed, failed, not_checked_here = notCovered });
            }
            else
            {
                Ui.Table($"golden checks on {acc.Name}", ["check", "ok", "shape", "max rel L2", "problem"],
                    rows.Select(r => (IReadOnlyList<string>)[r.Check, r.Passed ? "yes" : "NO", r.Shape, r.MaxRelativeL2?.ToString("G3", System.Globalization.CultureInfo.InvariantCulture) ?? "-", r.Problem]));
                CliConsole.Current.WriteLine($"{rows.Count - failed}/{rows.Count} golden checks passed on {acc.Id}" + (notCovered.Length > 0 ? $"; not checked by verify (xunit golden tests only): {string.Join(", ", notCovered)}" : ""));
            }
            return failed > 0 ? CliRunner.Failed : CliRunner.Ok;
        });
        return command;
    }

    private sealed record Row(string Check, bool Passed, string Shape, double? MaxRelativeL2, string Problem);
}
