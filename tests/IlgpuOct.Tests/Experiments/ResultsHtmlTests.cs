using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;
using FluentAssertions;
using IlgpuOct.Defense.Experiments;
using IlgpuOct.Kernels;
using Xunit;

namespace IlgpuOct.Tests.Experiments;

/// <summary>
/// A fact that needs Debian's headless Chromium: skipped, with the reason shown, where it is
/// missing, unless ILGPUOCT_REQUIRE_CHROMIUM=1 (set by .ci/run, which installs it).
/// </summary>
public sealed class ChromiumFactAttribute : FactAttribute
{
    public ChromiumFactAttribute()
    {
        if (HeadlessChromium.Executable() is null && Environment.GetEnvironmentVariable("ILGPUOCT_REQUIRE_CHROMIUM") != "1")
        {
            Skip = "chromium is not installed (apt-get install chromium); set ILGPUOCT_REQUIRE_CHROMIUM=1 to make this a failure.";
        }
    }
}

internal static class HeadlessChromium
{
    public static string? Executable() =>
        new[] { "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome" }.FirstOrDefault(File.Exists);

    /// <summary>Loads <paramref name="page"/> headless, isolated and offline; returns the DOM after load and the browser's stderr (console messages included).</summary>
    public static (string Dom, string Log) DumpDom(string page, string profileDirectory)
    {
        string exe = Executable() ?? throw new InvalidOperationException("chromium is not installed: apt-get install chromium (.ci/run does).");
        var start = new ProcessStartInfo(exe)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (string arg in new[] { "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", $"--user-data-dir={profileDirectory}", "--enable-logging=stderr", "--v=0",
            "--virtual-time-budget=10000", "--dump-dom", new Uri(page).AbsoluteUri })
        {
            start.ArgumentList.Add(arg);
        }
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        string dom = process.StandardOutput.ReadToEnd();
        if (!process.WaitForExit(120_000))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"chromium did not finish rendering {page} within 120 s.");
        }
        return (dom, stderr.Result);
    }
}

public sealed class ResultsHtmlTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), $"ilgpuoct-html-{Guid.NewGuid():N}");

    public void Dispose()
    {
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, true);
        }
    }

    private SeedsSummary RunTwoSeeds()
    {
        using var acc = DeviceSelection.Open("cpu", out _);
        return ReproduceSeeds.Run(acc, new ReproduceOptions { Profile = ReproduceProfile.Micro, OutputDirectory = Path.Combine(_dir, "run") }, [3, 4]);
    }

    [ChromiumFact]
    public void TwoSeedsWriteTheReportAndChromiumRendersItWithoutErrors()
    {
        var summary = RunTwoSeeds();
        string run = Path.Combine(_dir, "run");
        foreach (string file in new[] { Reproduce.ResultsJson, Reproduce.ResultsMarkdown, ReproduceSeeds.ResultsHtml, Reproduce.Figure4SvgName,
            "seed-3/results.json", "seed-3/outcomes.json", "seed-4/results.md" })
        {
            File.Exists(Path.Combine(run, file)).Should().BeTrue(file);
        }
        summary.Seeds.Should().Equal(3, 4);
        summary.Models.Should().OnlyContain(m => m.CleanTestAccuracy.Seeds == 2);
        // A statistic without data (no successful adversarial image in any seed) is "not resolved"; otherwise the interval brackets the estimate.
        summary.Claims.Should().NotBeEmpty().And.OnlyContain(c => double.IsNaN(c.Estimate)
            ? c.Verdict == Claims.NotResolved
            : c.Low <= c.Estimate + 1e-12 && c.Estimate <= c.High + 1e-12 && (c.Verdict == Claims.Holds || c.Verdict == Claims.DoesNotHold || c.Verdict == Claims.NotResolved));
        // Micro sweeps lambda over {0, 1} on 8 held-out images for HFC and density-PGD against each detector, per model and seed.
        summary.LambdaChoices.Should().HaveCount(2 * ReproduceProfile.Micro.Modes.Count * (1 + Reproduce.DetectorNames.Length));
        summary.LambdaChoices.Should().OnlyContain(c => c.HeldOutImages == 8 && c.Lambdas.Contains(c.Chosen) && c.SystemSuccess[Array.IndexOf(c.Lambdas, c.Chosen)] == c.SystemSuccess.Max());
        using (var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(run, Reproduce.ResultsJson))))
        {
            doc.RootElement.GetProperty("claims").GetArrayLength().Should().Be(summary.Claims.Count);
        }
        File.ReadAllText(Path.Combine(run, Reproduce.ResultsMarkdown)).Should().Contain(" ± ").And.Contain("## Which claims hold");
        string svg = File.ReadAllText(Path.Combine(run, Reproduce.Figure4SvgName));
        svg.Should().Contain("class=\"errorbar\"", "two seeds give error bars");

        string html = File.ReadAllText(Path.Combine(run, ReproduceSeeds.ResultsHtml));
        html.Should().NotContain("src=\"http").And.NotContain("href=\"http", "the page is self-contained");
        var (dom, log) = HeadlessChromium.DumpDom(Path.Combine(run, ReproduceSeeds.ResultsHtml), Path.Combine(_dir, "chromium-profile"));
        var check = Regex.Match(dom, "<p id=\"selfcheck\" data-status=\"(?<status>[a-z]+)\" data-figures=\"(?<figures>\\d+)\" data-images=\"(?<images>\\d+)\">(?<text>[^<]*)");
        check.Success.Should().BeTrue($"the page's self-check ran; DOM starts: {dom[..Math.Min(300, dom.Length)]}");
        check.Groups["status"].Value.Should().Be("ok", check.Groups["text"].Value);
        int.Parse(check.Groups["images"].Value).Should().Be(summary.Models.Count(m => m.Skipped is null) > 0 ? 7 : 0, "one gallery strip per shown attack of the first model");
        int.Parse(check.Groups["figures"].Value).Should().BeGreaterThanOrEqualTo(3 + 7, "Fig. 4, the t-SNE, ROC/PR pairs and the gallery");
        var consoleErrors = log.Split('\n').Where(l => l.Contains(":CONSOLE", StringComparison.Ordinal) && (l.Contains("Uncaught", StringComparison.Ordinal) || l.Contains("ERROR", StringComparison.Ordinal) || l.Contains("error", StringComparison.OrdinalIgnoreCase))).ToList();
        consoleErrors.Should().BeEmpty("the page logs no console errors");
    }

    [ChromiumFact]
    public void TheSelfCheckFlagsAMissingImageAndAnEmptyFigure()
    {
        // The same script on a page with a broken image and a blank SVG must report failure, or the test above could not fail.
        Directory.CreateDirectory(_dir);
        string page = Path.Combine(_dir, "broken.html");
        string script = ResultsHtmlPage.SelfCheckScript;
        File.WriteAllText(page, "<!DOCTYPE html><html><body><p id=\"selfcheck\" data-status=\"pending\"></p><figure><img src=\"data:image/png;base64,AAAA\" alt=\"broken\"></figure><figure><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"10\" height=\"10\" aria-label=\"blank\"></svg></figure>" + script + "</body></html>");
        var (dom, _) = HeadlessChromium.DumpDom(page, Path.Combine(_dir, "chromium-profile-broken"));
        dom.Should().Contain("data-status=\"fail\"").And.Contain("image did not load: broken").And.Contain("empty figure 1: blank");
    }
}
