using System.CommandLine;
using System.Globalization;
using IlgpuOct.Cli.Rendering;
using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Cpu;
using IlgpuOct.Kernels.Operators;

namespace IlgpuOct.Cli.Commands;

/// <summary>
/// <c>ilgpuoct bench gemm</c>: GFLOP/s of square SGEMMs and of the im2col GEMMs of ResNet-18's
/// convolutions (batch 32, 64x64 and 224x224 inputs), warm-up then the median of --repeat runs,
/// against the machine's FP32 peak on cpu.
/// </summary>
internal static class BenchGemmCommand
{
    /// <summary>One product to time: C (m, n) = A (m, k) x B (k, n), optionally transposed operands.</summary>
    internal sealed record Shape(string Name, int M, int N, int K, bool TransA = false, bool TransB = false)
    {
        public double Flops => 2.0 * M * N * K;
    }

    internal sealed record Row(string Name, int M, int N, int K, bool TransA, bool TransB, string Variant,
        double MedianMs, double MinMs, double Gflops, double? FractionOfPeak, double? GflopsPerCpuSecond, double? CpuFractionOfPeak);

    internal sealed record Report(string Device, string DeviceName, string Precision, string Implementation, int Threads, int Repeat,
        PeakInfo? Peak, IReadOnlyList<Row> Results);

    internal sealed record PeakInfo(int Cores, string CoresSource, double Ghz, string ClockSource, double ProcCpuinfoGhz,
        int FlopsPerCycle, double PeakGflops);

    /// <summary>
    /// Forward im2col GEMMs of ResNet-18 (torchvision layout), batch 32: C_out x (32 * H_out * W_out) x
    /// (C_in * kh * kw). conv1 is 7x7/2; each stage's 3x3 convolution at its resolution.
    /// </summary>
    internal static IReadOnlyList<Shape> ResnetShapes(int input)
    {
        const int batch = 32;
        int conv1Out = input / 2;
        int stage1 = input / 4; // after the 3x3/2 max-pool
        var shapes = new List<Shape> { new($"r{input} conv1 64x(32*{conv1Out}*{conv1Out})x147", 64, batch * conv1Out * conv1Out, 3 * 49) };
        int channels = 64;
        int side = stage1;
        for (int stage = 1; stage <= 4; stage++)
        {
            shapes.Add(new($"r{input} layer{stage}.conv {channels}x(32*{side}*{side})x{channels * 9}", channels, batch * side * side, channels * 9));
            channels *= 2;
            side /= 2;
        }
        return shapes;
    }

    /// <summary>Largest square size: three n x n float matrices must fit in memory (3 GB at 16384).</summary>
    private const int MaxSize = 16_384;

    public static Command Create()
    {
        var device = CliRunner.DeviceOption("cpu");
        var precision = CliRunner.PrecisionOption();
        var sizes = new Option<int[]>("--sizes")
        {
            Description = "Square sizes n for n x n x n products (default 256 512 1024 2048; 32 64 on cpu-kernels).",
            AllowMultipleArgumentsPerToken = true,
        }.EachInRange(1, MaxSize);
        var shapesOption = new Option<string>("--shapes")
        {
            Description = "Which products: all | square | resnet | resnet64 | resnet224 (default all; square on cpu-kernels).",
        };
        shapesOption.AcceptOnlyFromAmong("all", "square", "resnet", "resnet64", "resnet224");
        var repeat = new Option<int>("--repeat") { Description = "Timed runs per product after one warm-up; the median is reported.", DefaultValueFactory = _ => 5 }.InRange(1, 1000);
        var threads = CliRunner.ThreadsOption();
        var variantOption = new Option<string>("--variant")
        {
            Description = "Kernel on cpu-kernels/cuda: auto (tuned per shape on cuda) | 1 (naive) | 2 (64x64 tiles) | 3 (128x128 tiles) | 4 (warp tiles, Float4, double-buffered) | all (each in turn).",
            DefaultValueFactory = _ => "auto",
        };
        variantOption.AcceptOnlyFromAmong("auto", "1", "2", "3", "4", "all");
        var json = CliRunner.JsonOption();
        var command = new Command("gemm", "SGEMM GFLOP/s: square and ResNet-18 im2col shapes, with the fraction of FP32 peak on cpu.")
        {
            device, precision, sizes, shapesOption, repeat, threads, variantOption, json,
        };
        CliRunner.SetAction(command, (parse, token) =>
        {
            int repeats = parse.GetValue(repeat);
            int threadCount = parse.GetValue(threads);
            if (repeats < 1)
            {
                throw new ArgumentException($"--repeat {repeats}: give at least 1 timed run.");
            }
            if (threadCount < 1)
            {
                throw new ArgumentException($"--threads {threadCount}: give at least 1 thread.");
            }
            using var accelerator = CliRunner.OpenDevice(parse.GetValue(device)!, parse.GetValue(precision)!);
            bool checker = accelerator.Kind == AcceleratorKind.CpuKernels;
            int[] squares = parse.GetValue(sizes) is { Length: > 0 } given ? given : checker ? [32, 64] : [256, 512, 1024, 2048];
            if (squares.Any(s => s < 1))
            {
                throw new ArgumentException("--sizes: every size must be at least 1.");
            }
            string which = parse.GetValue(shapesOption) ?? (checker ? "square" : "all");
            var shapes = new List<Shape>();
            if (which is "all" or "square")
            {
                shapes.AddRange(squares.Select(s => new Shape($"square {s}", s, s, s)));
            }
            if (which is "all" or "resnet" or "resnet64")
            {
                shapes.AddRange(ResnetShapes(64));
            }
            if (which is "all" or "resnet" or "resnet224")
            {
                shapes.AddRange(ResnetShapes(224));
            }

            int previousThreads = Gemm.CpuMaxThreads;
            Gemm.CpuMaxThreads = threadCount;
            try
            {
                GemmVariant[] variants = parse.GetValue(variantOption) switch
                {
                    "1" => [GemmVariant.Gemm1Naive],
                    "2" => [GemmVariant.Gemm2Tiled64],
                    "3" => [GemmVariant.Gemm3Tiled128],
                    "4" => [GemmVariant.Gemm4WarpTiled],
                    "all" => [GemmVariant.Gemm1Naive, GemmVariant.Gemm2Tiled64, GemmVariant.Gemm3Tiled128, GemmVariant.Gemm4WarpTiled],
                    _ => [GemmVariant.Auto],
                };
                var report = Measure(accelerator, shapes, variants, repeats, threadCount, token);
                Ui.WriteReport(parse.GetValue(json), report, Render);
            }
            finally
            {
                Gemm.CpuMaxThreads = previousThreads;
            }
            return CliRunner.Ok;
        });
        return command;
    }

