using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;

namespace IlgpuOct.Kernels.Cuda;

/// <summary>What NVRTC emits: a CUBIN for one exact architecture, or PTX that the driver compiles for newer ones.</summary>
public enum NvrtcOutput
{
    Cubin,
    Ptx,
}

/// <summary>The architecture and output kind for one device, e.g. CUBIN for sm_90 or PTX for compute_89.</summary>
public readonly record struct NvrtcTarget(int Architecture, NvrtcOutput Output)
{
    /// <summary>The --gpu-architecture value: sm_XY for CUBIN, compute_XY for PTX.</summary>
    public string ArchitectureOption => Output == NvrtcOutput.Cubin ? $"sm_{Architecture}" : $"compute_{Architecture}";

    public string FileExtension => Output == NvrtcOutput.Cubin ? ".cubin" : ".ptx";

    public override string ToString() => $"{ArchitectureOption} ({(Output == NvrtcOutput.Cubin ? "CUBIN" : "PTX")})";
}

/// <summary>One NVRTC compilation: the image (CUBIN bytes, or NUL-terminated PTX text) and NVRTC's log.</summary>
public sealed record NvrtcResult(NvrtcTarget Target, byte[] Image, string Log, IReadOnlyList<string> Options, TimeSpan Elapsed)
{
    /// <summary>PTX as text (empty for CUBIN).</summary>
    public string PtxText => Target.Output == NvrtcOutput.Ptx ? Encoding.UTF8.GetString(Image).TrimEnd('\0') : "";
}

/// <summary>NVRTC rejected a kernel: the message carries the kernel name, the options and NVRTC's whole log.</summary>
public sealed class NvrtcCompileException : InvalidOperationException
{
    public NvrtcCompileException(string kernelName, IReadOnlyList<string> options, string log, string status)
        : base($"NVRTC could not compile kernel {kernelName} ({status}) with options [{string.Join(" ", options)}]:\n{log.TrimEnd()}")
    {
        KernelName = kernelName;
        Options = options;
        Log = log;
    }

    public string KernelName { get; }

    public IReadOnlyList<string> Options { get; }

    public string Log { get; }
}

/// <summary>
/// The NVRTC runtime compiler, loaded on demand from the first library found among
/// $ILGPUOCT_NVRTC, libnvrtc.so.13/.12/.11.2/unversioned on the loader path, $CUDA_PATH/lib64,
/// /usr/local/cuda/lib64 and /usr/lib/x86_64-linux-gnu. Thread-safe: every compile has its own program.
/// </summary>
public sealed unsafe class Nvrtc
{
    private const int NvrtcSuccess = 0;

    private static readonly string[] SonameCandidates = ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2", "libnvrtc.so"];
    private static readonly Lazy<(Nvrtc? Compiler, string Reason)> Shared = new(LoadFirst);

    private readonly delegate* unmanaged<int, nint> _getErrorString;
    private readonly delegate* unmanaged<nint*, byte*, byte*, int, byte**, byte**, int> _createProgram;
    private readonly delegate* unmanaged<nint, int, byte**, int> _compileProgram;
    private readonly delegate* unmanaged<nint*, int> _destroyProgram;
    private readonly delegate* unmanaged<nint, nuint*, int> _getProgramLogSize;
    private readonly delegate* unmanaged<nint, byte*, int> _getProgramLog;
    private readonly delegate* unmanaged<nint, nuint*, int> _getPtxSize;
    private readonly delegate* unmanaged<nint, byte*, int> _getPtx;
    private readonly delegate* unmanaged<nint, nuint*, int> _getCubinSize;
    private readonly delegate* unmanaged<nint, byte*, int> _getCubin;
    private readonly Lazy<bool> _acceptsDiagSuppress;

    private const string SuppressUnusedWarning = "--diag-suppress=177";

