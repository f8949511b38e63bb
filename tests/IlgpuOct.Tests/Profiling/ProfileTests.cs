using System.Diagnostics;
using System.Xml.Linq;
using FluentAssertions;
using IlgpuOct.Tests.Data;
using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Operators;
using IlgpuOct.Kernels.Profiling;
using Xunit;

namespace IlgpuOct.Tests.Profiling;

public sealed class ProfileTests
{
    [Theory]
    [InlineData("cpu", "operator", "Conv2d.Forward")]
    [InlineData("cpu-kernels", "kernel", "IlgpuOct.Kernels.Operators.Conv2d.ConvWarpTiled")]
    public void Profile_train_prints_the_table_and_writes_the_svg(string device, string granularity, string expectedRow)
    {
        using var folder = new TempFolder();
        string svg = folder.File("profile.svg");
        var (code, stdout, stderr) = RunCli("profile", "train", "--device", device, "--resolution", "16", "--batch", "2", "--width", "4",
            "--steps", "1", "--warmup", "0", "--svg", svg);
        code.Should().Be(0, stderr);
        var lines = stdout.Split('\n');
        lines.Should().Contain(l => l.StartsWith(granularity + " ", StringComparison.Ordinal) && l.Contains("GFLOP/s") && l.Contains("of roofline"));
        var row = lines.Single(l => l.StartsWith(expectedRow + " ", StringComparison.Ordinal)).Split(' ', StringSplitOptions.RemoveEmptyEntries);
        int.Parse(row[1]).Should().BeGreaterThan(0, "the row counts its calls");
        double.Parse(row[2], System.Globalization.CultureInfo.InvariantCulture).Should().BeGreaterThan(0, "the row has a time");
        stdout.Should().Contain("roofline: ");
        var chart = XDocument.Load(svg);
        chart.Root!.Name.LocalName.Should().Be("svg");
        chart.Descendants().Where(e => e.Name.LocalName == "text").Select(e => e.Value).Should().Contain(expectedRow);
    }

    [Fact]
    public void Launch_times_and_costs_aggregate_per_kernel_and_share_an_operators_cost_by_time()
    {
        KernelRegistry.EnsureLoaded(typeof(Elementwise).Assembly);
        using var acc = new HostAccelerator(AcceleratorKind.CpuKernels);
        var profiler = new Profiler();
        acc.Profiler = profiler;
        var s = new BatchNorm2dShape(2, 3, 4, 4);
        using var x = acc.Upload<float>(Enumerable.Range(0, s.Length).Select(i => (float)Math.Sin(i)).ToArray());
        using var y = acc.Allocate<float>(s.Length);
        using var gamma = acc.Upload<float>([1f, 1f, 1f]);
        using var beta = acc.Allocate<float>(3);
        using var mean = acc.Allocate<float>(3);
        using var variance = acc.Upload<float>([1f, 1f, 1f]);
        using var saveMean = acc.Allocate<float>(3);
        using var saveInvStd = acc.Allocate<float>(3);
        BatchNorm2d.ForwardTraining(acc, s, x.View, gamma.View, beta.View, mean.View, variance.View, y.View, saveMean.View, saveInvStd.View);
        Elementwise.ReluForward(acc, y.View, y.View);
        acc.Profiler = null;
        Elementwise.ReluForward(acc, y.View, y.View); // not recorded

        var report = ProfileReport.Build("test", acc.Name, 1, 1.0, profiler, new Roofline(100, 10, "test"));
        report.Granularity.Should().Be("kernel");
        report.Rows.Select(r => r.Name).Should().BeEquivalentTo(new[] { "BatchNorm2d.BnForwardFused", "Elementwise.ReluForward" }.Select(k => KernelRegistry.Find(k)!.Name));
        report.Rows.Should().OnlyContain(r => r.Count == 1);
        report.Rows.Sum(r => r.Share).Should().BeApproximately(1.0, 1e-12);
        var bnCost = BatchNorm2d.Cost(s, flopsPerElement: 7, passes: 3);
        // The operator's kernels share its cost in proportion to their time (one fused kernel: all of it).
        report.Rows.Where(r => r.Operators == "BatchNorm2d.ForwardTraining").Sum(r => r.FlopsPerLaunch!.Value).Should().BeApproximately(bnCost.Flops, 1e-6);
        var relu = report.Rows.Single(r => r.Name == KernelRegistry.Find("Elementwise.ReluForward")!.Name);
        relu.FlopsPerLaunch.Should().Be(s.Length);
        relu.BytesPerLaunch.Should().Be(8.0 * s.Length);
        double seconds = relu.TotalMilliseconds / 1000;
        relu.Gflops.Should().BeApproximately(s.Length / seconds / 1e9, 1e-9);
        relu.RooflineFraction.Should().BeApproximately(Math.Max(relu.Gflops!.Value / 100, relu.GBytesPerSecond!.Value / 10), 1e-12);
    }

