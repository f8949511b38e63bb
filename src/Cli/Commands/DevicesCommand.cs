using System.CommandLine;
using IlgpuOct.Cli.Rendering;
using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Cuda;

namespace IlgpuOct.Cli.Commands;

/// <summary><c>ilgpuoct devices</c>: every accelerator this machine offers, and why cuda is missing when it is.</summary>
internal static class DevicesCommand
{
    public static Command Create()
    {
        var command = new Command("devices", "List the accelerators (cpu, cpu-kernels, cuda devices) with driver and NVRTC versions.");
        var json = CliRunner.JsonOption();
        command.Options.Add(json);
        CliRunner.SetAction(command, (parse, _) =>
        {
            var rows = new List<DeviceRow>();
            using (var cpu = new HostAccelerator(AcceleratorKind.Cpu))
            {
                rows.Add(HostRow(cpu, "fast CPU engine (SIMD, multithreaded operators)"));
            }
            using (var cpuKernels = new HostAccelerator(AcceleratorKind.CpuKernels))
            {
                rows.Add(HostRow(cpuKernels, "C# kernels with exact GPU semantics (a checker, chosen only by name)"));
            }
            if (IlgpuOct.Kernels.CudaHost.HostCompiler.TryGet(out string hostReason) is { } hostCompiler)
            {
                using var cudaHost = IlgpuOct.Kernels.CudaHost.CudaHostAccelerator.Open();
                rows.Add(HostRow(cudaHost, $"the generated CUDA C compiled by {hostCompiler.Identity} (a checker, chosen only by name)"));
            }
            else
            {
                rows.Add(new DeviceRow("cuda-host", null, "unavailable", null, null, 0, null, null, hostReason));
            }
            var cuda = CudaProbe.Describe();
            string nvrtcText = cuda.Nvrtc is null ? "none" : cuda.Nvrtc.Version.ToString();
            foreach (var d in cuda.Devices)
            {
                string target = cuda.Nvrtc is null ? "no NVRTC" : TryTarget(cuda.Nvrtc, d.ComputeCapability);
                rows.Add(new DeviceRow(
                    "cuda", d.Ordinal, d.Name, $"sm_{d.ComputeCapability}", d.MultiprocessorCount, d.TotalMemoryBytes,
                    cuda.DriverVersionText, nvrtcText, $"kernels as {target}; {d.MaxSharedMemoryPerBlockOptin / 1024} KB shared per block (opt-in)"));
            }
            string? cudaProblem = cuda.DriverProblem ?? (cuda.Devices.Count > 0 ? cuda.NvrtcProblem : null);
            if (parse.GetValue(json))
            {
                Ui.WriteJson(new
                {
                    accelerators = rows,
                    cuda = new
                    {
                        available = cudaProblem is null && cuda.Devices.Count > 0,
                        problem = cudaProblem,
                        driver_version = cuda.DriverVersionText,
                        nvrtc_version = cuda.Nvrtc?.Version.ToString(),
                        nvrtc_library = cuda.Nvrtc?.LibraryPath,
                        nvrtc_architectures = cuda.Nvrtc?.SupportedArchitectures,
                        nvrtc_problem = cuda.NvrtcProblem,
                    },
                });
                return CliRunner.Ok;
            }
            Ui.Table(
                "Accelerators",
                ["id", "device", "arch", "SMs", "memory", "driver", "NVRTC", "notes"],
                rows.Select(r => (IReadOnlyList<string>)
                [
                    r.Ordinal is { } o ? $"{r.Id}:{o}" : r.Id,
                    r.Name,
                    r.Architecture ?? "-",
                    r.Multiprocessors?.ToString() ?? "-",
                    $"{r.MemoryBytes / (1024.0 * 1024 * 1024):F1} GiB",
                    r.Driver ?? "-",
                    r.Nvrtc ?? "-",
                    r.Notes,
                ]));
            if (cudaProblem is not null)
            {
                CliConsole.Current.WriteLine($"cuda: unavailable: {cudaProblem}");
            }
            else if (cuda.NvrtcProblem is not null)
            {
                CliConsole.Current.WriteLine($"cuda: no NVRTC: {cuda.NvrtcProblem}");
            }
            if (cuda.Nvrtc is not null)
            {
                CliConsole.Current.WriteLine($"NVRTC {cuda.Nvrtc.Version} at {cuda.Nvrtc.LibraryPath}: {string.Join(" ", cuda.Nvrtc.SupportedArchitectures.Select(a => "sm_" + a))}");
            }
            return CliRunner.Ok;
        });
        return command;
    }

    private static DeviceRow HostRow(Accelerator accelerator, string notes) =>
        new(accelerator.Id, null, accelerator.Name, null, Environment.ProcessorCount, accelerator.GetMemoryInfo().TotalBytes, null, null, notes);

    private static string TryTarget(Nvrtc nvrtc, int computeCapability)
    {
        try
        {
            return nvrtc.ChooseTarget(computeCapability).ToString();
        }
        catch (NotSupportedException e)
        {
            return e.Message;
        }
    }

    private sealed record DeviceRow(
        string Id, int? Ordinal, string Name, string? Architecture, int? Multiprocessors, long MemoryBytes, string? Driver, string? Nvrtc, string Notes);
}
