using System.Diagnostics;
using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;

namespace IlgpuOct.Kernels.CudaHost;

/// <summary>The host C++ compiler rejected a kernel's CUDA C: names the kernel, the command and the compiler's output.</summary>
public sealed class HostCompileException(string kernelName, string command, string log)
    : InvalidOperationException($"cuda-host: the host C++ compiler could not build kernel {kernelName} ({command}):\n{log.TrimEnd()}")
{
    public string KernelName { get; } = kernelName;

    public string Log { get; } = log;
}

/// <summary>
/// Builds a kernel's generated CUDA C translation unit into a shared library with the host C++
/// compiler (clang++ preferred, else g++; $ILGPUOCT_CUDAHOST_CXX overrides), against the project's
/// CUDA built-ins header <c>cuda_host.h</c>. Images are cached with <see cref="Cuda.KernelCache"/>:
/// key = SHA-256 of (header, wrapped source, compiler identity, flags, generator version).
/// </summary>
public sealed partial class HostCompiler
{
    /// <summary>Largest dynamic shared memory a cuda-host block can have (the sm_90 opt-in limit, 227 KiB).</summary>
    public const int MaxDynamicSharedBytes = 232448;

    private static readonly Lazy<(HostCompiler? Compiler, string Reason)> Shared = new(Find);

    private HostCompiler(string path, string identity)
    {
        Path = path;
        Identity = identity;
    }

    /// <summary>The compiler executable.</summary>
    public string Path { get; }

    /// <summary>First line of <c>--version</c>, e.g. "Debian clang version 14.0.6".</summary>
    public string Identity { get; }

    public bool IsClang => Identity.Contains("clang", StringComparison.OrdinalIgnoreCase);

    /// <summary>The header every kernel is compiled against (embedded in this assembly).</summary>
    public static string Header { get; } = ReadHeader();

    /// <summary>The machine's compiler, or null with the reason (no clang++/g++ on PATH).</summary>
    public static HostCompiler? TryGet(out string reason)
    {
        var (compiler, why) = Shared.Value;
        reason = why;
        return compiler;
    }

    /// <summary>
    /// Flags for one build. Optimised like NVRTC (so code relying on undefined behaviour is exposed
    /// the same way), no floating-point contraction (C# never contracts, so results stay bit-exact).
    /// The sanitizer build adds UBSan checks whose handlers live in cuda_host.h.
    /// </summary>
    public IReadOnlyList<string> Flags(bool sanitize)
    {
        var flags = new List<string> { "-x", "c++", "-std=c++20", "-O2", "-fPIC", "-fvisibility=hidden", "-fno-exceptions", "-fno-rtti", "-ffp-contract=off", "-w" };
        if (sanitize)
        {
            flags.AddRange(["-DIOCT_HOST_SANITIZE", "-fsanitize=undefined,float-cast-overflow", "-fsanitize-recover=all", "-fno-sanitize=vptr"]);
            if (IsClang)
            {
                flags.Add("-fno-sanitize=function");
            }
        }
        return flags;
    }

    /// <summary>The translation unit cuda-host compiles: header, the generated CUDA C (with its inline PTX replaced), the entry shim.</summary>
    public static string Wrap(KernelDefinition kernel)
    {
        string source = DynamicSmemAsm().Replace(kernel.CudaSource, m => "(" + m.Groups[1].Value + " = ioct_host_dynamic_smem_size())");
        // Prelude pieces with a host form (tensor cores): keep the cuda_host.h branch, drop the inline PTX one.
        source = HostBranch().Replace(source, m => m.Groups[1].Value);
        var asm = InlineAsm().Match(source);
        if (asm.Success)
        {
            throw new HostCompileException(kernel.Name, "source check", $"inline PTX cannot run on the host: '{source.Substring(asm.Index, Math.Min(80, source.Length - asm.Index))}'");
        }
        var sb = new StringBuilder();
        sb.Append("#define IOCT_HOST_KERNEL_NAME \"").Append(kernel.Name.Replace("\\", "\\\\").Replace("\"", "\\\"")).Append("\"\n");
        sb.Append("#include \"cuda_host.h\"\n");
        sb.Append("#line 1 \"").Append(kernel.Name).Append(".cu\"\n");
        sb.Append(source).Append('\n');
        // Dynamic shared memory: one per-OS-thread array as large as a block may ask for.
        foreach (Match m in DynamicSharedDeclaration().Matches(source))
        {
            string type = m.Groups[1].Value.Trim();
            sb.Append("thread_local __attribute__((aligned(16))) ").Append(type).Append(' ').Append(m.Groups[2].Value)
                .Append("[").Append(MaxDynamicSharedBytes).Append(" / sizeof(").Append(type).Append(")];\n");
        }
        sb.Append("IOCT_HOST_ENTRY(").Append(kernel.EntryPoint).Append(")\n");
        return sb.ToString();
    }

