using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using IlgpuOct.Cli.Rendering;
using IlgpuOct.Kernels.Cpu;
using IlgpuOct.Kernels.Operators;

namespace IlgpuOct.Cli.Commands;

/// <summary>
/// <c>ilgpuoct bench conv</c>: each distinct eval-mode convolution of ResNet-18 (1 input channel, base
/// width 64) at one input resolution on the cpu engine, the NCHW implicit GEMM
/// (<see cref="Conv2d.ForwardBiasActivationCpu"/>) against the NHWC path (Winograd F(2x2,3x3) where <see cref="Conv2d.NhwcUsesWinograd"/>, else the direct NHWC convolution
/// (<see cref="Conv2d.ForwardNhwcCpu(in Conv2dShape, ReadOnlySpan{float}, int, ReadOnlySpan{float}, ReadOnlySpan{float}, ReadOnlySpan{float}, bool, Span{float}, int)"/>,
/// weights packed outside the timing), timed alternately; the total weighs each shape by its count in the network.
/// </summary>
internal static class BenchConvCommand
{
    /// <summary>One convolution of the network and how many times it occurs there.</summary>
    internal sealed record Layer(string Name, Conv2dShape Shape, int Count)
    {
        public double Flops => 2.0 * Shape.N * Shape.OutC * Shape.OutH * Shape.OutW * Shape.ColumnRows;
    }

    /// <summary>Wall milliseconds of the timed runs, GFLOP/s at the median, and GFLOP per second of the process's CPU time (median run; on a shared machine: what the code does per busy core).</summary>
    internal sealed record Timing(double MedianMs, double MinMs, double MaxMs, double Gflops, double GflopsPerCpuSecond);

    /// <param name="NhwcAlgorithm">What the NHWC path runs for this shape: "direct" or "Winograd" ("" in the total row).</param>
    internal sealed record Row(string Name, string Shape, int Count, double Mflop, Timing Nchw, Timing Nhwc, double Speedup, string NhwcAlgorithm);

    internal sealed record Report(int Resolution, int Batch, int Threads, int Repeats, string LoadAverageBefore, string LoadAverageAfter,
        IReadOnlyList<Row> Layers, Row Total);

    /// <summary>The distinct convolutions of eval-mode ResNet-18 (torchvision layout) on batch x 1 x resolution^2 inputs.</summary>
    internal static IReadOnlyList<Layer> ResnetLayers(int resolution, int batch)
    {
        var stem = new Conv2dShape(batch, 1, resolution, resolution, 64, 7, 2, 3);
        var layers = new List<Layer> { new("stem 7x7/2", stem, 1) };
        int side = (stem.OutH + 2 - 3) / 2 + 1; // the 3x3/2 max-pool, padding 1
        int channels = 64;
        for (int stage = 1; stage <= 4; stage++)
        {
            if (stage == 1)
            {
                layers.Add(new($"layer1 3x3/1", new Conv2dShape(batch, channels, side, side, channels, 3, 1, 1), 4));
                continue;
            }
            var down = new Conv2dShape(batch, channels, side, side, channels * 2, 3, 2, 1);
            layers.Add(new($"layer{stage} 3x3/2", down, 1));
            layers.Add(new($"layer{stage} downsample 1x1/2", new Conv2dShape(batch, channels, side, side, channels * 2, 1, 2, 0), 1));
            channels *= 2;
            side = down.OutH;
            layers.Add(new($"layer{stage} 3x3/1", new Conv2dShape(batch, channels, side, side, channels, 3, 1, 1), 3));
        }
        return layers;
    }

