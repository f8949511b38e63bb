using System.Globalization;
using System.Net;
using System.Text;
using IlgpuOct.Kernels.Profiling;

namespace IlgpuOct.Cli.Rendering;

/// <summary>A horizontal bar chart of a profile's time by kernel (or operator), largest first, as standalone SVG.</summary>
internal static class ProfileSvg
{
    private const int RowHeight = 22;
    private const int LabelWidth = 330;
    private const int BarWidth = 420;
    private const int Top = 48;

    public static string Render(ProfileReport report, int maxRows = 30)
    {
        var inv = CultureInfo.InvariantCulture;
        var rows = report.Rows.Take(maxRows).ToArray();
        double longest = rows.Length == 0 ? 1 : Math.Max(rows.Max(r => r.TotalMilliseconds), 1e-9);
        int height = Top + RowHeight * rows.Length + 30;
        int width = LabelWidth + BarWidth + 190;
        var svg = new StringBuilder();
        svg.AppendLine(inv, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">");
        svg.AppendLine(inv, $"<rect width=\"{width}\" height=\"{height}\" fill=\"white\"/>");
        string title = $"{report.Workload} on {report.Device}: time by {report.Granularity} over {report.Steps} step(s), {report.TimedMilliseconds:F1} ms timed of {report.WallMilliseconds:F1} ms wall";
        svg.AppendLine(inv, $"<text x=\"10\" y=\"22\" font-size=\"14\" font-weight=\"bold\">{WebUtility.HtmlEncode(title)}</text>");
        svg.AppendLine(inv, $"<text x=\"10\" y=\"40\" fill=\"#555\">bar: total ms; label: share of timed total, fraction of roofline</text>");
        for (int i = 0; i < rows.Length; i++)
        {
            var r = rows[i];
            int y = Top + i * RowHeight;
            double w = Math.Max(1, BarWidth * r.TotalMilliseconds / longest);
            svg.AppendLine(inv, $"<text x=\"{LabelWidth - 6}\" y=\"{y + 15}\" text-anchor=\"end\">{WebUtility.HtmlEncode(r.Name)}</text>");
            svg.AppendLine(inv, $"<rect x=\"{LabelWidth}\" y=\"{y + 3}\" width=\"{w:F1}\" height=\"{RowHeight - 6}\" fill=\"#4e79a7\"><title>{WebUtility.HtmlEncode(r.Operators)}</title></rect>");
            string roof = r.RooflineFraction is { } f ? $", {f:P1} of roofline" : "";
            svg.AppendLine(inv, $"<text x=\"{LabelWidth + w + 6:F1}\" y=\"{y + 15}\">{r.TotalMilliseconds:F2} ms ({r.Share:P1}{roof})</text>");
        }
        svg.AppendLine("</svg>");
        return svg.ToString();
    }
}
