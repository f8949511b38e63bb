using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using IlgpuOct.Cli.Rendering;
using IlgpuOct.Kernels.Cpu;
using IlgpuOct.Kernels.Operators;

namespace IlgpuOct.Cli.Commands;

/// <summary>
/// <c>ilgpuoct bench dgemm</c>: GFLOP/s of the float64 GEMM (<see cref="DgemmEngine"/>) on square sizes and
/// on the Gaussian mixture's EM products (the covariance Gram matrix, upper triangle only, and the E-step's
/// points times the triangular precision factors side by side), against the machine's float64 peak.
/// </summary>
internal static class BenchDgemmCommand
{
    private sealed record Shape(string Name, int M, int N, int K, bool TransA, DgemmOptions Options, double UsefulFlops);

    private sealed record Row(string Name, int M, int N, int K, string Options, double MedianMs, double MinMs,
        double Gflops, double FractionOfPeak, double? GflopsPerCpuSecond, double? CpuFractionOfCorePeak);

    private sealed record Report(string Implementation, int Threads, int Repeat, double Ghz, int Fp64FlopsPerCycle, double PeakGflops, IReadOnlyList<Row> Results);

    public static Command Create()
    {
        var sizes = new Option<int[]>("--sizes")
        {
            Description = "Square sizes n for n x n x n products (default 512 1024).",
            AllowMultipleArgumentsPerToken = true,
        }.EachInRange(1, 8192);
        var n = new Option<int>("--n") { Description = "Points of the EM shapes.", DefaultValueFactory = _ => 4000 }.InRange(1, 1_000_000);
        var d = new Option<int>("--d") { Description = "Features of the EM shapes.", DefaultValueFactory = _ => 512 }.InRange(1, 8192);
        var k = new Option<int>("--k") { Description = "Components of the EM E-step shape.", DefaultValueFactory = _ => 4 }.InRange(1, 64);
        var repeat = new Option<int>("--repeat") { Description = "Timed runs per product after one warm-up; the median is reported.", DefaultValueFactory = _ => 5 }.InRange(1, 1000);
        var threads = CliRunner.ThreadsOption();
        var json = CliRunner.JsonOption();
        var command = new Command("dgemm", "Float64 GEMM GFLOP/s (cpu engine): square sizes and the Gaussian mixture's EM products, with the fraction of FP64 peak.")
        {
            sizes, n, d, k, repeat, threads, json,
        };
        CliRunner.SetAction(command, (parse, token) =>
        {
            int rows = parse.GetValue(n), features = parse.GetValue(d), components = parse.GetValue(k);
            var shapes = (parse.GetValue(sizes) is { Length: > 0 } given ? given : [512, 1024])
                .Select(s => new Shape($"square {s}", s, s, s, false, DgemmOptions.None, 2.0 * s * s * s)).ToList();
            // M-step: sum_n r_n (x_n - mu)(x_n - mu)^T, the upper triangle; useful FLOPs count the elements j >= i.
            shapes.Add(new Shape($"EM Gram {features}x{features}x{rows} (upper)", features, features, rows, true, DgemmOptions.UpperTriangleOfC,
                (double)rows * features * (features + 1)));
            // E-step: X [M_1 | ... | M_K] with upper-triangular M; useful FLOPs count the non-zeros of M.
            shapes.Add(new Shape($"EM E-step {rows}x({components}*{features})x{features} (triangular)", rows, components * features, features, false,
                DgemmOptions.SkipZeroRowsOfB, (double)rows * components * features * (features + 1)));
            var report = Measure(shapes, parse.GetValue(repeat), parse.GetValue(threads), token);
            Ui.WriteReport(parse.GetValue(json), report, Render);
            return CliRunner.Ok;
        });
        return command;
    }