    public static Command Create()
    {
        var resolution = new Option<int>("--resolution") { Description = "Input height and width.", DefaultValueFactory = _ => 64 }.InRange(32, 1024);
        var batch = new Option<int>("--batch") { Description = "Images per convolution.", DefaultValueFactory = _ => 32 }.InRange(1, 1024);
        var repeats = new Option<int>("--repeats") { Description = "Timed runs of each implementation per shape (alternated) after one warm-up each.", DefaultValueFactory = _ => 5 }.InRange(1, 1000);
        var only = new Option<string?>("--only") { Description = "Time only the convolutions whose name starts with this (\"stem\", \"layer4\", \"layer4 3x3/1\")." };
        var threads = CliRunner.ThreadsOption();
        var json = CliRunner.JsonOption();
        var command = new Command("conv", "ResNet-18's eval-mode convolutions on cpu: NCHW implicit GEMM vs the NHWC path (direct, or Winograd for 3x3/1 from 256 channels where it does fewer multiply-adds), GFLOP/s and speed-up.")
        {
            resolution, batch, repeats, only, threads, json,
        };
        command.Require(r =>
        {
            long elements = (long)r.GetValue(batch) * 64 * (r.GetValue(resolution) / 2 + 4) * (r.GetValue(resolution) / 2 + 4);
            if (elements > int.MaxValue)
            {
                return $"--batch {r.GetValue(batch)} x 64 x (--resolution {r.GetValue(resolution)} / 2)^2 = {elements} activations, more than one tensor may hold; lower --batch or --resolution.";
            }
            string? prefix = r.GetValue(only);
            return prefix is null || Selected(ResnetLayers(r.GetValue(resolution), 1), prefix).Count > 0
                ? null
                : $"--only \"{prefix}\" names no convolution; use a prefix of: {string.Join(", ", ResnetLayers(64, 1).Select(l => $"\"{l.Name}\""))}.";
        });
        CliRunner.SetAction(command, (parse, token) =>
        {
            var report = Measure(parse.GetValue(resolution), parse.GetValue(batch), parse.GetValue(threads), parse.GetValue(repeats), parse.GetValue(only), token);
            Ui.WriteReport(parse.GetValue(json), report, Render);
            return CliRunner.Ok;
        });
        return command;
    }

    private static List<Layer> Selected(IReadOnlyList<Layer> layers, string? prefix) =>
        layers.Where(l => prefix is null || l.Name.StartsWith(prefix, StringComparison.OrdinalIgnoreCase)).ToList();

    private static Report Measure(int resolution, int batch, int threads, int repeats, string? only, CancellationToken token)
    {
        string loadBefore = LoadAverage();
        var rows = new List<Row>();
        double nchwTotal = 0, nhwcTotal = 0, nchwMinTotal = 0, nhwcMinTotal = 0, nchwMaxTotal = 0, nhwcMaxTotal = 0, flopsTotal = 0, nchwCpuTotal = 0, nhwcCpuTotal = 0;
        int layersTotal = 0;
        var rng = new Random(1234);
        foreach (var layer in Selected(ResnetLayers(resolution, batch), only))
        {
            token.ThrowIfCancellationRequested();
            var (nchw, nhwc, nchwCpu, nhwcCpu) = TimeLayer(layer.Shape, threads, repeats, rng, token);
            rows.Add(new Row(layer.Name, $"{layer.Shape.InC}->{layer.Shape.OutC} {layer.Shape.H}x{layer.Shape.W}->{layer.Shape.OutH}x{layer.Shape.OutW}",
                layer.Count, Math.Round(layer.Flops / 1e6, 1), Summarize(nchw, nchwCpu, layer.Flops), Summarize(nhwc, nhwcCpu, layer.Flops), Math.Round(Median(nchw) / Median(nhwc), 3),
                Conv2d.NhwcUsesWinograd(layer.Shape) ? "Winograd" : "direct"));
            nchwTotal += layer.Count * Median(nchw);
            nhwcTotal += layer.Count * Median(nhwc);
            nchwMinTotal += layer.Count * nchw.Min();
            nhwcMinTotal += layer.Count * nhwc.Min();
            nchwMaxTotal += layer.Count * nchw.Max();
            nhwcMaxTotal += layer.Count * nhwc.Max();
            flopsTotal += layer.Count * layer.Flops;
            nchwCpuTotal += layer.Count * Median(nchwCpu);
            nhwcCpuTotal += layer.Count * Median(nhwcCpu);
            layersTotal += layer.Count;
        }
        var total = new Row("total (x count)", "", layersTotal, Math.Round(flopsTotal / 1e6, 1),
            new Timing(Math.Round(nchwTotal, 3), Math.Round(nchwMinTotal, 3), Math.Round(nchwMaxTotal, 3), Math.Round(flopsTotal / (nchwTotal * 1e-3) / 1e9, 1), Math.Round(flopsTotal / nchwCpuTotal / 1e9, 1)),
            new Timing(Math.Round(nhwcTotal, 3), Math.Round(nhwcMinTotal, 3), Math.Round(nhwcMaxTotal, 3), Math.Round(flopsTotal / (nhwcTotal * 1e-3) / 1e9, 1), Math.Round(flopsTotal / nhwcCpuTotal / 1e9, 1)),
            Math.Round(nchwTotal / nhwcTotal, 3), "");
        return new Report(resolution, batch, threads, repeats, loadBefore, LoadAverage(), rows, total);
    }

    /// <summary>Wall milliseconds and CPU seconds of each timed run of the NCHW and the NHWC convolution (bias and ReLU fused in both), alternated.</summary>
    private static (double[] Nchw, double[] Nhwc, double[] NchwCpu, double[] NhwcCpu) TimeLayer(Conv2dShape s, int threads, int repeats, Random rng, CancellationToken token)
    {
        const int border = 1; // ResNet-18 activations carry a one-pixel zero border (the stem's input three)
        int inputBorder = Math.Max(border, s.Padding);
        float[] x = BenchGemmCommand.RandomArray(s.InputLength, rng);
        float[] w = BenchGemmCommand.RandomArray(s.WeightLength, rng);
        float[] bias = BenchGemmCommand.RandomArray(s.OutC, rng);
        var y = new float[s.OutputLength];
        var xShape = new NhwcShape(s.N, s.H, s.W, s.InC, inputBorder);
        float[] xNhwc = new float[xShape.Length];
        NhwcLayout.FromNchwCpu(xShape, x, xNhwc);
        // The NHWC path as the network runs it: Winograd where it applies, else the direct convolution.
        var packed = new float[Conv2d.NhwcWeightsLength(s)];
        Conv2d.PackWeightsNhwcPath(s, w, packed);
        var yNhwc = new float[s.N * (s.OutH + 2 * border) * (s.OutW + 2 * border) * s.OutC];

        void Nchw() => Conv2d.ForwardBiasActivationCpu(s, x, w, bias, default, true, y);
        void Nhwc() => Conv2d.ForwardNhwcPathCpu(s, xNhwc, inputBorder, packed, bias, default, true, yNhwc, border);

        int previousThreads = Gemm.CpuMaxThreads;
        Gemm.CpuMaxThreads = threads;
        try
        {
            Nchw(); // warm-up: JIT, thread pool, page faults
            Nhwc();
            // The previous shapes' large arrays are garbage now: collect them here, not in a background GC during the timing.
            GC.Collect();
            GC.WaitForPendingFinalizers();
            var nchw = new double[repeats];
            var nhwc = new double[repeats];
            var nchwCpu = new double[repeats];
            var nhwcCpu = new double[repeats];
            for (int r = 0; r < repeats; r++)
            {
                token.ThrowIfCancellationRequested();
                (nchw[r], nchwCpu[r]) = Time(Nchw);
                (nhwc[r], nhwcCpu[r]) = Time(Nhwc);
            }
            return (nchw, nhwc, nchwCpu, nhwcCpu);
        }
        finally
        {
            Gemm.CpuMaxThreads = previousThreads;
        }
    }

    private static (double WallMs, double CpuSeconds) Time(Action run)
    {
        double cpuStart = CpuTime.ProcessSeconds();
        long start = Stopwatch.GetTimestamp();
        run();
        return (Stopwatch.GetElapsedTime(start).TotalMilliseconds, CpuTime.ProcessSeconds() - cpuStart);
    }

    private static double Median(double[] times)
    {
        var sorted = times.Order().ToArray();
        int m = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[m] : (sorted[m - 1] + sorted[m]) / 2;
    }

    private static Timing Summarize(double[] times, double[] cpuSeconds, double flops)
    {
        double median = Median(times);
        return new Timing(Math.Round(median, 3), Math.Round(times.Min(), 3), Math.Round(times.Max(), 3), Math.Round(flops / (median * 1e-3) / 1e9, 1),
            Math.Round(flops / Median(cpuSeconds) / 1e9, 1));
    }

    /// <summary>/proc/loadavg's 1, 5 and 15 minute averages ("" where there is none): timings on a shared machine need them.</summary>
    private static string LoadAverage() =>
        File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "";

    private static void Render(Report report)
    {
        var inv = CultureInfo.InvariantCulture;
        CliConsole.Current.WriteLine($"ResNet-18 convolutions, {report.Resolution}x{report.Resolution}x1 input, batch {report.Batch}, {report.Threads} threads, " +
            $"median (min-max) of {report.Repeats} alternated runs after 1 warm-up (GFLOP/CPU-s: over the process's CPU time); load average {report.LoadAverageBefore} before, {report.LoadAverageAfter} after");
        static string Cell(Timing t, IFormatProvider f) => string.Create(f, $"{t.MedianMs:F2} ({t.MinMs:F2}-{t.MaxMs:F2})");
        Ui.Table(null, ["convolution", "channels, size", "count", "MFLOP", "NCHW GEMM ms", "GFLOP/s", "GFLOP/CPU-s", "NHWC path", "ms", "GFLOP/s", "GFLOP/CPU-s", "speed-up"],
            report.Layers.Append(report.Total).Select(r => (IReadOnlyList<string>)
            [
                r.Name, r.Shape, r.Count.ToString(inv), r.Mflop.ToString("F1", inv),
                Cell(r.Nchw, inv), r.Nchw.Gflops.ToString("F1", inv), r.Nchw.GflopsPerCpuSecond.ToString("F1", inv),
                r.NhwcAlgorithm, Cell(r.Nhwc, inv), r.Nhwc.Gflops.ToString("F1", inv), r.Nhwc.GflopsPerCpuSecond.ToString("F1", inv),
                r.Speedup.ToString("F2", inv) + "x",
            ]));
    }
}
