using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using IlgpuOct.Cli.Rendering;
using IlgpuOct.Defense.Density;
using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Cpu;
using IlgpuOct.Kernels.Cuda;
using IlgpuOct.Kernels.Profiling;
using IlgpuOct.Nn;

namespace IlgpuOct.Cli.Commands;

/// <summary>
/// <c>ilgpuoct profile train|attack|gmm</c>: one representative run with every kernel launch timed
/// (CUDA events on cuda, a stopwatch per launch on cpu-kernels, per operator call on cpu), aggregated
/// per kernel with the operators' cost models and the device's roofline.
/// </summary>
internal static class ProfileCommand
{
    public static Command Create()
    {
        var profile = new Command("profile", "Time every kernel (or operator) of a representative run: launches, time, share, FLOPs, bytes, GFLOP/s, GB/s, fraction of the roofline.");
        profile.Subcommands.Add(CreateTrain());
        profile.Subcommands.Add(CreateInfer());
        profile.Subcommands.Add(CreateAttack());
        profile.Subcommands.Add(CreateGmm());
        return profile;
    }

    private sealed record Common(Option<string> Device, Option<bool> Json, Option<string?> Svg, Option<bool> PerCall, Option<string>? ConvKernel);

    /// <param name="convolutions">Whether the run has convolutions (then --conv-kernel picks their kernel).</param>
    private static Common AddCommon(Command command, bool convolutions = true)
    {
        var common = new Common(CliRunner.DeviceOption("auto"), CliRunner.JsonOption(),
            new Option<string?>("--svg") { Description = "Also write an SVG bar chart of the time by kernel to this file." },
            new Option<bool>("--per-call") { Description = "cpu engine: one row per operator call of a step, in call order (the i-th call of every step together): the per-layer breakdown." },
            convolutions ? CliRunner.ConvKernelOption() : null);
        command.Options.Add(common.Device);
        command.Options.Add(common.Json);
        command.Options.Add(common.Svg);
        command.Options.Add(common.PerCall);
        if (common.ConvKernel is not null)
        {
            command.Options.Add(common.ConvKernel);
        }
        return common;
    }

    private static Command CreateTrain()
    {
        var command = new Command("train", "Profile ResNet-18 training steps (forward, cross-entropy, backward, SGD) on random images.");
        var common = AddCommon(command);
        var resolution = new Option<int>("--resolution") { Description = "Image height and width.", DefaultValueFactory = _ => 64 };
        var batch = new Option<int>("--batch") { Description = "Images per step.", DefaultValueFactory = _ => 16 };
        var width = new Option<int>("--width") { Description = "Base width (64 = torchvision).", DefaultValueFactory = _ => 64 };
        var steps = new Option<int>("--steps") { Description = "Profiled steps.", DefaultValueFactory = _ => 3 };
        var warmup = new Option<int>("--warmup") { Description = "Unprofiled steps first (kernel compilation, buffers).", DefaultValueFactory = _ => 1 };
        foreach (var option in new Option[] { resolution, batch, width, steps, warmup })
        {
            command.Options.Add(option);
        }
        CliRunner.SetAction(command, (parse, token) =>
        {
            int stepCount = RequirePositive(parse.GetValue(steps), "--steps");
            int res = parse.GetValue(resolution), n = parse.GetValue(batch);
            return Run(parse, common, $"train {res}x{res} batch {n} width {parse.GetValue(width)}", stepCount, acc =>
            {
                var workload = new TrainStepWorkload(acc, new ResNetConfig(parse.GetValue(width), 1, 2), res, n);
                return new Workload(i => { token.ThrowIfCancellationRequested(); workload.Step(i); }, parse.GetValue(warmup), workload);
            });
        });
        return command;
    }

