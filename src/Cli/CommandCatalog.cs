using System.CommandLine;
using IlgpuOct.Cli.Commands;

namespace IlgpuOct.Cli;

/// <summary>Every top-level verb, one file each under Commands/.</summary>
internal static class CommandCatalog
{
    public static IEnumerable<Command> Create()
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
        yield return ReproduceCommand.Create();
    }
}
