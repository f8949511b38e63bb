using System.CommandLine;
using System.Diagnostics;
using IlgpuOct.Cli.Rendering;
using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Cuda;
using IlgpuOct.Kernels.Profiling;

namespace IlgpuOct.Cli.Commands;

/// <summary><c>ilgpuoct kernels list|show|compile</c>: what the generator produced, and whether NVRTC accepts it (no GPU needed).</summary>
internal static class KernelsCommand
{
    public static Command Create()
    {
        var kernels = new Command("kernels", "List the generated kernels, show their CUDA C or PTX, compile them all with NVRTC, fuzz the translator.");
        kernels.Subcommands.Add(CreateList());
        kernels.Subcommands.Add(CreateShow());
        kernels.Subcommands.Add(CreateCompile());
        kernels.Subcommands.Add(CreateReport());
        kernels.Subcommands.Add(KernelsFuzzCommand.Create());
        return kernels;
    }

    private static Option<string> ArchOption() => new("--arch")
    {
        Description = "Target architecture, e.g. sm_90 (H100), sm_80 (A100), sm_89 (L4).",
        DefaultValueFactory = _ => "sm_90",
    };

    private static Command CreateList()
    {
        var list = new Command("list", "Every registered kernel: entry point, barriers, shuffles, static shared bytes, source hash.");
        var json = CliRunner.JsonOption();
        list.Options.Add(json);
        CliRunner.SetAction(list, (parse, _) =>
        {
            var all = KernelAssemblies.LoadKernels();
            if (parse.GetValue(json))
            {
                Ui.WriteJson(all.Select(k => new
                {
                    name = k.Name,
                    entry_point = k.EntryPoint,
                    parameters = k.Parameters,
                    uses_barriers = k.UsesBarriers,
                    uses_warp_shuffles = k.UsesWarpShuffles,
                    static_shared_bytes = k.StaticSharedBytes,
                    source_sha256 = k.SourceSha256,
                    generator_version = k.GeneratorVersion,
                }));
                return CliRunner.Ok;
            }
            Ui.Table(
                $"{all.Count} kernels",
                ["kernel", "entry point", "barriers", "shuffles", "static shared", "source sha256"],
                all.Select(k => (IReadOnlyList<string>)
                [
                    k.Name, k.EntryPoint, YesNo(k.UsesBarriers), YesNo(k.UsesWarpShuffles), $"{k.StaticSharedBytes} B",
                    k.SourceSha256.Length > 12 ? k.SourceSha256[..12] : k.SourceSha256,
                ]));
            return CliRunner.Ok;
        });
        return list;
    }

    private static Command CreateShow()
    {
        var show = new Command("show", "Print one kernel's CUDA C (default) or the PTX NVRTC makes of it.");
        var name = new Argument<string>("name") { Description = "Kernel name (Type.Method) or entry point; see `kernels list`." };
        var cuda = new Option<bool>("--cuda") { Description = "Print the generated CUDA C (the default)." };
        var ptx = new Option<bool>("--ptx") { Description = "Compile with NVRTC and print the PTX." };
        var sass = new Option<bool>("--sass") { Description = "Compile to CUBIN with NVRTC and disassemble it with nvdisasm (from the PATH), with C# / CUDA source lines." };
        var arch = ArchOption();
        show.Arguments.Add(name);
        show.Options.Add(cuda);
        show.Options.Add(ptx);
        show.Options.Add(sass);
        show.Options.Add(arch);
        CliRunner.SetAction(show, (parse, _) =>
        {
            if (new[] { parse.GetValue(cuda), parse.GetValue(ptx), parse.GetValue(sass) }.Count(b => b) > 1)
            {
                throw new ArgumentException("Choose one of --cuda, --ptx and --sass.");
            }
            KernelAssemblies.LoadKernels();
            string wanted = parse.GetValue(name)!;
            var kernel = KernelRegistry.Find(wanted)
                ?? throw new ArgumentException($"No kernel named '{wanted}'; `ilgpuoct kernels list` shows the {KernelRegistry.All.Count} there are.");
            if (!parse.GetValue(ptx) && !parse.GetValue(sass))
            {
                CliConsole.Current.Write(kernel.CudaSource);
                return CliRunner.Ok;
            }
            int architecture = ParseArch(parse.GetValue(arch)!);
            if (parse.GetValue(sass))
            {
                // Look for the tool before compiling, so a missing nvdisasm costs nothing.
                string tool = Disassembler.Find() ?? throw new FileNotFoundException(Disassembler.HowToInstall);
                var cubin = Nvrtc.Get().Compile(kernel.CudaSource, kernel.Name, new NvrtcTarget(architecture, NvrtcOutput.Cubin));
                WriteWarnings(kernel.Name, cubin.Log);
                CliConsole.Current.Write(Disassembler.Disassemble(tool, cubin.Image, kernel.Name));
                return CliRunner.Ok;
            }
            var result = Nvrtc.Get().Compile(kernel.CudaSource, kernel.Name, new NvrtcTarget(architecture, NvrtcOutput.Ptx));
            WriteWarnings(kernel.Name, result.Log);
            CliConsole.Current.Write(result.PtxText);
            return CliRunner.Ok;
        });
        return show;
    }

