using System.CommandLine;

namespace IlgpuOct.Cli.Commands;

/// <summary><c>ilgpuoct bench ...</c>: one subcommand per benchmark, each with --json.</summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var bench = new Command("bench", "Measure kernel and engine speed (GFLOP/s, images/s).");
        bench.Subcommands.Add(BenchTrainCommand.Create());
        bench.Subcommands.Add(BenchInferCommand.Create());
        bench.Subcommands.Add(BenchGmmCommand.Create());
        bench.Subcommands.Add(BenchGemmCommand.Create());
        bench.Subcommands.Add(BenchConvCommand.Create());
        bench.Subcommands.Add(BenchDgemmCommand.Create());
        bench.Subcommands.Add(BenchPgdCommand.Create());
        return bench;
    }
}
