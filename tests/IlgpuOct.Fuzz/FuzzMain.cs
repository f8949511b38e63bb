using System.Globalization;

namespace IlgpuOct.Fuzz;

/// <summary>
/// The fuzzer's console entry point. Usage:
/// <c>dotnet run -c Release --project tests/IlgpuOct.Fuzz -- [--inputs N] [--seed S] [--targets a,b] [--keep DIR] [--timeout SECONDS] [--cli-every N] [--no-options]</c>.
/// Exit code 0 when nothing was found, 1 when there are findings (listed, and the inputs kept with --keep).
/// </summary>
public static class FuzzMain
{
    public static int Main(string[] args)
    {
        var options = new FuzzOptions();
        bool optionFuzz = true;
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--inputs": options = options with { InputsPerTarget = int.Parse(Next(), CultureInfo.InvariantCulture) }; break;
                case "--seed": options = options with { Seed = int.Parse(Next(), CultureInfo.InvariantCulture) }; break;
                case "--targets": options = options with { Targets = Next().Split(',') }; break;
                case "--keep": options = options with { KeepFailuresIn = Next() }; break;
                case "--timeout": options = options with { Timeout = TimeSpan.FromSeconds(double.Parse(Next(), CultureInfo.InvariantCulture)) }; break;
                case "--cli-every": options = options with { CliEvery = int.Parse(Next(), CultureInfo.InvariantCulture) }; break;
                case "--no-options": optionFuzz = false; break;
                default:
                    Console.Error.WriteLine($"unknown argument {args[i]}; targets: {string.Join(",", FuzzRunner.TargetNames)}");
                    return 2;
            }
        }
        var progress = new Reporter(line => Console.WriteLine(line));
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var report = FuzzRunner.Run(options, progress);
        Console.WriteLine(report.Describe());
        foreach (var finding in report.Findings)
        {
            Console.WriteLine($"FINDING {finding.Target} #{finding.Input} {finding.Kind}: {finding.Detail}{(finding.SavedAs is null ? "" : $" (kept: {finding.SavedAs})")}");
        }
        int problems = 0;
        if (optionFuzz)
        {
            var (runs, found) = OptionFuzz.Run(options.Timeout, progress);
            problems = found.Count;
            foreach (string problem in found)
            {
                Console.WriteLine($"FINDING options: {problem}");
            }
            Console.WriteLine($"options: {runs} out-of-range runs over every verb, {found.Count} problems");
        }
        Console.WriteLine($"fuzzing took {clock.Elapsed.TotalSeconds:F0} s");
        return report.Findings.Count + problems == 0 ? 0 : 1;
    }

    private sealed class Reporter(Action<string> report) : IProgress<string>
    {
        public void Report(string value) => report(value);
    }
}
