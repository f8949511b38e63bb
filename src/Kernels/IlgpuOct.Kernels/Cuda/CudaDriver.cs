using System.Runtime.InteropServices;

namespace IlgpuOct.Kernels.Cuda;

/// <summary>
/// The CUDA driver API (libcuda.so.1), versioned _v2 entry points where they exist. Nothing here is
/// called before <see cref="TryLoad"/> has found the library, so a machine without the NVIDIA
/// driver gets one clear message instead of a DllNotFoundException from some later call.
/// </summary>
internal static unsafe partial class CudaDriver
{
    public const string LibraryName = "libcuda.so.1";

    public const int Success = 0;
    public const int ErrorInvalidValue = 1;
    public const int ErrorOutOfMemory = 2;
    public const int ErrorNoDevice = 100;
    public const int ErrorInvalidImage = 200;
    public const int ErrorNoBinaryForGpu = 209;
    public const int ErrorInvalidPtx = 218;
    public const int ErrorUnsupportedPtxVersion = 222;
    public const int ErrorInvalidHandle = 400;
    public const int ErrorNotFound = 500;
    public const int ErrorIllegalAddress = 700;
    public const int ErrorLaunchOutOfResources = 701;
    public const int ErrorLaunchTimeout = 702;
    public const int ErrorLaunchFailed = 719;
    public const int ErrorInsufficientDriver = 35;

    public const int AttributeMaxThreadsPerBlock = 1;
    public const int AttributeMaxSharedMemoryPerBlock = 8;
    public const int AttributeClockRate = 13;
    public const int AttributeMultiprocessorCount = 16;
    public const int AttributeMemoryClockRate = 36;
    public const int AttributeGlobalMemoryBusWidth = 37;
    public const int AttributeComputeCapabilityMajor = 75;
    public const int AttributeComputeCapabilityMinor = 76;
    public const int AttributeMaxSharedMemoryPerBlockOptin = 97;

    public const int FunctionAttributeMaxThreadsPerBlock = 0;
    public const int FunctionAttributeSharedSizeBytes = 1;
    public const int FunctionAttributeLocalSizeBytes = 3;
    public const int FunctionAttributeNumRegs = 4;
    public const int FunctionAttributeMaxDynamicSharedSizeBytes = 8;

    public const int JitErrorLogBuffer = 5;
    public const int JitErrorLogBufferSizeBytes = 6;

    private static readonly Lazy<string?> LoadFailure = new(Load);

    /// <summary>True when libcuda.so.1 could be loaded; otherwise <paramref name="reason"/> says what to install.</summary>
    public static bool TryLoad(out string reason)
    {
        reason = LoadFailure.Value ?? "";
        return LoadFailure.Value is null;
    }

    private static string? Load()
    {
        if (NativeLibrary.TryLoad(LibraryName, out _))
        {
            return null;
        }
        return $"{LibraryName} not found (no NVIDIA driver): install the NVIDIA driver (it provides {LibraryName}), "
            + "or make sure the folder holding it is on the loader path (ldconfig or LD_LIBRARY_PATH)";
    }

    /// <summary>"CUDA_ERROR_X (driver's description)" for a result code.</summary>
    public static string Describe(int result)
    {
        string name = $"CUresult {result}";
        string text = "";
        try
        {
            if (cuGetErrorName(result, out nint namePtr) == Success && namePtr != 0)
            {
                name = Marshal.PtrToStringUTF8(namePtr) ?? name;
            }
            if (cuGetErrorString(result, out nint textPtr) == Success && textPtr != 0)
            {
                text = Marshal.PtrToStringUTF8(textPtr) ?? "";
            }
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
        }
        return text.Length > 0 ? $"{name} ({text})" : name;
    }

    /// <summary>Throws a <see cref="CudaException"/> naming the call when <paramref name="result"/> is not success.</summary>
    public static void Check(int result, string call, string? advice = null)
    {
        if (result != Success)
        {
            throw new CudaException(call, result, Describe(result), advice ?? AdviceFor(result));
        }
    }

    /// <summary>What usually causes an error and how to fix it, where that is known.</summary>
    public static string? AdviceFor(int result) => result switch
    {
        ErrorOutOfMemory => "the GPU is out of memory: use a smaller batch, free other GPU processes (nvidia-smi), or dispose buffers sooner",
        ErrorNoDevice => "no CUDA device is visible: check nvidia-smi and CUDA_VISIBLE_DEVICES",
        ErrorInsufficientDriver => "the NVIDIA driver is older than this CUDA code needs: update the driver",
        ErrorUnsupportedPtxVersion => "the PTX was made by an NVRTC newer than the driver understands: update the driver, or use an NVRTC no newer than the driver (ILGPUOCT_NVRTC=/path/libnvrtc.so.X)",
        ErrorNoBinaryForGpu or ErrorInvalidImage => "the compiled kernel does not fit this GPU's architecture: clear the kernel cache (ILGPUOCT_CACHE folder) and retry",
        ErrorIllegalAddress => "a kernel read or wrote outside its buffers; the CUDA context is now unusable, restart the process. Run the kernel's self-test on cpu-kernels (bounds-checked) and set ILGPUOCT_CUDA_SYNC=1 to name the failing kernel",
        ErrorLaunchFailed or ErrorLaunchTimeout => "a kernel crashed or ran too long; the CUDA context is now unusable, restart the process with ILGPUOCT_CUDA_SYNC=1 to name the failing kernel",
        _ => null,
    };

