using System.CommandLine;
using IlgpuOct.Cli.Rendering;

namespace IlgpuOct.Cli;

public static class Program
{
    public static int Main(string[] args) => Run(args, CliConsole.ForProcess());

    /// <summary>Runs one invocation writing to <paramref name="console"/> (tests pass consoles over string writers).</summary>
    internal static int Run(string[] args, CliConsole console)
    {
        using var current = CliConsole.Use(console);
        var root = new RootCommand("IlgpuOct: adversarially robust medical-image classifiers on GPU kernels of their own. " + CliRunner.ExitCodeHelp);
        root.Options.Add(CliRunner.Verbose);
        foreach (var command in CommandCatalog.Create())
        {
            root.Subcommands.Add(command);
        }
        return CliRunner.Run(() =>
        {
            var parse = root.Parse(args);
            if (parse.Errors.Count > 0)
            {
                // One line, whatever the parser found; --help shows the usage.
                CliConsole.Current.ErrorLine($"error: {CliRunner.OneLine(parse.Errors[0].Message)} (see `ilgpuoct {string.Join(' ', CommandPath(parse))} --help`)");
                return CliRunner.BadInput;
            }
            using var listening = Interruption.Listen();
            // Our own handler: the first interrupt cancels, the second aborts (System.CommandLine's would kill the process).
            return parse.Invoke(new InvocationConfiguration
            {
                ProcessTerminationTimeout = null,
                EnableDefaultExceptionHandler = false,
                Output = console.Output.Profile.Out.Writer,
                Error = console.Error.Profile.Out.Writer,
            });
        }, args.Contains("--verbose"));
    }

    private static IEnumerable<string> CommandPath(ParseResult parse)
    {
        var names = new List<string>();
        for (var result = parse.CommandResult; result.Parent is System.CommandLine.Parsing.CommandResult parent; result = parent)
        {
            names.Insert(0, result.Command.Name);
        }
        return names;
    }
}