    /// <summary>Cache key of a build: every input that changes the library.</summary>
    public string Key(KernelDefinition kernel, bool sanitize)
    {
        var text = new StringBuilder()
            .Append("cuda-host\n").Append(Header).Append('\n')
            .Append("source\n").Append(Wrap(kernel)).Append('\n')
            .Append("compiler\n").Append(Identity).Append('\n')
            .Append("flags\n").AppendJoin(' ', Flags(sanitize)).Append('\n')
            .Append("generator\n").Append(kernel.GeneratorVersion).Append('\n');
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())));
    }

    /// <summary>Compiles the kernel into a shared library and returns its bytes.</summary>
    public byte[] Build(KernelDefinition kernel, bool sanitize)
    {
        string work = Directory.CreateTempSubdirectory("ilgpuoct-cudahost-").FullName;
        try
        {
            File.WriteAllText(System.IO.Path.Combine(work, "cuda_host.h"), Header);
            string source = System.IO.Path.Combine(work, "kernel.cpp");
            File.WriteAllText(source, Wrap(kernel));
            string library = System.IO.Path.Combine(work, "kernel.so");
            var flags = Flags(sanitize);
            if (sanitize)
            {
                // Compile and link apart: the link must not pull in a sanitizer runtime (the handlers are ours).
                string obj = System.IO.Path.Combine(work, "kernel.o");
                Run(kernel, [.. flags, "-c", source, "-o", obj], work);
                Run(kernel, ["-shared", obj, "-o", library, "-lm", "-Wl,-z,defs"], work);
            }
            else
            {
                Run(kernel, [.. flags, "-shared", source, "-o", library, "-lm", "-Wl,-z,defs"], work);
            }
            return File.ReadAllBytes(library);
        }
        finally
        {
            try
            {
                Directory.Delete(work, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private void Run(KernelDefinition kernel, IReadOnlyList<string> arguments, string workingDirectory)
    {
        var start = new ProcessStartInfo(Path)
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory,
        };
        foreach (var a in arguments)
        {
            start.ArgumentList.Add(a);
        }
        using var process = Process.Start(start) ?? throw new HostCompileException(kernel.Name, Path, "could not start the compiler");
        var stdout = process.StandardOutput.ReadToEndAsync();
        string stderr = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            throw new HostCompileException(kernel.Name, Path + " " + string.Join(' ', arguments), stderr + stdout.Result);
        }
    }

    private static (HostCompiler?, string) Find()
    {
        string? explicitPath = Environment.GetEnvironmentVariable("ILGPUOCT_CUDAHOST_CXX");
        string[] candidates = string.IsNullOrWhiteSpace(explicitPath) ? ["clang++", "clang++-14", "g++", "g++-12"] : [explicitPath];
        foreach (var candidate in candidates)
        {
            string? path = candidate.Contains('/') ? (File.Exists(candidate) ? candidate : null) : OnPath(candidate);
            if (path is null)
            {
                continue;
            }
            string? identity = VersionLine(path);
            if (identity is not null)
            {
                return (new HostCompiler(path, identity), "");
            }
        }
        return (null, $"no host C++ compiler found (tried {string.Join(", ", candidates)}); install clang or g++, or set ILGPUOCT_CUDAHOST_CXX");
    }

    private static string? OnPath(string name)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(System.IO.Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            string full = System.IO.Path.Combine(dir, name);
            if (File.Exists(full))
            {
                return full;
            }
        }
        return null;
    }

    private static string? VersionLine(string path)
    {
        try
        {
            var start = new ProcessStartInfo(path, "--version") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            using var process = Process.Start(start);
            if (process is null)
            {
                return null;
            }
            string output = process.StandardOutput.ReadToEnd();
            process.StandardError.ReadToEnd();
            process.WaitForExit();
            return process.ExitCode == 0 ? output.Split('\n')[0].Trim() : null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null;
        }
    }

    private static string ReadHeader()
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream("IlgpuOct.Kernels.CudaHost.cuda_host.h")
            ?? throw new InvalidOperationException("cuda_host.h is not embedded in IlgpuOct.Kernels; rebuild the project.");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    [GeneratedRegex("""asm\s+volatile\s*\(\s*"mov\.u32 %0, %%dynamic_smem_size;"\s*:\s*"=r"\s*\(\s*(\w+)\s*\)\s*\)""")]
    private static partial Regex DynamicSmemAsm();

    [GeneratedRegex(@"#if defined\(IOCT_CUDA_HOST_H\)\n(.*?)#else\n.*?#endif\n", RegexOptions.Singleline)]
    private static partial Regex HostBranch();

    [GeneratedRegex(@"\basm\b")]
    private static partial Regex InlineAsm();

    [GeneratedRegex(@"extern\s+__shared__\s+(?:__align__\s*\(\s*\d+\s*\)\s+)?([A-Za-z_][\w\s]*?)\s*\b(\w+)\s*\[\s*\]")]
    private static partial Regex DynamicSharedDeclaration();
}