    [LibraryImport(LibraryName)]
    public static partial int cuInit(uint flags);

    [LibraryImport(LibraryName)]
    public static partial int cuDriverGetVersion(out int version);

    [LibraryImport(LibraryName)]
    public static partial int cuGetErrorName(int error, out nint name);

    [LibraryImport(LibraryName)]
    public static partial int cuGetErrorString(int error, out nint text);

    [LibraryImport(LibraryName)]
    public static partial int cuDeviceGetCount(out int count);

    [LibraryImport(LibraryName)]
    public static partial int cuDeviceGet(out int device, int ordinal);

    [LibraryImport(LibraryName)]
    public static partial int cuDeviceGetName(byte* name, int length, int device);

    [LibraryImport(LibraryName, EntryPoint = "cuDeviceTotalMem_v2")]
    public static partial int cuDeviceTotalMem(out nuint bytes, int device);

    [LibraryImport(LibraryName)]
    public static partial int cuDeviceGetAttribute(out int value, int attribute, int device);

    [LibraryImport(LibraryName)]
    public static partial int cuDevicePrimaryCtxRetain(out nint context, int device);

    [LibraryImport(LibraryName, EntryPoint = "cuDevicePrimaryCtxRelease_v2")]
    public static partial int cuDevicePrimaryCtxRelease(int device);

    [LibraryImport(LibraryName)]
    public static partial int cuCtxSetCurrent(nint context);

    [LibraryImport(LibraryName, EntryPoint = "cuMemAlloc_v2")]
    public static partial int cuMemAlloc(out ulong pointer, nuint bytes);

    [LibraryImport(LibraryName, EntryPoint = "cuMemFree_v2")]
    public static partial int cuMemFree(ulong pointer);

    [LibraryImport(LibraryName, EntryPoint = "cuMemGetInfo_v2")]
    public static partial int cuMemGetInfo(out nuint free, out nuint total);

    [LibraryImport(LibraryName, EntryPoint = "cuMemcpyHtoDAsync_v2")]
    public static partial int cuMemcpyHtoDAsync(ulong destination, void* source, nuint bytes, nint stream);

    [LibraryImport(LibraryName, EntryPoint = "cuMemcpyDtoHAsync_v2")]
    public static partial int cuMemcpyDtoHAsync(void* destination, ulong source, nuint bytes, nint stream);

    [LibraryImport(LibraryName, EntryPoint = "cuMemcpyDtoDAsync_v2")]
    public static partial int cuMemcpyDtoDAsync(ulong destination, ulong source, nuint bytes, nint stream);

    [LibraryImport(LibraryName)]
    public static partial int cuMemsetD8Async(ulong destination, byte value, nuint count, nint stream);

    [LibraryImport(LibraryName)]
    public static partial int cuModuleLoadDataEx(out nint module, void* image, uint optionCount, int* options, void** optionValues);

    [LibraryImport(LibraryName)]
    public static partial int cuModuleUnload(nint module);

    [LibraryImport(LibraryName)]
    public static partial int cuModuleGetFunction(out nint function, nint module, byte* name);

    [LibraryImport(LibraryName)]
    public static partial int cuFuncSetAttribute(nint function, int attribute, int value);

    [LibraryImport(LibraryName)]
    public static partial int cuFuncGetAttribute(out int value, int attribute, nint function);

    [LibraryImport(LibraryName)]
    public static partial int cuLaunchKernel(
        nint function,
        uint gridX, uint gridY, uint gridZ,
        uint blockX, uint blockY, uint blockZ,
        uint sharedMemoryBytes, nint stream, void** kernelParameters, void** extra);

    [LibraryImport(LibraryName)]
    public static partial int cuStreamCreate(out nint stream, uint flags);

    [LibraryImport(LibraryName)]
    public static partial int cuStreamSynchronize(nint stream);

    [LibraryImport(LibraryName, EntryPoint = "cuStreamDestroy_v2")]
    public static partial int cuStreamDestroy(nint stream);

    [LibraryImport(LibraryName)]
    public static partial int cuEventCreate(out nint evt, uint flags);

    [LibraryImport(LibraryName)]
    public static partial int cuEventRecord(nint evt, nint stream);

    [LibraryImport(LibraryName)]
    public static partial int cuEventSynchronize(nint evt);

    [LibraryImport(LibraryName)]
    public static partial int cuEventElapsedTime(out float milliseconds, nint start, nint end);

    [LibraryImport(LibraryName, EntryPoint = "cuEventDestroy_v2")]
    public static partial int cuEventDestroy(nint evt);
}

/// <summary>A CUDA driver call failed: names the call, the driver's error name and text, and the fix where known.</summary>
public sealed class CudaException : InvalidOperationException
{
    public CudaException(string call, int result, string description, string? advice)
        : base($"{call} failed: {description}" + (advice is null ? "" : $"; {advice}"))
    {
        Call = call;
        Result = result;
    }

    /// <summary>The driver function (and for launches the kernel and launch shape).</summary>
    public string Call { get; }

    /// <summary>The CUresult code.</summary>
    public int Result { get; }
}
