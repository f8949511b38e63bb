using System.CommandLine;
using IlgpuOct.Cli;

namespace IlgpuOct.Fuzz;

/// <summary>
/// Every verb with every numeric option set to hostile values (negative, zero-crossing, 2^31,
/// beyond 64 bits, NaN, infinities, text): each run must end with one "error:" line, a non-zero exit
/// code and no stack trace. Required options get placeholders that do not exist, and verbs that run
/// a model get --device cuda (absent on CI machines), so an accepted value also ends in a clean error.
/// </summary>
public static class OptionFuzz
{
    public static readonly string[] Hostile =
        ["-1", "-2147483648", "2147483647", "2147483648", "99999999999999999999", "NaN", "nan", "Infinity", "-Infinity", "1e40", "-1e-40", "abc", "", "0x10", "1,5"];

    /// <summary>Arguments that keep a verb short when a hostile value happens to be valid (verbs without --device).</summary>
    private static readonly Dictionary<string, string[]> Short = new() { ["fuzz"] = ["--count", "1", "--nvrtc-every", "0"] };

    /// <summary>Hostile-looking values that are valid for that option (the verb would simply run).</summary>
    private static readonly HashSet<(string Option, string Value)> Valid = [("--nvrtc-every", "2147483647")];

    /// <summary>Options whose every integer is valid.</summary>
    private static readonly string[] AnyValue = ["--seed"];

    public static IEnumerable<string[]> Cases()
    {
        foreach (var (path, command) in Leaves(CommandCatalog.Create(), []))
        {
            var numeric = command.Options.Where(IsNumeric).Where(o => !AnyValue.Contains(o.Name)).ToList();
            foreach (var option in numeric)
            {
                foreach (string value in Hostile.Where(v => !Valid.Contains((option.Name, v))))
                {
                    yield return [.. path, .. BaseArguments(command, option), option.Name, value];
                }
            }
            // Also: an unknown option and a missing required value.
            yield return [.. path, .. BaseArguments(command, null), "--no-such-option", "1"];
        }
    }

    /// <summary>Runs every case; returns the number of runs and the problems found.</summary>
    public static (int Runs, List<string> Problems) Run(TimeSpan timeout, IProgress<string>? progress = null)
    {
        int runs = 0;
        var problems = new List<string>();
        foreach (var args in Cases())
        {
            runs++;
            if (CliOracle.RunExpectingFailure(args, timeout) is { } problem)
            {
                problems.Add($"ilgpuoct {string.Join(' ', args.Select(a => a.Length == 0 ? "''" : a))}: {problem}");
            }
        }
        progress?.Report($"options: {runs} runs, {problems.Count} problems");
        return (runs, problems);
    }

    private static IEnumerable<(string[] Path, Command Command)> Leaves(IEnumerable<Command> commands, string[] prefix)
    {
        foreach (var command in commands)
        {
            string[] path = [.. prefix, command.Name];
            if (command.Subcommands.Count == 0)
            {
                yield return (path, command);
            }
            foreach (var leaf in Leaves(command.Subcommands, path))
            {
                yield return leaf;
            }
        }
    }

    private static bool IsNumeric(Option option)
    {
        var type = Nullable.GetUnderlyingType(option.ValueType) ?? option.ValueType;
        type = type.IsArray ? type.GetElementType()! : type;
        return type == typeof(int) || type == typeof(long) || type == typeof(float) || type == typeof(double);
    }

    private static IEnumerable<string> BaseArguments(Command command, Option? tested)
    {
        foreach (var argument in command.Arguments)
        {
            _ = argument;
            yield return "/nonexistent/ilgpuoct-fuzz/argument";
        }
        foreach (var option in command.Options.Where(o => o.Required && o != tested))
        {
            yield return option.Name;
            yield return $"/nonexistent/ilgpuoct-fuzz/{option.Name.TrimStart('-')}";
        }
        if (command.Options.Any(o => o.Name == "--device") && tested?.Name != "--device")
        {
            yield return "--device";
            yield return "cuda";
        }
        if (Short.TryGetValue(command.Name, out var extra))
        {
            for (int i = 0; i < extra.Length; i += 2)
            {
                if (extra[i] != tested?.Name)
                {
                    yield return extra[i];
                    yield return extra[i + 1];
                }
            }
        }
    }
}