    private Nvrtc(nint handle, string libraryPath)
    {
        LibraryPath = libraryPath;
        var version = (delegate* unmanaged<int*, int*, int>)Export(handle, "nvrtcVersion");
        int major, minor;
        version(&major, &minor);
        Version = new Version(major, minor);
        _getErrorString = (delegate* unmanaged<int, nint>)Export(handle, "nvrtcGetErrorString");
        _createProgram = (delegate* unmanaged<nint*, byte*, byte*, int, byte**, byte**, int>)Export(handle, "nvrtcCreateProgram");
        _compileProgram = (delegate* unmanaged<nint, int, byte**, int>)Export(handle, "nvrtcCompileProgram");
        _destroyProgram = (delegate* unmanaged<nint*, int>)Export(handle, "nvrtcDestroyProgram");
        _getProgramLogSize = (delegate* unmanaged<nint, nuint*, int>)Export(handle, "nvrtcGetProgramLogSize");
        _getProgramLog = (delegate* unmanaged<nint, byte*, int>)Export(handle, "nvrtcGetProgramLog");
        _getPtxSize = (delegate* unmanaged<nint, nuint*, int>)Export(handle, "nvrtcGetPTXSize");
        _getPtx = (delegate* unmanaged<nint, byte*, int>)Export(handle, "nvrtcGetPTX");
        // CUBIN output exists since NVRTC 11.1; older libraries compile to PTX only.
        if (NativeLibrary.TryGetExport(handle, "nvrtcGetCUBINSize", out nint cubinSize) && NativeLibrary.TryGetExport(handle, "nvrtcGetCUBIN", out nint cubin))
        {
            _getCubinSize = (delegate* unmanaged<nint, nuint*, int>)cubinSize;
            _getCubin = (delegate* unmanaged<nint, byte*, int>)cubin;
        }
        SupportedArchitectures = ReadSupportedArchitectures(handle);
        _acceptsDiagSuppress = new Lazy<bool>(() => AcceptsOption(SuppressUnusedWarning));
    }

    /// <summary>Path (or soname) of the loaded library.</summary>
    public string LibraryPath { get; }

    /// <summary>NVRTC's own version, e.g. 11.8 (the soname may say 11.2).</summary>
    public Version Version { get; }

    /// <summary>Architectures NVRTC can emit code for, e.g. 35..90 (from nvrtcGetSupportedArchs).</summary>
    public IReadOnlyList<int> SupportedArchitectures { get; }

    public bool CanEmitCubin => _getCubin != null;

    /// <summary>The process-wide NVRTC, or null with <paramref name="reason"/> saying where it looked.</summary>
    public static bool TryGet(out Nvrtc? compiler, out string reason)
    {
        (compiler, reason) = Shared.Value;
        return compiler is not null;
    }

    /// <summary>The process-wide NVRTC; throws <see cref="AcceleratorUnavailableException"/> naming the paths tried.</summary>
    public static Nvrtc Get() => TryGet(out var compiler, out string reason) ? compiler! : throw new AcceleratorUnavailableException(reason);

    /// <summary>
    /// CUBIN for the device's own architecture when NVRTC knows it, else PTX for the highest
    /// architecture NVRTC knows that is not above the device's (the driver JIT-compiles it forward).
    /// </summary>
    public NvrtcTarget ChooseTarget(int computeCapability)
    {
        if (SupportedArchitectures.Contains(computeCapability))
        {
            return new NvrtcTarget(computeCapability, CanEmitCubin ? NvrtcOutput.Cubin : NvrtcOutput.Ptx);
        }
        var lower = SupportedArchitectures.Where(a => a <= computeCapability).ToArray();
        if (lower.Length == 0)
        {
            throw new NotSupportedException(
                $"NVRTC {Version} ({LibraryPath}) cannot compile for sm_{computeCapability}: it supports {string.Join(", ", SupportedArchitectures.Select(a => "sm_" + a))}. Install an NVRTC that matches the GPU.");
        }
        return new NvrtcTarget(lower.Max(), NvrtcOutput.Ptx);
    }

    /// <summary>
    /// The options every kernel is compiled with: the architecture, C++17, functions without
    /// qualifiers as device functions, line info for profilers, and (where this NVRTC accepts it)
    /// silence for warning 177, "declared but never referenced", which every unused prelude helper
    /// of a generated kernel would raise. Fast math stays off (NVRTC's default), so results match
    /// the CPU implementation within float rounding.
    /// </summary>
    public IReadOnlyList<string> OptionsFor(NvrtcTarget target)
    {
        var options = new List<string>
        {
            $"--gpu-architecture={target.ArchitectureOption}",
            "--std=c++17",
            "--device-as-default-execution-space",
            "--generate-line-info",
        };
        if (_acceptsDiagSuppress.Value)
        {
            options.Add(SuppressUnusedWarning);
        }
        return options;
    }