    private static Command CreateInfer()
    {
        var command = new Command("infer", "Profile evaluation-mode inference (ResNet18.Infer: the NHWC path on cpu) of a seeded ResNet-18 on random images.");
        var common = AddCommon(command);
        var resolution = new Option<int>("--resolution") { Description = "Image height and width.", DefaultValueFactory = _ => 64 };
        var batch = new Option<int>("--batch") { Description = "Images per forward pass.", DefaultValueFactory = _ => 32 };
        var width = new Option<int>("--width") { Description = "Base width (64 = torchvision).", DefaultValueFactory = _ => 64 };
        var steps = new Option<int>("--steps") { Description = "Profiled forward passes.", DefaultValueFactory = _ => 5 };
        var warmup = new Option<int>("--warmup") { Description = "Unprofiled passes first (weight packing, buffers).", DefaultValueFactory = _ => 1 };
        foreach (var option in new Option[] { resolution, batch, width, steps, warmup })
        {
            command.Options.Add(option);
        }
        CliRunner.SetAction(command, (parse, token) =>
        {
            int stepCount = RequirePositive(parse.GetValue(steps), "--steps");
            int res = parse.GetValue(resolution), n = parse.GetValue(batch);
            return Run(parse, common, $"inference {res}x{res} batch {n} width {parse.GetValue(width)}", stepCount, acc =>
            {
                var model = new ResNet18(acc, new ResNetConfig(parse.GetValue(width), 1, 4), seed: 0);
                var input = Tensor.FromHost(acc, BenchInputs.Images(n * res * res), n, 1, res, res);
                return new Workload(_ => { token.ThrowIfCancellationRequested(); model.Infer(input); }, parse.GetValue(warmup), new Owned(input, model));
            });
        });
        return command;
    }

    private sealed class Owned(params IDisposable[] items) : IDisposable
    {
        public void Dispose()
        {
            foreach (var item in items)
            {
                item.Dispose();
            }
        }
    }

    private static Command CreateAttack()
    {
        var command = new Command("attack", "Profile one PGD batch (untargeted, L-infinity) against a seeded, untrained ResNet-18.");
        var common = AddCommon(command);
        var resolution = new Option<int>("--resolution") { Description = "Image height and width.", DefaultValueFactory = _ => 64 };
        var batch = new Option<int>("--batch") { Description = "Images in the batch.", DefaultValueFactory = _ => 16 };
        var width = new Option<int>("--width") { Description = "Base width (64 = torchvision).", DefaultValueFactory = _ => 64 };
        var pgdSteps = new Option<int>("--pgd-steps") { Description = "PGD iterations.", DefaultValueFactory = _ => 10 };
        foreach (var option in new Option[] { resolution, batch, width, pgdSteps })
        {
            command.Options.Add(option);
        }
        CliRunner.SetAction(command, (parse, token) =>
        {
            int res = parse.GetValue(resolution), n = parse.GetValue(batch), steps = parse.GetValue(pgdSteps);
            return Run(parse, common, $"PGD-{steps} batch {n} at {res}x{res}, width {parse.GetValue(width)}", 1, acc =>
            {
                var workload = new PgdWorkload(acc, parse.GetValue(width), res, n, steps);
                return new Workload(_ => workload.Run(token), 0, workload, workload.WarmUp);
            });
        });
        return command;
    }

    private static Command CreateGmm()
    {
        var command = new Command("gmm", "Profile EM iterations of a full-covariance Gaussian mixture on seeded synthetic features.");
        var common = AddCommon(command, convolutions: false);
        var n = new Option<int>("--n") { Description = "Points.", DefaultValueFactory = _ => 2000 }.InRange(2, 100_000);
        var d = new Option<int>("--d") { Description = "Features.", DefaultValueFactory = _ => 64 }.InRange(1, 4096);
        var k = new Option<int>("--k") { Description = "Components.", DefaultValueFactory = _ => 4 }.InRange(1, 64);
        var iters = new Option<int>("--iters") { Description = "EM iterations.", DefaultValueFactory = _ => 5 };
        foreach (var option in new Option[] { n, d, k, iters })
        {
            command.Options.Add(option);
        }
        CliRunner.SetAction(command, (parse, token) =>
        {
            var (x, rows, features, weights, means) = BenchGmmCommand.Synthetic(parse.GetValue(n), parse.GetValue(d), parse.GetValue(k), seed: 0);
            int iterations = RequirePositive(parse.GetValue(iters), "--iters");
            return Run(parse, common, $"EM {iterations} iterations, {rows} x {features}, K={weights.Length}", 1, acc => new Workload(_ =>
            {
                var gmm = new GaussianMixture(new GaussianMixtureOptions
                {
                    Components = weights.Length,
                    CovarianceType = CovarianceType.Full,
                    Tolerance = 0,
                    MaxIterations = iterations,
                    Start = new GaussianMixtureStart(weights, means),
                });
                gmm.Fit(x, rows, features, acc, cancellationToken: token);
            }, 0, null));
        });
        return command;
    }

    /// <summary>A run: <see cref="Step"/> per profiled step after <see cref="Warmup"/> unprofiled ones (and <see cref="Prepare"/>, unprofiled).</summary>
    private sealed record Workload(Action<int> Step, int Warmup, IDisposable? Resources, Action? Prepare = null);