    private static Report Measure(Accelerator accelerator, IReadOnlyList<Shape> shapes, IReadOnlyList<GemmVariant> variants, int repeats, int threads, CancellationToken token)
    {
        bool cpu = OperatorDispatch.EngineFor(accelerator) == OperatorEngine.Cpu;
        PeakInfo? peak = null;
        if (cpu)
        {
            var estimate = CpuPeak.Estimate(SgemmMicroKernel.Auto);
            peak = new PeakInfo(estimate.Cores, estimate.CoresSource, Math.Round(estimate.Ghz, 3), estimate.ClockSource,
                estimate.ProcCpuinfoGhz, estimate.FlopsPerCycle, Math.Round(estimate.PeakGflopsFor(threads), 1));
        }
        string implementation = cpu ? $"Gemm.Cpu, {Gemm.CpuMicroKernel} micro-kernel"
            : accelerator.Precision != MatmulPrecision.Fp32 ? $"GemmTensorCore1 ({Accelerator.PrecisionName(accelerator.Precision)} mma.sync, FP32 accumulation)"
            : $"GEMM kernels ({string.Join(", ", variants)})";
        if (cpu || accelerator.Precision != MatmulPrecision.Fp32)
        {
            variants = [GemmVariant.Auto]; // the cpu engine and each tensor-core precision have one implementation
        }
        var rows = new List<Row>();
        var rng = new Random(1234);
        foreach (var shape in shapes)
        {
            token.ThrowIfCancellationRequested();
            int aLength = checked(shape.M * shape.K);
            int bLength = checked(shape.K * shape.N);
            int cLength = checked(shape.M * shape.N);
            using var a = accelerator.Upload<float>(RandomArray(aLength, rng));
            using var b = accelerator.Upload<float>(RandomArray(bLength, rng));
            using var c = accelerator.Allocate<float>(cLength);
            int lda = shape.TransA ? shape.M : shape.K;
            int ldb = shape.TransB ? shape.K : shape.N;
            foreach (var variant in variants)
            {
                rows.Add(TimeOne(accelerator, shape, variant, a, lda, b, ldb, c, repeats, threads, peak, token));
            }
        }
        return new Report(accelerator.Id, accelerator.Name, Accelerator.PrecisionName(accelerator.Precision), implementation, cpu ? threads : 0, repeats, peak, rows);
    }