    [Fact]
    public void Nested_operator_calls_on_cpu_count_only_their_own_time()
    {
        using var acc = new HostAccelerator(AcceleratorKind.Cpu);
        var profiler = new Profiler();
        acc.Profiler = profiler;
        var linear = new LinearShape(4, 8, 3);
        using var x = acc.Upload<float>(new float[linear.InputLength]);
        using var w = acc.Upload<float>(new float[linear.WeightLength]);
        using var b = acc.Upload<float>(new float[linear.Out]);
        using var y = acc.Allocate<float>(linear.OutputLength);
        using (OperatorScope.Enter(acc, "Outer", null))
        {
            Linear.Forward(acc, linear, x.View, w.View, b.View, y.View);
        }
        var report = ProfileReport.Build("test", acc.Name, 1, 1.0, profiler, null);
        report.Granularity.Should().Be("operator");
        report.Rows.Select(r => r.Name).Should().BeEquivalentTo(["Outer", "Linear.Forward"]);
        var outer = profiler.Calls.Single(c => c.Operator == "Outer");
        outer.Cost.Should().BeNull("the scope declared no cost model");
        report.Rows.Should().OnlyContain(r => r.RooflineFraction == null);
    }

    [Fact]
    public void Per_call_rows_put_the_same_call_of_every_step_together_in_call_order()
    {
        using var acc = new HostAccelerator(AcceleratorKind.Cpu);
        var profiler = new Profiler();
        acc.Profiler = profiler;
        var small = new LinearShape(4, 8, 3);
        var large = new LinearShape(4, 16, 5);
        var buffers = new List<IDisposable>();
        Action Layer(LinearShape s)
        {
            var x = acc.Upload<float>(new float[s.InputLength]);
            var w = acc.Upload<float>(new float[s.WeightLength]);
            var b = acc.Upload<float>(new float[s.Out]);
            var y = acc.Allocate<float>(s.OutputLength);
            buffers.AddRange([x, w, b, y]);
            return () => Linear.Forward(acc, s, x.View, w.View, b.View, y.View);
        }
        var first = Layer(large);
        var third = Layer(small);
        const int steps = 3;
        for (int step = 0; step < steps; step++)
        {
            first();
            using (OperatorScope.Enter(acc, "Between", null))
            {
            }
            third();
        }
        buffers.ForEach(buffer => buffer.Dispose());
        var report = ProfileReport.BuildPerCall("test", acc.Name, steps, 1.0, profiler, null);
        report.Granularity.Should().Be("call");
        report.Rows.Select(r => r.Name).Should().Equal("#01 Linear.Forward", "#02 Between", "#03 Linear.Forward");
        report.Rows.Should().OnlyContain(r => r.Count == steps);
        report.Rows[0].BytesPerLaunch.Should().Be(Linear.ForwardCost(large).Bytes, "the first call of each step is the large layer");
        report.Rows[2].BytesPerLaunch.Should().Be(Linear.ForwardCost(small).Bytes);
        report.Rows[1].BytesPerLaunch.Should().BeNull("the scope declared no cost model");

        Action uneven = () => ProfileReport.BuildPerCall("test", acc.Name, 2, 1.0, profiler, null);
        uneven.Should().Throw<InvalidOperationException>().WithMessage("*2 profiled steps made different operator calls (9 in all)*");
    }

    internal static (int Code, string Stdout, string Stderr) RunCli(params string[] args)
    {
        string dll = Path.Combine(AppContext.BaseDirectory, "ilgpuoct.dll");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(dll);
        foreach (string a in args)
        {
            start.ArgumentList.Add(a);
        }
        start.Environment["CI"] = "true"; // plain tables
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        string stdout = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, stdout, stderr.Result);
    }
}