    private static Command CreateCompile()
    {
        var compile = new Command("compile", "Compile every kernel with NVRTC for an architecture (no GPU needed); fails naming each kernel NVRTC rejects.");
        var arch = ArchOption();
        var json = CliRunner.JsonOption();
        compile.Options.Add(arch);
        compile.Options.Add(json);
        CliRunner.SetAction(compile, (parse, token) =>
        {
            int architecture = ParseArch(parse.GetValue(arch)!);
            var nvrtc = Nvrtc.Get();
            var target = nvrtc.ChooseTarget(architecture);
            var all = KernelAssemblies.LoadKernels();
            if (all.Count == 0)
            {
                CliConsole.Current.ErrorLine("error: no kernels are registered; the source generator emitted none (see `dotnet build` warnings).");
                return CliRunner.Failed;
            }
            CliConsole.Current.ErrorLine($"{nvrtc}: compiling {all.Count} kernels for {target}");
            var results = new CompileRow[all.Count];
            var options = new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount, CancellationToken = token };
            var watch = Stopwatch.StartNew();
            Parallel.For(0, all.Count, options, i => results[i] = CompileOne(nvrtc, all[i], target));
            watch.Stop();
            var failed = results.Where(r => !r.Ok).ToArray();
            if (parse.GetValue(json))
            {
                Ui.WriteJson(new
                {
                    nvrtc = nvrtc.Version.ToString(),
                    target = target.ToString(),
                    kernels = results,
                    failed = failed.Length,
                    total_seconds = watch.Elapsed.TotalSeconds,
                });
            }
            else
            {
                Ui.Table(
                    $"NVRTC {nvrtc.Version}, {target}",
                    ["kernel", "ok", "seconds", "image bytes", "warnings"],
                    results.Select(r => (IReadOnlyList<string>)[r.Kernel, r.Ok ? "yes" : "NO", $"{r.Seconds:F2}", r.ImageBytes.ToString(), r.LogLines.ToString()]));
                CliConsole.Current.WriteLine($"{results.Length - failed.Length}/{results.Length} kernels compiled in {watch.Elapsed.TotalSeconds:F1} s");
            }
            foreach (var r in results.Where(r => r.Ok))
            {
                WriteWarnings(r.Kernel, r.Log);
            }
            foreach (var f in failed)
            {
                CliConsole.Current.ErrorLine($"error: kernel {f.Kernel} failed to compile:\n{f.Log.TrimEnd()}\n");
            }
            if (failed.Length > 0)
            {
                CliConsole.Current.ErrorLine($"error: {failed.Length} of {results.Length} kernels failed: {string.Join(", ", failed.Select(f => f.Kernel))}");
                return CliRunner.Failed;
            }
            return CliRunner.Ok;
        });
        return compile;
    }

    private static Command CreateReport()
    {
        var report = new Command("report",
            "Registers, spills, stack frame and static shared memory of every kernel (ptxas -v through NVRTC; no GPU needed) and the theoretical occupancy of each launch shape the operators use.");
        var arch = ArchOption();
        arch.AcceptOnlyFromAmong(GpuArchitecture.Known.Select(a => a.Name).ToArray());
        var json = CliRunner.JsonOption();
        var failOnSpill = new Option<bool>("--fail-on-spill") { Description = "Exit 1 when a kernel spills registers without declaring [Kernel(MaySpill = true)] (CI)." };
        report.Options.Add(arch);
        report.Options.Add(json);
        report.Options.Add(failOnSpill);
        CliRunner.SetAction(report, (parse, token) =>
        {
            var architecture = GpuArchitecture.Get(ParseArch(parse.GetValue(arch)!));
            var assemblies = KernelAssemblies.All().ToArray();
            var kernels = KernelAssemblies.LoadKernels();
            var result = KernelResourceReport.Build(Nvrtc.Get(), architecture, kernels, KernelDeclarations.LaunchShapes(assemblies),
                KernelDeclarations.MaySpill(assemblies), cancellationToken: token);
            if (parse.GetValue(json))
            {
                Ui.WriteJson(ReportJson(result));
            }
            else
            {
                RenderReport(result);
            }
            var failed = result.Kernels.Where(k => k.Error is not null).ToArray();
            foreach (var f in failed)
            {
                CliConsole.Current.ErrorLine($"error: kernel {f.Kernel}: {f.Error}");
            }
            var spills = result.Kernels.Where(k => k.UndeclaredSpill).ToArray();
            foreach (var k in spills)
            {
                CliConsole.Current.ErrorLine($"{(parse.GetValue(failOnSpill) ? "error" : "warning")}: kernel {k.Kernel} spills ({k.Resources!.SpillStoreBytes} B stores, {k.Resources.SpillLoadBytes} B loads) on {architecture.Name}: "
                    + "use fewer live values (smaller register tiles, fewer unrolled accumulators) or, if the spill is accepted, declare [Kernel(MaySpill = true)] and say why.");
            }
            return failed.Length > 0 || (parse.GetValue(failOnSpill) && spills.Length > 0) ? CliRunner.Failed : CliRunner.Ok;
        });
        return report;
    }

    private static object ReportJson(KernelResourceReport report) => new
    {
        architecture = report.Architecture.Name,
        architecture_limits = report.Architecture,
        compiler = report.Compiler,
        kernels = report.Kernels.Select(k => new
        {
            kernel = k.Kernel,
            registers = k.Resources?.Registers,
            spill_store_bytes = k.Resources?.SpillStoreBytes,
            spill_load_bytes = k.Resources?.SpillLoadBytes,
            stack_frame_bytes = k.Resources?.StackFrameBytes,
            static_shared_bytes = k.Resources?.StaticSharedBytes,
            constant_bytes = k.Resources?.ConstantBytes,
            may_spill = k.MaySpill,
            undeclared_spill = k.UndeclaredSpill,
            warnings = k.Warnings,
            error = k.Error,
            launch_shapes = k.Shapes.Select(s => new
            {
                @case = s.Case,
                block = s.Block.ToString(),
                threads = s.Block.Volume,
                dynamic_shared_bytes = s.DynamicSharedBytes,
                active_blocks_per_sm = s.Occupancy.ActiveBlocks,
                active_warps_per_sm = s.Occupancy.ActiveWarps,
                max_warps_per_sm = s.Occupancy.MaxWarps,
                occupancy = s.Occupancy.Fraction,
                limiter = s.Occupancy.LimiterName,
                blocks_by_warps = s.Occupancy.BlocksByWarps,
                blocks_by_block_slots = s.Occupancy.BlocksByBlockSlots,
                blocks_by_registers = s.Occupancy.BlocksByRegisters == int.MaxValue ? (int?)null : s.Occupancy.BlocksByRegisters,
                blocks_by_shared_memory = s.Occupancy.BlocksBySharedMemory == int.MaxValue ? (int?)null : s.Occupancy.BlocksBySharedMemory,
            }),
        }),
    };

    private static void RenderReport(KernelResourceReport report)
    {
        var rows = new List<IReadOnlyList<string>>();
        foreach (var k in report.Kernels)
        {
            var r = k.Resources;
            string spill = r is null ? "-" : $"{r.SpillStoreBytes}/{r.SpillLoadBytes}" + (r.Spills ? (k.MaySpill ? " (declared)" : " UNDECLARED") : "");
            // One line per distinct block shape: occupancy depends on the block, not the grid.
            var distinct = k.Shapes.GroupBy(s => (s.Block, s.DynamicSharedBytes)).Select(g => (Shape: g.First(), Cases: string.Join(", ", g.Select(s => s.Case).Distinct()))).ToArray();
            string[] first = distinct.Length == 0
                ? ["-", "no [LaunchShapes] declared", "-", "-"]
                : Shape(distinct[0].Shape, distinct[0].Cases);
            rows.Add([k.Kernel, r?.Registers.ToString() ?? "error", spill, r is null ? "-" : $"{r.StackFrameBytes} B", r is null ? "-" : $"{r.StaticSharedBytes} B", .. first]);
            foreach (var (shape, cases) in distinct.Skip(1))
            {
                rows.Add(["", "", "", "", "", .. Shape(shape, cases)]);
            }
        }
        Ui.Table(
            $"{report.Kernels.Count} kernels on {report.Architecture.Name} ({report.Architecture.Examples}); {report.Compiler}; occupancy = active warps / {report.Architecture.MaxWarpsPerSm} per SM",
            ["kernel", "regs", "spill st/ld", "stack", "static smem", "block", "launch cases", "warps/SM", "limited by"],
            rows);
        int warned = report.Kernels.Count(k => k.Warnings.Count > 0);
        foreach (var k in report.Kernels.Where(k => k.Warnings.Count > 0))
        {
            CliConsole.Current.ErrorLine($"NVRTC warnings for {k.Kernel}:\n  {string.Join("\n  ", k.Warnings)}");
        }
        CliConsole.Current.WriteLine($"{report.Kernels.Count(k => k.Resources is not null)}/{report.Kernels.Count} kernels compiled, {report.Kernels.Count(k => k.Resources?.Spills == true)} spill, {warned} with NVRTC warnings");

        static string[] Shape(ShapeOccupancy s, string cases) =>
        [
            s.Block + (s.DynamicSharedBytes > 0 ? $" +{s.DynamicSharedBytes} B dyn" : ""),
            cases,
            $"{s.Occupancy.ActiveWarps}/{s.Occupancy.MaxWarps} ({s.Occupancy.Fraction:P0})",
            s.Occupancy.LimiterName,
        ];
    }

    /// <summary>NVRTC's warnings for one kernel, on stderr (stdout stays the requested output).</summary>
    private static void WriteWarnings(string kernel, string log)
    {
        var warnings = NvrtcLog.Warnings(log);
        if (warnings.Count > 0)
        {
            CliConsole.Current.ErrorLine($"NVRTC warnings for {kernel}:\n  {string.Join("\n  ", warnings)}");
        }
    }

    private static CompileRow CompileOne(Nvrtc nvrtc, KernelDefinition kernel, NvrtcTarget target)
    {
        var start = Stopwatch.GetTimestamp();
        try
        {
            var result = nvrtc.Compile(kernel.CudaSource, kernel.Name, target);
            return new CompileRow(kernel.Name, true, Stopwatch.GetElapsedTime(start).TotalSeconds, result.Image.Length, NvrtcLog.Warnings(result.Log).Count, result.Log);
        }
        catch (NvrtcCompileException e)
        {
            return new CompileRow(kernel.Name, false, Stopwatch.GetElapsedTime(start).TotalSeconds, 0, CountLines(e.Log), e.Message);
        }
        catch (InvalidOperationException e)
        {
            return new CompileRow(kernel.Name, false, Stopwatch.GetElapsedTime(start).TotalSeconds, 0, 0, e.Message);
        }
    }

    /// <summary>sm_90, compute_90 or 90 -> 90.</summary>
    internal static int ParseArch(string text)
    {
        string digits = text.Trim().ToLowerInvariant();
        foreach (var prefix in new[] { "sm_", "compute_" })
        {
            if (digits.StartsWith(prefix, StringComparison.Ordinal))
            {
                digits = digits[prefix.Length..];
            }
        }
        if (!int.TryParse(digits, out int architecture) || architecture < 30 || architecture > 200)
        {
            throw new ArgumentException($"--arch {text} is not an architecture; write it like sm_90 (H100), sm_80 (A100) or sm_89 (L4).");
        }
        return architecture;
    }

    private static int CountLines(string log) => log.Split('\n', StringSplitOptions.RemoveEmptyEntries).Count(l => l.Trim().Length > 0);

    private static string YesNo(bool value) => value ? "yes" : "no";

    private sealed record CompileRow(string Kernel, bool Ok, double Seconds, int ImageBytes, int LogLines, string Log);
}