    private static Row TimeOne(Accelerator accelerator, Shape shape, GemmVariant variant, View<float> a, int lda, View<float> b, int ldb, View<float> c,
        int repeats, int threads, PeakInfo? peak, CancellationToken token)
    {
        bool cpu = OperatorDispatch.EngineFor(accelerator) == OperatorEngine.Cpu;
        void RunOnce() => Gemm.Run(accelerator, shape.TransA, shape.TransB, shape.M, shape.N, shape.K, 1f, a, lda, b, ldb, 0f, c, shape.N, variant);

        RunOnce(); // warm-up: JIT, thread pool, page faults, kernel compilation
        accelerator.Synchronize();
        var times = new double[repeats];
        var cpuSeconds = new double[repeats];
        using var timer = accelerator.CreateTimer();
        for (int r = 0; r < repeats; r++)
        {
            token.ThrowIfCancellationRequested();
            double cpuBefore = CpuTime.ProcessSeconds();
            timer.Start();
            RunOnce();
            timer.Stop();
            times[r] = timer.ElapsedMilliseconds;
            cpuSeconds[r] = CpuTime.ProcessSeconds() - cpuBefore;
        }
        Array.Sort(cpuSeconds);
        double medianCpu = cpuSeconds[repeats / 2];
        // CPU time counts only the time our threads ran: on a machine shared with other work it
        // shows what the code does per busy core, where wall time shows what the caller waited.
        double? perCpuSecond = cpu && medianCpu > 0 ? shape.Flops / medianCpu / 1e9 : null;
        Array.Sort(times);
        double median = repeats % 2 == 1 ? times[repeats / 2] : (times[repeats / 2 - 1] + times[repeats / 2]) / 2;
        double gflops = shape.Flops / (median * 1e-3) / 1e9;
        return new Row(shape.Name, shape.M, shape.N, shape.K, shape.TransA, shape.TransB,
            cpu ? Gemm.CpuMicroKernel.ToString() : accelerator.Precision != MatmulPrecision.Fp32 ? "TensorCore1." + Accelerator.PrecisionName(accelerator.Precision) : Gemm.ResolveVariant(variant, shape.M, shape.N).ToString(),
            Math.Round(median, 3), Math.Round(times[0], 3), Math.Round(gflops, gflops < 1 ? 5 : 2),
            peak is null ? null : Math.Round(gflops / peak.PeakGflops, 3),
            perCpuSecond is { } g ? Math.Round(g, 2) : null,
            perCpuSecond is { } h && peak is not null ? Math.Round(h / (peak.PeakGflops / Math.Min(threads, peak.Cores)), 3) : null);
    }

    private static void Render(Report report)
    {
        var inv = CultureInfo.InvariantCulture;
        CliConsole.Current.WriteLine($"device: {report.Device} ({report.DeviceName}); {report.Implementation}" +
            (report.Device == "cpu" ? $"; {report.Threads} threads" : "") + $"; median of {report.Repeat} runs after 1 warm-up");
        if (report.Peak is { } p)
        {
            CliConsole.Current.WriteLine(string.Create(inv,
                $"FP32 peak: {Math.Min(report.Threads, p.Cores)} cores x {p.Ghz:F2} GHz x {p.FlopsPerCycle} FLOPs/cycle = {p.PeakGflops:F1} GFLOP/s"));
            CliConsole.Current.WriteLine(string.Create(inv, $"  clock {p.ClockSource}; /proc/cpuinfo says {p.ProcCpuinfoGhz:F3} GHz"));
            CliConsole.Current.WriteLine($"  cores: {p.CoresSource}");
            CliConsole.Current.WriteLine("  GFLOP/CPU-s: FLOPs over the process's CPU time (the time its threads actually ran; differs from wall time on a busy machine); of core peak: that per core over one core's peak");
        }
        var headers = new List<string> { "product", "m", "n", "k", "kernel", "median ms", "min ms", "GFLOP/s" };
        if (report.Peak is not null)
        {
            headers.Add("of peak");
            headers.Add("GFLOP/CPU-s");
            headers.Add("of core peak");
        }
        Ui.Table(null, headers, report.Results.Select(r =>
        {
            var cells = new List<string>
            {
                r.Name,
                r.M.ToString(inv),
                r.N.ToString(inv),
                r.K.ToString(inv),
                r.Variant,
                r.MedianMs.ToString("F3", inv),
                r.MinMs.ToString("F3", inv),
                r.Gflops.ToString(r.Gflops < 1 ? "G3" : "F1", inv),
            };
            if (r.FractionOfPeak is { } f)
            {
                cells.Add(f.ToString("P0", inv));
                cells.Add(r.GflopsPerCpuSecond?.ToString("F1", inv) ?? "");
                cells.Add(r.CpuFractionOfPeak?.ToString("P0", inv) ?? "");
            }
            return (IReadOnlyList<string>)cells;
        }));
    }

    internal static float[] RandomArray(int length, Random rng)
    {
        var data = new float[length];
        for (int i = 0; i < length; i++)
        {
            data[i] = (float)(rng.NextDouble() * 2 - 1);
        }
        return data;
    }
}