    private static int Run(ParseResult parse, Common common, string title, int steps, Func<Accelerator, Workload> create)
    {
        if (common.ConvKernel is not null)
        {
            CliRunner.ApplyConvKernel(parse, common.ConvKernel);
        }
        using var acc = CliRunner.OpenDevice(parse.GetValue(common.Device)!);
        var roofline = RooflineOf(acc, out string rooflineNote);
        var workload = create(acc);
        try
        {
            workload.Prepare?.Invoke();
            for (int i = 0; i < workload.Warmup; i++)
            {
                workload.Step(i);
            }
            acc.Synchronize();
            var profiler = new Profiler();
            string nvtx = acc.Kind == AcceleratorKind.Cuda && profiler.EnableNvtx(out string loaded) ? $"NVTX ranges on ({loaded})" : "";
            acc.Profiler = profiler;
            var watch = Stopwatch.StartNew();
            for (int i = 0; i < steps; i++)
            {
                workload.Step(workload.Warmup + i);
            }
            acc.Synchronize();
            double wall = watch.Elapsed.TotalMilliseconds;
            acc.Profiler = null;
            var report = parse.GetValue(common.PerCall)
                ? ProfileReport.BuildPerCall(title, acc.Name, steps, wall, profiler, roofline)
                : ProfileReport.Build(title, acc.Name, steps, wall, profiler, roofline);
            if (parse.GetValue(common.Svg) is { } svg)
            {
                AtomicFile.WriteAllText(svg, ProfileSvg.Render(report));
                CliConsole.Current.ErrorLine($"wrote {svg}");
            }
            if (parse.GetValue(common.Json))
            {
                Ui.WriteJson(new { report, roofline_note = rooflineNote, nvtx });
            }
            else
            {
                Render(report, rooflineNote, nvtx);
            }
            return CliRunner.Ok;
        }
        finally
        {
            workload.Resources?.Dispose();
        }
    }

    private static Roofline? RooflineOf(Accelerator acc, out string note)
    {
        if (acc is CudaAccelerator cuda)
        {
            var roofline = cuda.Roofline(out note);
            note = roofline?.Source ?? $"no roofline: {note}";
            return roofline;
        }
        // The cpu engine and the C# kernels both run on every core; the ceiling is their SIMD FP32 peak (no bandwidth figure).
        var peak = CpuPeak.Estimate(SgemmMicroKernel.Auto);
        int threads = Environment.ProcessorCount;
        note = $"{Math.Min(threads, peak.Cores)} cores x {peak.Ghz:F2} GHz (measured) x {peak.FlopsPerCycle} FP32 FLOP/cycle; memory bandwidth not measured on cpu";
        return new Roofline(peak.PeakGflopsFor(threads), null, note);
    }

    private static void Render(ProfileReport report, string rooflineNote, string nvtx)
    {
        var inv = CultureInfo.InvariantCulture;
        string Opt(double? v, string format) => v is { } x ? x.ToString(format, inv) : "-";
        Ui.Table(
            $"{report.Workload} on {report.Device}, per {report.Granularity}: {report.TimedMilliseconds:F1} ms timed over {report.Steps} step(s), {report.WallMilliseconds:F1} ms wall",
            [report.Granularity, "calls", "total ms", "mean ms", "share", "MFLOP/call", "MB/call", "GFLOP/s", "GB/s", "of roofline"],
            report.Rows.Select(r => (IReadOnlyList<string>)
            [
                r.Name, r.Count.ToString(inv), r.TotalMilliseconds.ToString("F3", inv), r.MeanMilliseconds.ToString("F4", inv), r.Share.ToString("P1", inv),
                Opt(r.FlopsPerLaunch / 1e6, "F2"), Opt(r.BytesPerLaunch / 1e6, "F2"), Opt(r.Gflops, "F1"), Opt(r.GBytesPerSecond, "F1"), Opt(r.RooflineFraction, "P1"),
            ]));
        CliConsole.Current.WriteLine($"roofline: {(report.Roofline is { } roof ? $"{roof.PeakGflops:F0} GFLOP/s" + (roof.PeakGBytesPerSecond is { } b ? $", {b:F0} GB/s" : "") + $" ({rooflineNote})" : rooflineNote)}");
        if (nvtx.Length > 0)
        {
            CliConsole.Current.WriteLine(nvtx);
        }
    }

    private static int RequirePositive(int value, string option) =>
        value >= 1 ? value : throw new ArgumentException($"{option} is {value}; use 1 or more.");
}
