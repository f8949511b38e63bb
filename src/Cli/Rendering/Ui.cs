using System.Text;
using System.Text.Json;
using Spectre.Console;

namespace IlgpuOct.Cli.Rendering;

/// <summary>Tables and JSON on the current <see cref="CliConsole"/>: Spectre.Console tables on a terminal, plain aligned text when redirected or in CI.</summary>
internal static class Ui
{
    public static bool Interactive => CliConsole.Current.Interactive;

    public static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    public static void WriteJson<T>(T value) => CliConsole.Current.WriteLine(JsonSerializer.Serialize(value, Json));

    /// <summary>A command's report: as JSON when <paramref name="json"/> (--json), else through its renderer.</summary>
    public static void WriteReport<T>(bool json, T report, Action<T> render)
    {
        if (json)
        {
            WriteJson(report);
        }
        else
        {
            render(report);
        }
    }

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
            CliConsole.Current.Output.Write(table);
            return;
        }
        CliConsole.Current.Write(PlainTable(title, headers, materialised));
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
