using System.Diagnostics;
using Spectre.Console;

namespace IlgpuOct.Cli.Rendering;

/// <summary>
/// The one place that renders library progress (IProgress&lt;T&gt;): lines on standard error, at
/// most one per interval unless a report says it must be shown, or a live progress bar on a terminal.
/// Reports run on the reporting thread (Progress&lt;T&gt; would post them to the thread pool), one at a
/// time: data generation and import report from worker threads.
/// </summary>
internal static class ProgressView
{
    /// <summary>Writes <paramref name="line"/> of every report to standard error.</summary>
    public static IProgress<T> Lines<T>(CliConsole console, Func<T, string> line) => Throttled(console, TimeSpan.Zero, _ => true, line);

    /// <summary>
    /// Writes a line for a report when <paramref name="always"/> holds for it or
    /// <paramref name="interval"/> has passed since the last line; the line gets the elapsed time
    /// (<see cref="Elapsed"/>) through <paramref name="line"/>'s clock argument.
    /// </summary>
    public static IProgress<T> Throttled<T>(CliConsole console, TimeSpan interval, Func<T, bool> always, Func<T, string> line)
    {
        var clock = Stopwatch.StartNew();
        TimeSpan last = TimeSpan.MinValue;
        return new Reporter<T>(p =>
        {
            var now = clock.Elapsed;
            if (always(p) || last == TimeSpan.MinValue || now - last >= interval)
            {
                last = now;
                console.ErrorLine(line(p));
            }
        });
    }

    /// <summary>Elapsed time as [mm:ss], the prefix of timed progress lines.</summary>
    public static string Elapsed(Stopwatch clock) => $"[{clock.Elapsed:mm\\:ss}]";

    /// <summary>
    /// Runs <paramref name="run"/> with a progress bar on a terminal (value, maximum and description
    /// from <paramref name="view"/>), or with <paramref name="plain"/> lines otherwise.
    /// </summary>
    public static TResult WithBar<T, TResult>(CliConsole console, Func<T, (double Value, double Max, string Description)> view, IProgress<T> plain, Func<IProgress<T>, TResult> run)
    {
        if (!console.Interactive)
        {
            return run(plain);
        }
        TResult result = default!;
        console.Output.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask("starting", maxValue: 1);
                result = run(new Reporter<T>(p =>
                {
                    var (value, max, description) = view(p);
                    task.MaxValue = Math.Max(1, max);
                    task.Value = value;
                    task.Description = Markup.Escape(description);
                }));
            });
        return result;
    }

    private sealed class Reporter<T>(Action<T> report) : IProgress<T>
    {
        private readonly Lock _gate = new();

        public void Report(T value)
        {
            lock (_gate)
            {
                report(value);
            }
        }
    }
}