    /// <summary>Compiles one translation unit; throws <see cref="NvrtcCompileException"/> with NVRTC's log when it fails.</summary>
    public NvrtcResult Compile(string cudaSource, string kernelName, NvrtcTarget target, IReadOnlyList<string>? options = null)
    {
        ArgumentNullException.ThrowIfNull(cudaSource);
        ArgumentException.ThrowIfNullOrEmpty(kernelName);
        if (target.Output == NvrtcOutput.Cubin && !CanEmitCubin)
        {
            throw new NotSupportedException($"NVRTC {Version} cannot emit CUBIN (needs 11.1+); ask for PTX.");
        }
        var allOptions = options ?? OptionsFor(target);
        var start = Stopwatch.GetTimestamp();
        nint program = 0;
        var pinned = new List<nint>();
        try
        {
            byte* source = Utf8(cudaSource, pinned);
            byte* name = Utf8(kernelName.Replace('.', '_') + ".cu", pinned);
            Check(_createProgram(&program, source, name, 0, null, null), "nvrtcCreateProgram", kernelName);
            byte** optionPointers = stackalloc byte*[allOptions.Count];
            for (int i = 0; i < allOptions.Count; i++)
            {
                optionPointers[i] = Utf8(allOptions[i], pinned);
            }
            int compiled = _compileProgram(program, allOptions.Count, optionPointers);
            string log = ReadLog(program);
            if (compiled != NvrtcSuccess)
            {
                throw new NvrtcCompileException(kernelName, allOptions, log, ErrorString(compiled));
            }
            byte[] image = target.Output == NvrtcOutput.Cubin
                ? ReadImage(program, _getCubinSize, _getCubin, "nvrtcGetCUBIN", kernelName)
                : ReadImage(program, _getPtxSize, _getPtx, "nvrtcGetPTX", kernelName);
            if (image.Length == 0)
            {
                throw new NvrtcCompileException(kernelName, allOptions, log, $"NVRTC returned an empty {target.Output} image; is {target.ArchitectureOption} an architecture this NVRTC supports?");
            }
            return new NvrtcResult(target, image, log, allOptions.ToArray(), Stopwatch.GetElapsedTime(start));
        }
        finally
        {
            if (program != 0)
            {
                _destroyProgram(&program);
            }
            foreach (var p in pinned)
            {
                Marshal.FreeHGlobal(p);
            }
        }
    }

    public override string ToString() => $"NVRTC {Version} ({LibraryPath})";

    // Older NVRTCs reject options they do not know (NVRTC_ERROR_INVALID_OPTION); try it on an empty kernel.
    private bool AcceptsOption(string option)
    {
        try
        {
            var target = new NvrtcTarget(SupportedArchitectures[^1], NvrtcOutput.Ptx);
            Compile("extern \"C\" __global__ void ioct_probe() {}", "NvrtcOptionProbe", target, [$"--gpu-architecture={target.ArchitectureOption}", option]);
            return true;
        }
        catch (NvrtcCompileException)
        {
            return false;
        }
    }

    private string ReadLog(nint program)
    {
        nuint size = 0;
        if (_getProgramLogSize(program, &size) != NvrtcSuccess || size <= 1)
        {
            return "";
        }
        var buffer = new byte[(int)size];
        fixed (byte* p = buffer)
        {
            if (_getProgramLog(program, p) != NvrtcSuccess)
            {
                return "";
            }
        }
        return Encoding.UTF8.GetString(buffer).TrimEnd('\0');
    }

    private byte[] ReadImage(nint program, delegate* unmanaged<nint, nuint*, int> getSize, delegate* unmanaged<nint, byte*, int> get, string call, string kernelName)
    {
        nuint size = 0;
        Check(getSize(program, &size), call + "Size", kernelName);
        var image = new byte[(int)size];
        fixed (byte* p = image)
        {
            Check(get(program, p), call, kernelName);
        }
        return image;
    }

    private void Check(int result, string call, string kernelName)
    {
        if (result != NvrtcSuccess)
        {
            throw new InvalidOperationException($"{call} failed for kernel {kernelName}: {ErrorString(result)}");
        }
    }

    private string ErrorString(int result)
    {
        nint text = _getErrorString(result);
        return text == 0 ? $"nvrtcResult {result}" : Marshal.PtrToStringUTF8(text) ?? $"nvrtcResult {result}";
    }

    private static byte* Utf8(string text, List<nint> allocations)
    {
        int count = Encoding.UTF8.GetByteCount(text);
        nint memory = Marshal.AllocHGlobal(count + 1);
        allocations.Add(memory);
        var span = new Span<byte>((void*)memory, count + 1);
        Encoding.UTF8.GetBytes(text, span);
        span[count] = 0;
        return (byte*)memory;
    }

