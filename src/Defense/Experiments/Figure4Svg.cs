using System.Globalization;
using System.Text;

namespace IlgpuOct.Defense.Experiments;

/// <summary>
/// Figure 4 as an SVG line chart: one panel per plain attack (FGSM, PGD, C&amp;W), accuracy against
/// strength, one line per model; points of several seeds give the mean with +- 1 sd error bars.
/// </summary>
public static class Figure4Svg
{
    private static readonly string[] Colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"];

    public static string Render(IReadOnlyList<CurvePoint> curve)
    {
        ArgumentNullException.ThrowIfNull(curve);
        var inv = CultureInfo.InvariantCulture;
        var attacks = curve.Select(p => p.Attack).Where(a => a == "fgsm" || a.StartsWith("pgd", StringComparison.Ordinal) || a == "cw-l2").Distinct().ToList();
        var modes = curve.Select(p => p.Mode).Distinct().ToList();
        const int panelWidth = 300, panelHeight = 220, margin = 45;
        int width = Math.Max(1, attacks.Count) * (panelWidth + margin) + margin;
        int height = panelHeight + 2 * margin + 20;
        var sb = new StringBuilder();
        sb.Append(inv, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"11\">\n");
        sb.Append("<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
        for (int a = 0; a < attacks.Count; a++)
        {
            var points = curve.Where(p => p.Attack == attacks[a]).ToList();
            var values = points.Select(p => p.Value).Distinct().Order().ToList();
            double x0 = margin + a * (panelWidth + margin), y0 = margin;
            double X(double v) => x0 + (values.Count == 1 ? panelWidth / 2.0 : values.IndexOf(v) * panelWidth / (double)(values.Count - 1));
            double Y(double acc) => y0 + panelHeight * (1 - acc);
            sb.Append(inv, $"<rect x=\"{x0}\" y=\"{y0}\" width=\"{panelWidth}\" height=\"{panelHeight}\" fill=\"none\" stroke=\"#888\"/>\n");
            sb.Append(inv, $"<text x=\"{x0 + panelWidth / 2.0}\" y=\"{y0 - 8}\" text-anchor=\"middle\" font-size=\"13\">{attacks[a]}</text>\n");
            foreach (double tick in new[] { 0.0, 0.25, 0.5, 0.75, 1.0 })
            {
                sb.Append(inv, $"<text x=\"{x0 - 4}\" y=\"{Y(tick) + 4:F1}\" text-anchor=\"end\">{tick:P0}</text>\n");
            }
            foreach (double v in values)
            {
                sb.Append(inv, $"<text x=\"{X(v):F1}\" y=\"{y0 + panelHeight + 14}\" text-anchor=\"middle\">{v:G3}</text>\n");
            }
            sb.Append(inv, $"<text x=\"{x0 + panelWidth / 2.0}\" y=\"{y0 + panelHeight + 30}\" text-anchor=\"middle\">{points.FirstOrDefault()?.Parameter}</text>\n");
            for (int m = 0; m < modes.Count; m++)
            {
                var line = points.Where(p => p.Mode == modes[m]).GroupBy(p => p.Value).OrderBy(g => g.Key)
                    .Select(g => (Value: g.Key, Stat: SeedStat.Of(g.Select(p => p.Accuracy)))).ToList();
                if (line.Count == 0)
                {
                    continue;
                }
                string color = Colors[m % Colors.Length];
                string path = string.Join(" ", line.Select(p => string.Create(inv, $"{X(p.Value):F1},{Y(p.Stat.Mean):F1}")));
                sb.Append(inv, $"<polyline points=\"{path}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"/>\n");
                foreach (var (value, stat) in line.Where(p => !double.IsNaN(p.Stat.Sd)))
                {
                    // Error bar: +- 1 sd over seeds, with short caps; nudged sideways per model so bars do not overlap.
                    double x = X(value) + (m - (modes.Count - 1) / 2.0) * 3;
                    double lo = Y(Math.Max(0, stat.Mean - stat.Sd)), hi = Y(Math.Min(1, stat.Mean + stat.Sd));
                    sb.Append(inv, $"<path class=\"errorbar\" d=\"M{x:F1},{lo:F1}V{hi:F1}M{x - 3:F1},{lo:F1}h6M{x - 3:F1},{hi:F1}h6\" stroke=\"{color}\" fill=\"none\"/>\n");
                }
            }
        }
        for (int m = 0; m < modes.Count; m++)
        {
            sb.Append(inv, $"<text x=\"{margin + m * 80}\" y=\"{height - 8}\" fill=\"{Colors[m % Colors.Length]}\" font-size=\"12\">{modes[m].ToUpperInvariant()}</text>\n");
        }
        sb.Append("</svg>\n");
        return sb.ToString();
    }
}
