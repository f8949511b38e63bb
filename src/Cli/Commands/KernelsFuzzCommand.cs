using System.CommandLine;
using IlgpuOct.Cli.Rendering;
using IlgpuOct.Kernels.Fuzzing;

namespace IlgpuOct.Cli.Commands;

/// <summary>
/// <c>ilgpuoct kernels fuzz</c>: differential fuzzing of the translator (random kernels on cpu-kernels
/// and cuda-host, bit for bit); writes minimised reproducers of every disagreement.
/// </summary>
internal static class KernelsFuzzCommand
{
    public static Command Create()
    {
        var command = new Command("fuzz", "Run random kernels through the generator on cpu-kernels and cuda-host; outputs must agree bit for bit (or the generator must refuse them).");
        var count = new Option<int>("--count") { Description = "Programs to run.", DefaultValueFactory = _ => 100 }.InRange(1, 10_000_000);
        var seed = new Option<long>("--seed") { Description = "Seed of the first program (program i uses seed + i).", DefaultValueFactory = _ => 1 };
        var output = new Option<string?>("--out") { Description = "Folder for minimised reproducers (.cs and .cu) of every disagreement." };
        var without = new Option<string[]>("--without") { Description = $"Leave constructs out: {string.Join(", ", Enum.GetNames<FuzzFeatures>().Where(n => n is not "None" and not "All"))}.", AllowMultipleArgumentsPerToken = true };
        var nvrtcEvery = new Option<int>("--nvrtc-every") { Description = "Compile every Nth program with NVRTC too (0: never).", DefaultValueFactory = _ => 10 }.InRange(0, int.MaxValue);
        var noMinimise = new Option<bool>("--no-minimise") { Description = "Report disagreements as generated, without shrinking them." };
        var show = new Option<bool>("--show") { Description = "Print the programs' C# source and their CUDA C (or the generator's diagnostics) instead of running them." };
        var json = CliRunner.JsonOption();
        foreach (var option in new Option[] { count, seed, output, without, nvrtcEvery, noMinimise, show, json })
        {
            command.Options.Add(option);
        }
        CliRunner.SetAction(command, (parse, token) =>
        {
            int programs = parse.GetValue(count);
            if (programs < 1)
            {
                CliConsole.Current.ErrorLine("error: --count must be at least 1.");
                return CliRunner.BadInput;
            }
            var features = FuzzFeatures.All;
            foreach (var name in parse.GetValue(without) ?? [])
            {
                if (!Enum.TryParse<FuzzFeatures>(name, ignoreCase: true, out var feature) || feature is FuzzFeatures.None or FuzzFeatures.All)
                {
                    CliConsole.Current.ErrorLine($"error: unknown --without {name}; use one of {string.Join(", ", Enum.GetNames<FuzzFeatures>().Where(n => n is not "None" and not "All"))}.");
                    return CliRunner.BadInput;
                }
                features &= ~feature;
            }
            if (parse.GetValue(show))
            {
                for (int i = 0; i < programs; i++)
                {
                    var program = FuzzProgramGenerator.Generate(parse.GetValue(seed) + i, features);
                    CliConsole.Current.WriteLine(program.Source);
                    CliConsole.Current.WriteLine(DifferentialFuzzer.Translate(program));
                }
                return CliRunner.Ok;
            }
            using var fuzzer = new DifferentialFuzzer();
            var options = new FuzzOptions(programs, parse.GetValue(seed), features, parse.GetValue(output), parse.GetValue(nvrtcEvery), !parse.GetValue(noMinimise));
            bool quiet = parse.GetValue(json);
            var progress = new Progress<FuzzProgress>(p =>
            {
                if (!quiet && p.Last.IsDisagreement)
                {
                    CliConsole.Current.ErrorLine($"{p.Last.Verdict} seed {p.Last.Program.Seed}: {p.Last.Detail}");
                }
                else if (!quiet && p.Done % 25 == 0)
                {
                    CliConsole.Current.ErrorLine($"{p.Done}/{p.Total} programs");
                }
            });
            var summary = fuzzer.Run(options, progress, token);
            if (quiet)
            {
                Ui.WriteJson(new
                {
                    programs = summary.Programs,
                    seconds = summary.Elapsed.TotalSeconds,
                    programs_per_minute = summary.ProgramsPerMinute,
                    nvrtc_checked = summary.NvrtcChecked,
                    verdicts = summary.Counts.ToDictionary(kv => kv.Key.ToString(), kv => kv.Value),
                    refusals = summary.Refusals,
                    disagreements = summary.Disagreements.Select(d => new { seed = d.Program.Seed, verdict = d.Verdict.ToString(), detail = d.Detail, statements = d.Program.StatementCount }),
                    reproducers = summary.ReproducerFiles,
                });
            }
            else
            {
                Ui.Table($"Fuzzed {summary.Programs} programs in {summary.Elapsed.TotalSeconds:F1} s ({summary.ProgramsPerMinute:F1} programs/minute; NVRTC compiled {summary.NvrtcChecked}{(fuzzer.HasNvrtc ? "" : ", NVRTC not installed")})",
                    ["verdict", "programs"],
                    summary.Counts.Select(kv => (IReadOnlyList<string>)[kv.Key.ToString(), kv.Value.ToString()]));
                foreach (var (reason, n) in summary.Refusals.OrderByDescending(kv => kv.Value))
                {
                    CliConsole.Current.WriteLine($"refused {n}x: {reason}");
                }
                foreach (var d in summary.Disagreements)
                {
                    CliConsole.Current.WriteLine($"{d.Verdict} seed {d.Program.Seed} ({d.Program.StatementCount} statements after minimising): {d.Detail}");
                }
                foreach (var file in summary.ReproducerFiles)
                {
                    CliConsole.Current.WriteLine($"reproducer: {file}");
                }
            }
            return summary.Disagreements.Count == 0 ? CliRunner.Ok : CliRunner.Failed;
        });
        return command;
    }
}
