using System.Globalization;
using System.Text;
using IlgpuOct.Defense.Metrics;

namespace IlgpuOct.Defense.Experiments;

/// <summary>
/// results.html: one self-contained page (inline SVG figures, PNG gallery as data URIs, no external
/// resources) with the claims, the tables, Fig. 4 with error bars, the t-SNE of Fig. 1, ROC and
/// precision-recall curves of every detector, the gallery, the protocol and the machine. A small
/// inline script checks on load that every image decoded and every figure drew something, and
/// writes the verdict into #selfcheck (the Chromium test reads it from the dumped DOM).
/// </summary>
public static class ResultsHtmlPage
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    public static string Render(SeedsSummary summary, ReproduceProfile profile, IReadOnlyList<ReproduceResults> perSeed, string runDirectory, string figure4Svg)
    {
        ArgumentNullException.ThrowIfNull(summary);
        ArgumentNullException.ThrowIfNull(perSeed);
        var first = perSeed[0];
        var sb = new StringBuilder();
        sb.Append("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>Classification or detection? Reproduction results</title>\n");
        sb.Append("<style>body{font-family:sans-serif;max-width:1200px;margin:1em auto;padding:0 1em;color:#222}table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:13px}");
        sb.Append("td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}th{background:#f2f2f2}figure{display:inline-block;margin:.5em;vertical-align:top}");
        sb.Append("figcaption{font-size:12px;max-width:460px}.holds{background:#e3f4e1}.does-not-hold{background:#fbe3e3}.not-resolved{background:#fdf6dc}");
        sb.Append("#selfcheck{font-size:12px;color:#666}</style>\n</head>\n<body>\n");
        sb.Append("<h1>Defending against adversarial attacks: classification or detection?</h1>\n");
        sb.Append(Inv, $"<p>Reproduction of Li, Pan and Zhu with IlgpuOct. Profile <b>{E(summary.Profile)}</b>, seeds {string.Join(", ", summary.Seeds)}, data {E(summary.DataSource)}, classes {E(string.Join(", ", summary.ClassNames))}.</p>\n");
        sb.Append("<p id=\"selfcheck\" data-status=\"pending\">page self-check pending</p>\n");

        var tables = SeedsReport.Tables(summary, profile).ToDictionary(t => t.Id);
        Table(sb, tables["claims"], verdictColumn: 3);

        sb.Append("<h2>Figure 4: accuracy under attack</h2>\n<figure>");
        sb.Append(figure4Svg);
        sb.Append(Inv, $"<figcaption>Accuracy on the attacked test images against the attack's strength, one line per training mode; error bars: ± 1 sd over seeds {string.Join(", ", summary.Seeds)}.</figcaption></figure>\n");

        sb.Append("<h2>Figure 1: penultimate features (t-SNE)</h2>\n");
        if (first.Embedding is { } embedding)
        {
            sb.Append("<figure>").Append(SvgCharts.Scatter(string.Create(Inv, $"{embedding.Mode.ToUpperInvariant()}: clean and PGD eps {embedding.Epsilon} images"), embedding, first.ClassNames));
            sb.Append(Inv, $"<figcaption>Exact t-SNE (seed {first.Seed}, perplexity {embedding.Perplexity:G3}, final KL {embedding.KlDivergence:F3}) of the penultimate features of the {embedding.X.Length / 2} attacked test images and their PGD versions; colour = true class.</figcaption></figure>\n");
        }
        else
        {
            sb.Append("<p>No embedding: the run judged no PGD attack at the table epsilon.</p>\n");
        }

        sb.Append("<h2>ROC and precision-recall curves of the detectors</h2>\n");
        RocAndPr(sb, perSeed);

        sb.Append("<h2>Gallery: clean, adversarial, amplified perturbation</h2>\n");
        foreach (var item in first.Gallery)
        {
            byte[] png = File.ReadAllBytes(Path.Combine(runDirectory, ReproduceSeeds.SeedFolder(first.Seed), item.File));
            sb.Append(Inv, $"<figure><img src=\"data:image/png;base64,{Convert.ToBase64String(png)}\" alt=\"{E(item.Mode)} {E(item.Attack)} {E(item.Parameter)} {item.Value:G4}\">");
            sb.Append(Inv, $"<figcaption>{E(item.Mode.ToUpperInvariant())}, {E(item.Attack)} {E(item.Parameter)} {item.Value:G4}: test image {item.Image}, class {E(first.ClassNames[item.Label])}, predicted {E(first.ClassNames[item.PredictedClean])} → {E(first.ClassNames[item.PredictedAdversarial])}; L∞ {item.Linf:G3}, perturbation × {item.Amplification:F0} around grey.</figcaption></figure>\n");
        }

        foreach (string id in new[] { "models", "table1", "table2", "system", "lambda", "figure4" })
        {
            if (tables.TryGetValue(id, out var table))
            {
                Table(sb, table, verdictColumn: -1);
            }
        }

        sb.Append("<h2>Protocol</h2>\n<ul>\n");
        foreach (string line in ResultsReport.Protocol(first, profile))
        {
            sb.Append("<li>").Append(E(line)).Append("</li>\n");
        }
        sb.Append("</ul>\n<h2>Machine</h2>\n");
        var m = summary.Machine;
        sb.Append(Inv, $"<p>{E(m.Processor)}, {m.LogicalCores} logical cores; {E(m.Os)}; {E(m.Runtime)}; device {E(m.Device)}.");
        sb.Append(Inv, $" Wall time {summary.WallSeconds:F0} s, process CPU time {summary.CpuSeconds:F0} s");
        sb.Append(m.LoadAverage is { } load ? string.Create(Inv, $", load average {load:F1} at the end (other jobs shared the machine when it exceeds the core count)") : "").Append(".</p>\n");
        sb.Append(Inv, $"<p>Per-seed reports: {string.Join(", ", summary.SeedFolders.Select(f => $"{E(f)}/{Reproduce.ResultsMarkdown}"))}.</p>\n");
        sb.Append(SelfCheckScript);
        sb.Append("</body>\n</html>\n");
        return sb.ToString();
    }

    /// <summary>For the first trained model: per attack judged by the detectors, ROC and PR of every detector, pooled over seeds.</summary>
    private static void RocAndPr(StringBuilder sb, IReadOnlyList<ReproduceResults> perSeed)
    {
        var outcomes = perSeed.SelectMany(r => r.Outcomes).ToList();
        if (outcomes.Count == 0)
        {
            sb.Append("<p>No detector was judged in this run.</p>\n");
            return;
        }
        string mode = outcomes[0].Mode;
        var detectors = outcomes[0].Detectors.Select(d => d.Detector).ToList();
        sb.Append(Inv, $"<p>Model {E(mode.ToUpperInvariant())}; positives = successful adversarial images, negatives = correctly classified clean images, score = minus the detector's normality score; pooled over seeds.</p>\n");
        foreach (var group in outcomes.Where(o => o.Mode == mode).GroupBy(o => (o.Attack, o.Epsilon)))
        {
            var roc = new List<ChartSeries>();
            var pr = new List<ChartSeries>();
            for (int d = 0; d < detectors.Count; d++)
            {
                var labels = new List<int>();
                var scores = new List<double>();
                foreach (var o in group)
                {
                    var det = o.Detectors.First(x => x.Detector == detectors[d]);
                    for (int i = 0; i < o.CleanCorrect.Length; i++)
                    {
                        if (o.CleanCorrect[i])
                        {
                            labels.Add(0);
                            scores.Add(-det.CleanScore[i]);
                            if (!o.AdversarialCorrect[i])
                            {
                                labels.Add(1);
                                scores.Add(-det.AdversarialScore[i]);
                            }
                        }
                    }
                }
                if (!labels.Contains(0) || !labels.Contains(1))
                {
                    continue;
                }
                var r = RankingMetrics.Roc(labels.ToArray(), scores.ToArray());
                var p = RankingMetrics.PrecisionRecall(labels.ToArray(), scores.ToArray());
                string color = SvgCharts.Palette[d % SvgCharts.Palette.Length];
                roc.Add(new ChartSeries(string.Create(Inv, $"{detectors[d]} (AUROC {RankingMetrics.RocAuc(labels.ToArray(), scores.ToArray()):F3})"), color, r.FalsePositiveRate, r.TruePositiveRate));
                pr.Add(new ChartSeries(string.Create(Inv, $"{detectors[d]} (AUPRC {RankingMetrics.AveragePrecision(labels.ToArray(), scores.ToArray()):F3})"), color, p.Recall, p.Precision));
            }
            string title = string.Create(Inv, $"{group.Key.Attack} eps {group.Key.Epsilon}");
            if (roc.Count == 0)
            {
                sb.Append(Inv, $"<p>{E(title)}: no successful adversarial images, no curve.</p>\n");
                continue;
            }
            sb.Append("<figure>").Append(SvgCharts.Lines($"ROC, {title}", "false positive rate", "true positive rate", roc, diagonal: true)).Append("</figure>");
            sb.Append("<figure>").Append(SvgCharts.Lines($"Precision-recall, {title}", "recall", "precision", pr, diagonal: false)).Append("</figure>\n");
        }
    }

    private static void Table(StringBuilder sb, ReportTable table, int verdictColumn)
    {
        sb.Append("<h2>").Append(E(table.Title)).Append("</h2>\n<p>").Append(E(table.Caption)).Append("</p>\n<table><tr>");
        foreach (string h in table.Header)
        {
            sb.Append("<th>").Append(E(h)).Append("</th>");
        }
        sb.Append("</tr>\n");
        foreach (var row in table.Rows)
        {
            sb.Append("<tr>");
            for (int c = 0; c < row.Count; c++)
            {
                string css = c == verdictColumn ? $" class=\"{row[c].Split(' ')[0] switch { "holds" => "holds", "does" => "does-not-hold", _ => "not-resolved" }}\"" : "";
                sb.Append("<td").Append(css).Append('>').Append(E(row[c])).Append("</td>");
            }
            sb.Append("</tr>\n");
        }
        sb.Append("</table>\n");
    }

    private static string E(string text) => SvgCharts.Escape(text);

    /// <summary>Runs on load: every image decoded, every figure drew marks, no script error; the verdict goes into #selfcheck.</summary>
    internal const string SelfCheckScript = """
        <script>
        (function () {
          var errors = [];
          window.addEventListener('error', function (e) { errors.push('script error: ' + e.message); });
          var consoleError = console.error;
          console.error = function () { errors.push('console error: ' + Array.prototype.join.call(arguments, ' ')); consoleError.apply(console, arguments); };
          window.addEventListener('load', function () {
            var problems = errors.slice();
            var images = document.querySelectorAll('img');
            images.forEach(function (img) {
              if (!img.complete || img.naturalWidth === 0) { problems.push('image did not load: ' + img.alt); }
            });
            var figures = document.querySelectorAll('figure');
            figures.forEach(function (fig, i) {
              var svg = fig.querySelector('svg');
              if (svg) {
                var marks = svg.querySelectorAll('polyline, path, circle, line').length;
                var box = svg.getBBox();
                if (marks === 0 || box.width === 0 || box.height === 0) { problems.push('empty figure ' + i + ': ' + (svg.getAttribute('aria-label') || '')); }
              } else if (!fig.querySelector('img')) {
                problems.push('figure ' + i + ' has neither an SVG nor an image');
              }
            });
            var out = document.getElementById('selfcheck');
            out.setAttribute('data-status', problems.length === 0 ? 'ok' : 'fail');
            out.setAttribute('data-figures', String(figures.length));
            out.setAttribute('data-images', String(images.length));
            out.textContent = problems.length === 0
              ? 'page self-check: ' + figures.length + ' figures drawn, ' + images.length + ' images decoded, no script errors'
              : 'page self-check FAILED: ' + problems.join('; ');
          });
        })();
        </script>

        """;
}
