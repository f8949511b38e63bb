namespace IlgpuOct.Kernels;

/// <summary>Opens an accelerator by name: auto, cuda, cpu, cpu-kernels or cuda-host.</summary>
public static class DeviceSelection
{
    public static readonly string[] Names = ["auto", "cuda", "cpu", "cpu-kernels", "cuda-host"];

    /// <summary>
    /// Opens the named accelerator. <paramref name="notice"/> says in one line what was chosen and
    /// why (for auto: cuda when a driver and a device answer, else cpu with the reason).
    /// </summary>
    public static Accelerator Open(string name, out string notice)
    {
        switch (name.ToLowerInvariant())
        {
            case "cpu":
                notice = "device: cpu (fast CPU engine, chosen by name)";
                return new HostAccelerator(AcceleratorKind.Cpu);
            case "cpu-kernels":
                notice = "device: cpu-kernels (C# kernels on the CPU with exact GPU semantics; a checker, not an engine)";
                return new HostAccelerator(AcceleratorKind.CpuKernels);
            case "cuda-host":
                var host = CudaHost.CudaHostAccelerator.Open();
                notice = $"device: cuda-host (the generated CUDA C compiled by {host.Compiler.Identity}{(host.Sanitize ? ", sanitizer build" : "")}; a checker, not an engine)";
                return host;
            case "cuda":
                if (CudaProbe.TryOpen(out var cuda, out string reason))
                {
                    notice = $"device: cuda ({cuda!.Name})";
                    return cuda;
                }
                throw new AcceleratorUnavailableException($"--device cuda was asked for but CUDA is not usable: {reason}. Use --device cpu, or install the NVIDIA driver (libcuda.so.1) and NVRTC.");
            case "auto":
                if (CudaProbe.TryOpen(out var auto, out string why))
                {
                    notice = $"device: cuda ({auto!.Name}), chosen by auto";
                    return auto;
                }
                notice = $"device: cpu, chosen by auto because {why}";
                return new HostAccelerator(AcceleratorKind.Cpu);
            default:
                throw new ArgumentException($"Unknown device '{name}'; use one of: {string.Join(", ", Names)}.", nameof(name));
        }
    }
}

/// <summary>The asked-for accelerator cannot be opened; the message says what to install or choose instead.</summary>
public sealed class AcceleratorUnavailableException(string message) : Exception(message);
