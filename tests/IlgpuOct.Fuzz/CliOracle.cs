using System.Text.RegularExpressions;
using IlgpuOct.Cli;

namespace IlgpuOct.Fuzz;

/// <summary>
/// Runs the CLI in-process with stdout and stderr captured and judges the outcome: success, or
/// exactly one line starting "error:" on stderr, no stack trace, and not exit code 70 (internal error).
/// </summary>
public static partial class CliOracle
{
    private static readonly Lock ConsoleLock = new();

    /// <summary>Null when the run is acceptable, else what was wrong.</summary>
    public static string? Run(string[] args, TimeSpan timeout)
    {
        var (code, stderr, finished) = Capture(args, timeout);
        if (!finished)
        {
            return $"hang: still running after {timeout.TotalSeconds:F0} s";
        }
        return Judge(code, stderr, mustFail: false);
    }

    /// <summary>Null when the run failed cleanly (non-zero exit, one error line, no trace), else what was wrong.</summary>
    public static string? RunExpectingFailure(string[] args, TimeSpan timeout)
    {
        var (code, stderr, finished) = Capture(args, timeout);
        return finished ? Judge(code, stderr, mustFail: true) : $"hang: still running after {timeout.TotalSeconds:F0} s";
    }

    public static string? Judge(int code, string stderr, bool mustFail)
    {
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (lines.Any(l => StackFrame().IsMatch(l)) || stderr.Contains("Unhandled exception", StringComparison.Ordinal))
        {
            return $"a stack trace (exit {code}): {Shorten(stderr)}";
        }
        if (code == 70)
        {
            return $"internal error (exit 70): {Shorten(stderr)}";
        }
        if (code == 0)
        {
            return mustFail ? "exit 0, expected a refusal" : null;
        }
        int errors = lines.Count(l => l.StartsWith("error:", StringComparison.Ordinal));
        return errors == 1 ? null : $"exit {code} with {errors} 'error:' lines: {Shorten(stderr)}";
    }

    private static (int Code, string Stderr, bool Finished) Capture(string[] args, TimeSpan timeout)
    {
        lock (ConsoleLock)
        {
            var originalOut = Console.Out;
            var originalError = Console.Error;
            var error = new StringWriter();
            Console.SetOut(TextWriter.Null);
            Console.SetError(error);
            try
            {
                var task = Task.Factory.StartNew(() => IlgpuOct.Cli.Program.Main(args), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
                bool finished = task.Wait(timeout);
                return (finished ? task.Result : -1, error.ToString(), finished);
            }
            finally
            {
                Console.SetOut(originalOut);
                Console.SetError(originalError);
            }
        }
    }

    private static string Shorten(string text) => text.Length <= 600 ? text.Replace('\n', '|') : text[..600].Replace('\n', '|') + "...";

    [GeneratedRegex(@"^at \S+.*\)( in .*)?$|^--- End of")]
    private static partial Regex StackFrame();
}
