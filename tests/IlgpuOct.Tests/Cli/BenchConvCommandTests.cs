using System.Text.Json;
using FluentAssertions;
using IlgpuOct.Cli;
using IlgpuOct.Cli.Rendering;
using Xunit;

namespace IlgpuOct.Tests.Cli;

public sealed class BenchConvCommandTests
{
    [Fact]
    public void Bench_conv_times_every_distinct_resnet18_convolution_and_weighs_the_total_by_count()
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = Program.Run(["bench", "conv", "--resolution", "32", "--batch", "2", "--threads", "1", "--repeats", "1", "--json"],
            CliConsole.ForWriters(output, error));
        code.Should().Be(0, error.ToString());

        using var report = JsonDocument.Parse(output.ToString());
        var layers = report.RootElement.GetProperty("layers").EnumerateArray().ToList();
        // Stem, layer1's 3x3/1, then per later stage its 3x3/2, 1x1/2 downsample and 3x3/1.
        layers.Select(l => l.GetProperty("name").GetString()).Should().Equal(
            "stem 7x7/2", "layer1 3x3/1",
            "layer2 3x3/2", "layer2 downsample 1x1/2", "layer2 3x3/1",
            "layer3 3x3/2", "layer3 downsample 1x1/2", "layer3 3x3/1",
            "layer4 3x3/2", "layer4 downsample 1x1/2", "layer4 3x3/1");
        layers[0].GetProperty("shape").GetString().Should().Be("1->64 32x32->16x16");
        layers[^1].GetProperty("shape").GetString().Should().Be("512->512 1x1->1x1");
        layers.Sum(l => l.GetProperty("count").GetInt32()).Should().Be(20, "ResNet-18 has 20 convolutions");

        var total = report.RootElement.GetProperty("total");
        total.GetProperty("count").GetInt32().Should().Be(20);
        double weightedMflop = layers.Sum(l => l.GetProperty("count").GetInt32() * l.GetProperty("mflop").GetDouble());
        // Each row is rounded to 0.1 MFLOP: up to 0.05 per occurrence of its 20.
        total.GetProperty("mflop").GetDouble().Should().BeApproximately(weightedMflop, 20 * 0.05);
        foreach (var row in layers.Append(total))
        {
            row.GetProperty("nchw").GetProperty("median_ms").GetDouble().Should().BePositive();
            row.GetProperty("nhwc").GetProperty("median_ms").GetDouble().Should().BePositive();
            row.GetProperty("speedup").GetDouble().Should().BePositive();
        }
    }
}
