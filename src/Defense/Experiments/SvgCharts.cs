using System.Globalization;
using System.Net;
using System.Text;

namespace IlgpuOct.Defense.Experiments;

/// <summary>One line of a <see cref="SvgCharts.Lines"/> chart.</summary>
public sealed record ChartSeries(string Name, string Color, double[] X, double[] Y);

/// <summary>The report's small SVG charts: lines in the unit square (ROC, precision-recall) and a labelled scatter (t-SNE).</summary>
public static class SvgCharts
{
    public static readonly string[] Palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];

    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    private const int Size = 220, Margin = 40;

    /// <summary>Lines over [0, 1] x [0, 1] with axis labels, a diagonal when <paramref name="diagonal"/>, and a legend.</summary>
    public static string Lines(string title, string xLabel, string yLabel, IReadOnlyList<ChartSeries> series, bool diagonal)
    {
        ArgumentNullException.ThrowIfNull(series);
        int legend = 16 * series.Count;
        int width = Size + 2 * Margin, height = Size + 2 * Margin + legend;
        var sb = new StringBuilder();
        sb.Append(Inv, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"11\" role=\"img\" aria-label=\"{Escape(title)}\">\n");
        sb.Append("<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
        double X(double v) => Margin + v * Size;
        double Y(double v) => Margin + (1 - v) * Size;
        sb.Append(Inv, $"<text x=\"{width / 2}\" y=\"{Margin - 12}\" text-anchor=\"middle\" font-size=\"12\">{Escape(title)}</text>\n");
        sb.Append(Inv, $"<rect x=\"{Margin}\" y=\"{Margin}\" width=\"{Size}\" height=\"{Size}\" fill=\"none\" stroke=\"#888\"/>\n");
        foreach (double t in new[] { 0.0, 0.5, 1.0 })
        {
            sb.Append(Inv, $"<text x=\"{X(t):F1}\" y=\"{Margin + Size + 13}\" text-anchor=\"middle\">{t:G2}</text>\n");
            sb.Append(Inv, $"<text x=\"{Margin - 4}\" y=\"{Y(t) + 4:F1}\" text-anchor=\"end\">{t:G2}</text>\n");
        }
        sb.Append(Inv, $"<text x=\"{width / 2}\" y=\"{Margin + Size + 28}\" text-anchor=\"middle\">{Escape(xLabel)}</text>\n");
        sb.Append(Inv, $"<text x=\"12\" y=\"{Margin + Size / 2}\" text-anchor=\"middle\" transform=\"rotate(-90 12 {Margin + Size / 2})\">{Escape(yLabel)}</text>\n");
        if (diagonal)
        {
            sb.Append(Inv, $"<line x1=\"{X(0)}\" y1=\"{Y(0)}\" x2=\"{X(1)}\" y2=\"{Y(1)}\" stroke=\"#bbb\" stroke-dasharray=\"4 3\"/>\n");
        }
        for (int s = 0; s < series.Count; s++)
        {
            var line = series[s];
            string points = string.Join(" ", line.X.Zip(line.Y, (x, y) => string.Create(Inv, $"{X(x):F1},{Y(y):F1}")));
            sb.Append(Inv, $"<polyline points=\"{points}\" fill=\"none\" stroke=\"{line.Color}\" stroke-width=\"1.8\"/>\n");
            sb.Append(Inv, $"<text x=\"{Margin}\" y=\"{Margin + Size + 44 + 16 * s}\" fill=\"{line.Color}\">{Escape(line.Name)}</text>\n");
        }
        sb.Append("</svg>\n");
        return sb.ToString();
    }

    /// <summary>A scatter of a 2-D embedding: colour = class, circle = clean, cross = adversarial.</summary>
    public static string Scatter(string title, FeatureEmbedding e, IReadOnlyList<string> classNames)
    {
        ArgumentNullException.ThrowIfNull(e);
        ArgumentNullException.ThrowIfNull(classNames);
        const int plot = 420;
        int width = plot + 2 * Margin + 150, height = plot + 2 * Margin;
        double minX = e.X.Min(), maxX = e.X.Max(), minY = e.Y.Min(), maxY = e.Y.Max();
        double span = Math.Max(Math.Max(maxX - minX, maxY - minY), 1e-9);
        double X(double v) => Margin + (v - minX) / span * plot;
        double Y(double v) => Margin + plot - (v - minY) / span * plot;
        var sb = new StringBuilder();
        sb.Append(Inv, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"11\" role=\"img\" aria-label=\"{Escape(title)}\">\n");
        sb.Append("<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
        sb.Append(Inv, $"<text x=\"{Margin + plot / 2}\" y=\"{Margin - 14}\" text-anchor=\"middle\" font-size=\"12\">{Escape(title)}</text>\n");
        sb.Append(Inv, $"<rect x=\"{Margin - 5}\" y=\"{Margin - 5}\" width=\"{plot + 10}\" height=\"{plot + 10}\" fill=\"none\" stroke=\"#888\"/>\n");
        for (int i = 0; i < e.X.Length; i++)
        {
            string color = Palette[e.Label[i] % Palette.Length];
            double x = X(e.X[i]), y = Y(e.Y[i]);
            sb.Append(e.Adversarial[i]
                ? string.Create(Inv, $"<path d=\"M{x - 3:F1},{y - 3:F1}l6,6m0,-6l-6,6\" stroke=\"{color}\" stroke-width=\"1.5\"/>\n")
                : string.Create(Inv, $"<circle cx=\"{x:F1}\" cy=\"{y:F1}\" r=\"3\" fill=\"none\" stroke=\"{color}\" stroke-width=\"1.2\"/>\n"));
        }
        int lx = Margin + plot + 20;
        for (int c = 0; c < classNames.Count; c++)
        {
            sb.Append(Inv, $"<text x=\"{lx}\" y=\"{Margin + 14 + 16 * c}\" fill=\"{Palette[c % Palette.Length]}\">{Escape(classNames[c])}</text>\n");
        }
        int ly = Margin + 30 + 16 * classNames.Count;
        sb.Append(Inv, $"<circle cx=\"{lx + 4}\" cy=\"{ly - 4}\" r=\"3\" fill=\"none\" stroke=\"#333\"/><text x=\"{lx + 14}\" y=\"{ly}\">clean</text>\n");
        sb.Append(Inv, $"<path d=\"M{lx + 1},{ly + 9}l6,6m0,-6l-6,6\" stroke=\"#333\" stroke-width=\"1.5\"/><text x=\"{lx + 14}\" y=\"{ly + 16}\">adversarial</text>\n");
        sb.Append("</svg>\n");
        return sb.ToString();
    }

    internal static string Escape(string text) => WebUtility.HtmlEncode(text);
}
