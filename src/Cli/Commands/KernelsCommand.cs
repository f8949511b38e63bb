using System.CommandLine;
using System.Diagnostics;
using IlgpuOct.Cli.Rendering;
using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Cuda;

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
        var arch = ArchOption();
        show.Arguments.Add(name);
        show.Options.Add(cuda);
        show.Options.Add(ptx);
        show.Options.Add(arch);
        CliRunner.SetAction(show, (parse, _) =>
        {
            if (parse.GetValue(cuda) && parse.GetValue(ptx))
            {
                throw new ArgumentException("Choose one of --cuda and --ptx.");
            }
            KernelAssemblies.LoadKernels();
            string wanted = parse.GetValue(name)!;
            var kernel = KernelRegistry.Find(wanted)
                ?? throw new ArgumentException($"No kernel named '{wanted}'; `ilgpuoct kernels list` shows the {KernelRegistry.All.Count} there are.");
            if (!parse.GetValue(ptx))
            {
                Console.Write(kernel.CudaSource);
                return CliRunner.Ok;
            }
            int architecture = ParseArch(parse.GetValue(arch)!);
            var result = Nvrtc.Get().Compile(kernel.CudaSource, kernel.Name, new NvrtcTarget(architecture, NvrtcOutput.Ptx));
            if (result.Log.Trim().Length > 0)
            {
                Console.Error.WriteLine(result.Log.TrimEnd());
            }
            Console.Write(result.PtxText);
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
                Console.Error.WriteLine("error: no kernels are registered; the source generator emitted none (see `dotnet build` warnings).");
                return CliRunner.Failed;
            }
            Console.Error.WriteLine($"{nvrtc}: compiling {all.Count} kernels for {target}");
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
                    ["kernel", "ok", "seconds", "image bytes", "log lines"],
                    results.Select(r => (IReadOnlyList<string>)[r.Kernel, r.Ok ? "yes" : "NO", $"{r.Seconds:F2}", r.ImageBytes.ToString(), r.LogLines.ToString()]));
                Console.WriteLine($"{results.Length - failed.Length}/{results.Length} kernels compiled in {watch.Elapsed.TotalSeconds:F1} s");
            }
            foreach (var f in failed)
            {
                Console.Error.WriteLine($"error: kernel {f.Kernel} failed to compile:\n{f.Log.TrimEnd()}\n");
            }
            if (failed.Length > 0)
            {
                Console.Error.WriteLine($"error: {failed.Length} of {results.Length} kernels failed: {string.Join(", ", failed.Select(f => f.Kernel))}");
                return CliRunner.Failed;
            }
            return CliRunner.Ok;
        });
        return compile;
    }

    private static CompileRow CompileOne(Nvrtc nvrtc, KernelDefinition kernel, NvrtcTarget target)
    {
        var start = Stopwatch.GetTimestamp();
        try
        {
            var result = nvrtc.Compile(kernel.CudaSource, kernel.Name, target);
            return new CompileRow(kernel.Name, true, Stopwatch.GetElapsedTime(start).TotalSeconds, result.Image.Length, CountLines(result.Log), result.Log);
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