    private static Report Measure(IReadOnlyList<Shape> shapes, int repeats, int threads, CancellationToken token)
    {
        var peak = CpuPeak.Estimate(SgemmMicroKernel.Auto);
        int fp64PerCycle = peak.FlopsPerCycle / 2; // the same vectors hold half as many doubles
        int cores = Math.Min(threads, peak.Cores);
        double peakGflops = cores * peak.Ghz * fp64PerCycle;
        var rng = new Random(1234);
        var rows = new List<Row>();
        foreach (var shape in shapes)
        {
            token.ThrowIfCancellationRequested();
            var a = RandomArray(checked(shape.M * shape.K), rng);
            var b = RandomArray(checked(shape.K * shape.N), rng);
            if ((shape.Options & DgemmOptions.SkipZeroRowsOfB) != 0)
            {
                // K upper-triangular blocks side by side, as the E-step's precision factors.
                for (int p = 0; p < shape.K; p++)
                {
                    for (int j = 0; j < shape.N; j++)
                    {
                        if (p > j % shape.K)
                        {
                            b[p * shape.N + j] = 0;
                        }
                    }
                }
            }
            var c = new double[checked(shape.M * shape.N)];
            int lda = shape.TransA ? shape.M : shape.K;
            void RunOnce() => DgemmEngine.Multiply(shape.TransA, false, shape.M, shape.N, shape.K, 1.0, a, lda, b, shape.N, 0.0, c, shape.N, threads, shape.Options);
            RunOnce(); // warm-up: JIT, thread pool, page faults
            var times = new double[repeats];
            var cpuSeconds = new double[repeats];
            for (int r = 0; r < repeats; r++)
            {
                token.ThrowIfCancellationRequested();
                double cpuBefore = CpuTime.ProcessSeconds();
                var watch = Stopwatch.StartNew();
                RunOnce();
                times[r] = watch.Elapsed.TotalMilliseconds;
                cpuSeconds[r] = CpuTime.ProcessSeconds() - cpuBefore;
            }
            Array.Sort(times);
            Array.Sort(cpuSeconds);
            double median = times[repeats / 2];
            double medianCpu = cpuSeconds[repeats / 2];
            double gflops = shape.UsefulFlops / (median * 1e-3) / 1e9;
            // CPU time counts only the time our threads ran: on a shared machine it shows what the code does per busy core.
            double? perCpuSecond = medianCpu > 0 ? shape.UsefulFlops / medianCpu / 1e9 : null;
            rows.Add(new Row(shape.Name, shape.M, shape.N, shape.K, shape.Options.ToString(), Math.Round(median, 3), Math.Round(times[0], 3),
                Math.Round(gflops, 2), Math.Round(gflops / peakGflops, 3),
                perCpuSecond is { } g ? Math.Round(g, 2) : null,
                perCpuSecond is { } h ? Math.Round(h / (peak.Ghz * fp64PerCycle), 3) : null));
        }
        return new Report($"DgemmEngine, {DgemmEngine.Mr}x{DgemmEngine.Nr} micro-kernel (Vector256<double>)", threads, repeats,
            Math.Round(peak.Ghz, 3), fp64PerCycle, Math.Round(peakGflops, 1), rows);
    }

    private static void Render(Report report)
    {
        var inv = CultureInfo.InvariantCulture;
        CliConsole.Current.WriteLine($"{report.Implementation}; {report.Threads} threads; median of {report.Repeat} runs after 1 warm-up");
        CliConsole.Current.WriteLine(string.Create(inv,
            $"FP64 peak: {report.PeakGflops:F1} GFLOP/s ({report.Ghz:F2} GHz x {report.Fp64FlopsPerCycle} FLOP/cycle per core); GFLOP/s count useful FLOPs (upper triangle, non-zeros of triangular factors)"));
        CliConsole.Current.WriteLine("GFLOP/CPU-s: FLOPs over the process's CPU time (the time its threads ran; differs from wall time on a busy machine); of core peak: that over one core's peak");
        Ui.Table(null, ["product", "m", "n", "k", "options", "median ms", "min ms", "GFLOP/s", "of peak", "GFLOP/CPU-s", "of core peak"],
            report.Results.Select(r => (IReadOnlyList<string>)
            [
                r.Name, r.M.ToString(inv), r.N.ToString(inv), r.K.ToString(inv), r.Options, r.MedianMs.ToString("F3", inv), r.MinMs.ToString("F3", inv),
                r.Gflops.ToString("F1", inv), r.FractionOfPeak.ToString("P0", inv), r.GflopsPerCpuSecond?.ToString("F1", inv) ?? "", r.CpuFractionOfCorePeak?.ToString("P0", inv) ?? "",
            ]));
    }

    private static double[] RandomArray(int length, Random rng)
    {
        var data = new double[length];
        for (int i = 0; i < length; i++)
        {
            data[i] = rng.NextDouble() * 2 - 1;
        }
        return data;
    }
}