    private static IReadOnlyList<int> ReadSupportedArchitectures(nint handle)
    {
        if (NativeLibrary.TryGetExport(handle, "nvrtcGetNumSupportedArchs", out nint countExport)
            && NativeLibrary.TryGetExport(handle, "nvrtcGetSupportedArchs", out nint listExport))
        {
            int count;
            if (((delegate* unmanaged<int*, int>)countExport)(&count) == NvrtcSuccess && count > 0)
            {
                var archs = new int[count];
                fixed (int* p = archs)
                {
                    if (((delegate* unmanaged<int*, int>)listExport)(p) == NvrtcSuccess)
                    {
                        return archs.OrderBy(a => a).ToArray();
                    }
                }
            }
        }
        // NVRTC before 11.2 cannot list its targets; these every 10.x/11.0/11.1 release accepts.
        return [35, 37, 50, 52, 53, 60, 61, 62, 70, 72, 75];
    }

    private static nint Export(nint handle, string name) =>
        NativeLibrary.TryGetExport(handle, name, out nint address)
            ? address
            : throw new EntryPointNotFoundException($"The NVRTC library lacks {name}; it is too old or not NVRTC.");

    /// <summary>Every place NVRTC is looked for, in order.</summary>
    public static IReadOnlyList<string> Candidates()
    {
        var list = new List<string>();
        string? explicitPath = Environment.GetEnvironmentVariable("ILGPUOCT_NVRTC");
        if (!string.IsNullOrWhiteSpace(explicitPath))
        {
            list.Add(explicitPath);
        }
        list.AddRange(SonameCandidates);
        var folders = new List<string>();
        string? cudaPath = Environment.GetEnvironmentVariable("CUDA_PATH");
        if (!string.IsNullOrWhiteSpace(cudaPath))
        {
            folders.Add(Path.Combine(cudaPath, "lib64"));
        }
        folders.Add("/usr/local/cuda/lib64");
        folders.Add("/usr/lib/x86_64-linux-gnu");
        foreach (var folder in folders)
        {
            list.AddRange(SonameCandidates.Select(s => Path.Combine(folder, s)));
        }
        return list;
    }

    private static (Nvrtc?, string) LoadFirst()
    {
        var failures = new List<string>();
        foreach (var candidate in Candidates())
        {
            if (Path.IsPathRooted(candidate) && !File.Exists(candidate))
            {
                continue;
            }
            if (Path.IsPathRooted(candidate))
            {
                PreloadBuiltins(Path.GetDirectoryName(candidate)!);
            }
            if (!NativeLibrary.TryLoad(candidate, out nint handle))
            {
                continue;
            }
            try
            {
                return (new Nvrtc(handle, ResolvedPath(candidate)), "");
            }
            catch (EntryPointNotFoundException e)
            {
                failures.Add($"{candidate}: {e.Message}");
            }
        }
        string looked = string.Join(", ", Candidates());
        return (null, $"NVRTC not found (looked for {looked})" + (failures.Count > 0 ? $"; unusable: {string.Join("; ", failures)}" : "")
            + ": install NVRTC (CUDA toolkit, or the libnvrtc package of your distribution) or set ILGPUOCT_NVRTC to the library's path");
    }

    // NVRTC loads libnvrtc-builtins by soname; when NVRTC itself comes from a folder outside the
    // loader path, loading the builtins from the same folder first lets that lookup succeed.
    private static void PreloadBuiltins(string folder)
    {
        try
        {
            foreach (var builtins in Directory.EnumerateFiles(folder, "libnvrtc-builtins.so.*").OrderBy(f => f.Length))
            {
                if (NativeLibrary.TryLoad(builtins, out _))
                {
                    return;
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }

    private static string ResolvedPath(string candidate)
    {
        if (Path.IsPathRooted(candidate))
        {
            return candidate;
        }
        try
        {
            foreach (var line in File.ReadLines("/proc/self/maps"))
            {
                int slash = line.IndexOf('/');
                if (slash >= 0 && line.Contains("libnvrtc.so", StringComparison.Ordinal) && !line.Contains("builtins", StringComparison.Ordinal))
                {
                    return line[slash..].Trim();
                }
            }
        }
        catch (IOException)
        {
        }
        return candidate;
    }
}
