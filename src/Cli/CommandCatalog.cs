using System.CommandLine;
using IlgpuOct.Cli.Commands;

namespace IlgpuOct.Cli;

/// <summary>Every top-level verb, one file each under Commands/.</summary>
internal static class CommandCatalog
{
    /// <summary>Every verb, with --threads on each that computes (runs a device, or generates/imports data).</summary>
    public static IEnumerable<Command> Create()
    {
        foreach (var command in Verbs())
        {
            AddThreads(command);
            yield return command;
        }
    }

    private static void AddThreads(Command command)
    {
        foreach (var sub in command.Subcommands)
        {
            AddThreads(sub);
        }
        bool computes = command.Options.Any(o => o.Name == "--device") || command.Name is "generate" or "import";
        if (computes && command.Subcommands.Count == 0 && command.Options.All(o => o.Name != "--threads"))
        {
            command.Options.Add(CliRunner.ThreadsOption());
        }
    }

    private static IEnumerable<Command> Verbs()
    {
        yield return BenchCommand.Create();
        yield return ProfileCommand.Create();
        yield return DevicesCommand.Create();
        yield return KernelsCommand.Create();
        yield return SelftestCommand.Create();
        yield return VerifyCommand.Create();
        yield return DataCommand.Create();
        yield return AttackCommand.Create();
        yield return TrainCommand.Create();
        yield return DetectCommand.Create();
        yield return EvaluateCommand.Create();
        yield return ExportCommand.Create();
        yield return ReproduceCommand.Create();
    }
}
