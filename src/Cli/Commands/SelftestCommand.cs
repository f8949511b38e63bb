using System.CommandLine;
using System.Diagnostics;
using IlgpuOct.Cli.Rendering;
using IlgpuOct.Kernels;

namespace IlgpuOct.Cli.Commands;

/// <summary><c>ilgpuoct selftest</c>: every kernel against its CPU implementation on cuda or cpu-kernels.</summary>
internal static class SelftestCommand
{
    public static Command Create()
    {
        var command = new Command("selftest", "Run every kernel self-test (seeded random inputs, compared with the CPU implementation) on a device.");
        var device = new Option<string?>("--device") { Description = "cuda | cpu-kernels | cuda-host (default: cuda when available, else cpu-kernels)" };
        device.AcceptOnlyFromAmong("cuda", "cpu-kernels", "cuda-host");
        var seed = new Option<int>("--seed") { Description = "Seed of the random inputs.", DefaultValueFactory = _ => 1234 };
        var filter = new Option<string?>("--filter") { Description = "Only kernels whose name contains this text (case-insensitive)." };
        var json = CliRunner.JsonOption();
        command.Options.Add(device);
        command.Options.Add(seed);
        command.Options.Add(filter);
        command.Options.Add(json);
        CliRunner.SetAction(command, (parse, token) =>
        {
            using var accelerator = OpenDevice(parse.GetValue(device));
            string? text = parse.GetValue(filter);
            var cases = SelfTestCatalog.Discover([.. KernelAssemblies.All()])
                .Where(c => string.IsNullOrEmpty(text) || c.Kernel.Contains(text, StringComparison.OrdinalIgnoreCase))
                .ToArray();
            if (cases.Length == 0)
            {
                CliConsole.Current.ErrorLine(string.IsNullOrEmpty(text)
                    ? "error: no self-tests were found ([SelfTests] methods in the Kernels, Nn and Defense assemblies)."
                    : $"error: no self-test matches --filter {text}; `ilgpuoct kernels list` shows the kernel names.");
                return CliRunner.BadInput;
            }
            int seedValue = parse.GetValue(seed);
            var rows = new List<Row>();
            foreach (var c in cases)
            {
                token.ThrowIfCancellationRequested();
                var start = Stopwatch.GetTimestamp();
                try
                {
                    var result = c.Run(accelerator, seedValue);
                    // JSON has no NaN or infinity; a non-finite error is reported as null with a note.
                    bool finite = double.IsFinite(result.MaxAbsError);
                    rows.Add(new Row(c.Kernel, c.Shape, finite ? result.MaxAbsError : null, result.Tolerance, result.Passed, Stopwatch.GetElapsedTime(start).TotalSeconds,
                        finite ? null : "the kernel produced NaN or infinity, or an output of the wrong length"));
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    rows.Add(new Row(c.Kernel, c.Shape, null, null, false, Stopwatch.GetElapsedTime(start).TotalSeconds, e.Message));
                }
                if (!parse.GetValue(json) && !Ui.Interactive)
                {
                    var r = rows[^1];
                    CliConsole.Current.ErrorLine($"{(r.Passed ? "pass" : "FAIL")} {r.Kernel} {r.Shape}");
                }
            }
            var failed = rows.Where(r => !r.Passed).ToArray();
            if (parse.GetValue(json))
            {
                Ui.WriteJson(new { device = accelerator.Id, device_name = accelerator.Name, seed = seedValue, cases = rows, failed = failed.Length });
            }
            else
            {
                Ui.Table(
                    $"Self-tests on {accelerator}",
                    ["kernel", "shape", "max abs error", "tolerance", "pass", "seconds"],
                    rows.Select(r => (IReadOnlyList<string>)
                    [
                        r.Kernel, r.Shape, r.MaxAbsError?.ToString("G3") ?? "error", r.Tolerance?.ToString("G3") ?? "-",
                        r.Passed ? "yes" : "NO", $"{r.Seconds:F2}",
                    ]));
                CliConsole.Current.WriteLine($"{rows.Count - failed.Length}/{rows.Count} passed on {accelerator.Id}");
            }
            foreach (var f in failed.Where(f => f.Error is not null))
            {
                CliConsole.Current.ErrorLine($"error: {f.Kernel} {f.Shape}: {f.Error}");
            }
            if (failed.Length > 0)
            {
                CliConsole.Current.ErrorLine($"error: {failed.Length} self-tests failed: {string.Join(", ", failed.Select(f => $"{f.Kernel} {f.Shape}").Distinct())}");
                return CliRunner.Failed;
            }
            return CliRunner.Ok;
        });
        return command;
    }

    private static Accelerator OpenDevice(string? name)
    {
        if (name is not null)
        {
            return CliRunner.OpenDevice(name);
        }
        if (CudaProbe.TryOpen(out var cuda, out string reason))
        {
            CliConsole.Current.ErrorLine($"device: cuda ({cuda!.Name}), the default when available");
            return cuda;
        }
        CliConsole.Current.ErrorLine($"device: cpu-kernels, because cuda is not available: {reason}");
        return new HostAccelerator(AcceleratorKind.CpuKernels);
    }

    private sealed record Row(string Kernel, string Shape, double? MaxAbsError, double? Tolerance, bool Passed, double Seconds, string? Error);
}
