using System.Text;
using System.Text.Json;
using Spectre.Console;

namespace IlgpuOct.Cli.Rendering;

/// <summary>Tables and progress: Spectre.Console on a terminal, plain aligned text when redirected or in CI.</summary>
internal static class Ui
{
    public static bool Interactive =>
        !Console.IsOutputRedirected && string.IsNullOrEmpty(Environment.GetEnvironmentVariable("CI")) && Environment.GetEnvironmentVariable("TERM") != "dumb";

    public static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    public static void WriteJson<T>(T value) => Console.WriteLine(JsonSerializer.Serialize(value, Json));

    public static void Table(string? title, IReadOnlyList<string> headers, IEnumerable<IReadOnlyList<string>> rows)
    {
        var materialised = rows.ToList();
        if (Interactive)
        {
            var table = new Table();
            if (title is not null)
            {
                table.Title = new TableTitle(Markup.Escape(title));
            }
            foreach (var h in headers)
            {
                table.AddColumn(Markup.Escape(h));
            }
            foreach (var r in materialised)
            {
                table.AddRow(r.Select(Markup.Escape).ToArray());
            }
            AnsiConsole.Write(table);
            return;
        }
        Console.Write(PlainTable(title, headers, materialised));
    }

    public static string PlainTable(string? title, IReadOnlyList<string> headers, IReadOnlyList<IReadOnlyList<string>> rows)
    {
        var widths = headers.Select(h => h.Length).ToArray();
        foreach (var r in rows)
        {
            for (int i = 0; i < widths.Length && i < r.Count; i++)
            {
                widths[i] = Math.Max(widths[i], r[i].Length);
            }
        }
        var sb = new StringBuilder();
        if (title is not null)
        {
            sb.AppendLine(title);
        }
        sb.AppendLine(string.Join("  ", headers.Select((h, i) => h.PadRight(widths[i]))).TrimEnd());
        sb.AppendLine(string.Join("  ", widths.Select(w => new string('-', w))));
        foreach (var r in rows)
        {
            sb.AppendLine(string.Join("  ", r.Select((c, i) => i < widths.Length ? c.PadRight(widths[i]) : c)).TrimEnd());
        }
        return sb.ToString();
    }
}
