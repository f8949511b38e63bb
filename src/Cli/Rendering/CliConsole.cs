using Spectre.Console;

namespace IlgpuOct.Cli.Rendering;

/// <summary>
/// Where a verb writes: standard output (results, tables, JSON) and standard error (progress,
/// notices, errors), each a Spectre.Console <see cref="IAnsiConsole"/>. <see cref="Program.Run"/>
/// injects one per invocation; tests inject consoles over string writers and read what a verb printed.
/// </summary>
internal sealed class CliConsole(IAnsiConsole output, IAnsiConsole error, bool interactive)
{
    private static readonly AsyncLocal<CliConsole?> Injected = new();

    /// <summary>Standard output.</summary>
    public IAnsiConsole Output { get; } = output;

    /// <summary>Standard error.</summary>
    public IAnsiConsole Error { get; } = error;

    /// <summary>A terminal that shows live progress bars and rich tables (false when redirected, in CI or under TERM=dumb).</summary>
    public bool Interactive { get; } = interactive;

    /// <summary>The console of the running invocation (the process's own when none was injected).</summary>
    public static CliConsole Current => Injected.Value ?? ForProcess();

    /// <summary>Makes <paramref name="console"/> current until the result is disposed.</summary>
    public static IDisposable Use(CliConsole console)
    {
        var previous = Injected.Value;
        Injected.Value = console;
        return new Restore(previous);
    }

    /// <summary>The process's standard output and error.</summary>
    public static CliConsole ForProcess()
    {
        bool interactive = !Console.IsOutputRedirected && string.IsNullOrEmpty(Environment.GetEnvironmentVariable("CI"))
            && Environment.GetEnvironmentVariable("TERM") != "dumb";
        return new CliConsole(
            AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Out) }),
            AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) }),
            interactive);
    }

    /// <summary>A plain, non-interactive console over two writers (tests, captured output).</summary>
    public static CliConsole ForWriters(TextWriter output, TextWriter error)
    {
        static IAnsiConsole Plain(TextWriter writer) => AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(writer),
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
        });
        return new CliConsole(Plain(output), Plain(error), interactive: false);
    }

    /// <summary>A line of plain text on standard output, unwrapped.</summary>
    public void WriteLine(string text = "") => Output.Profile.Out.Writer.WriteLine(text);

    /// <summary>Plain text on standard output, unwrapped.</summary>
    public void Write(string text) => Output.Profile.Out.Writer.Write(text);

    /// <summary>A line of plain text on standard error, unwrapped.</summary>
    public void ErrorLine(string text = "") => Error.Profile.Out.Writer.WriteLine(text);

    /// <summary>Plain text on standard error, unwrapped.</summary>
    public void ErrorWrite(string text) => Error.Profile.Out.Writer.Write(text);

    private sealed class Restore(CliConsole? previous) : IDisposable
    {
        public void Dispose() => Injected.Value = previous;
    }
}
