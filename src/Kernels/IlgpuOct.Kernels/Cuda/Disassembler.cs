using System.Diagnostics;

namespace IlgpuOct.Kernels.Cuda;

/// <summary>SASS of a CUBIN through NVIDIA's nvdisasm, found on the PATH (or ILGPUOCT_NVDISASM).</summary>
public static class Disassembler
{
    public const string HowToInstall =
        "nvdisasm is not on the PATH (nor named by ILGPUOCT_NVDISASM). Get it from one of: "
        + "`pip install nvidia-cuda-nvdisasm` (a few MB; the binary is site-packages/nvidia/cuda_nvdisasm/bin/nvdisasm: add that folder to PATH); "
        + "the CUDA toolkit (/usr/local/cuda/bin); Debian's `apt-get install nvidia-cuda-toolkit` (non-free, large). "
        + "Meanwhile `kernels show NAME --ptx` shows the PTX.";

    /// <summary>The nvdisasm executable, or null.</summary>
    public static string? Find()
    {
        string? explicitPath = Environment.GetEnvironmentVariable("ILGPUOCT_NVDISASM");
        if (!string.IsNullOrWhiteSpace(explicitPath))
        {
            return File.Exists(explicitPath) ? explicitPath : null;
        }
        var folders = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries);
        return folders.Append("/usr/local/cuda/bin").Select(f => Path.Combine(f, "nvdisasm")).FirstOrDefault(File.Exists);
    }

    /// <summary>Runs <c>nvdisasm --print-line-info</c>: SASS with the source line of each instruction (NVRTC compiles with line info).</summary>
    public static string Disassemble(string tool, byte[] cubin, string kernelName)
    {
        string file = Path.Combine(Path.GetTempPath(), $"ilgpuoct-{Environment.ProcessId}-{kernelName.Replace('.', '_')}.cubin");
        File.WriteAllBytes(file, cubin);
        try
        {
            var start = new ProcessStartInfo(tool) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            start.ArgumentList.Add("--print-line-info");
            start.ArgumentList.Add(file);
            using var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {tool}.");
            var stderr = process.StandardError.ReadToEndAsync();
            string output = process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            if (process.ExitCode != 0)
            {
                throw new InvalidOperationException($"{tool} failed on kernel {kernelName}'s CUBIN (exit {process.ExitCode}): {stderr.Result.Trim()}; is it older than the CUBIN's architecture?");
            }
            return output;
        }
        finally
        {
            File.Delete(file);
        }
    }
}
