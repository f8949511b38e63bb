using System.Text;
using IlgpuOct.Kernels.Cuda;

namespace IlgpuOct.Kernels;

/// <summary>Finds out whether the cuda accelerator can be opened, and if not, says exactly why.</summary>
public static class CudaProbe
{
    private static readonly Lock InitLock = new();
    private static int _initResult = -1;

    /// <summary>Opens the cuda accelerator on device 0, or ILGPUOCT_CUDA_DEVICE; false with a reason otherwise.</summary>
    public static bool TryOpen(out Accelerator? accelerator, out string reason)
    {
        accelerator = null;
        try
        {
            if (!TryInitialize(out reason, out int driverVersion, out int deviceCount))
            {
                return false;
            }
            if (!TryDeviceOrdinal(deviceCount, out int ordinal, out reason))
            {
                return false;
            }
            if (!Nvrtc.TryGet(out var nvrtc, out reason))
            {
                return false;
            }
            accelerator = CudaAccelerator.Open(ordinal, driverVersion, nvrtc!);
            reason = "";
            return true;
        }
        catch (Exception e) when (e is CudaException or NotSupportedException or EntryPointNotFoundException or DllNotFoundException)
        {
            reason = e.Message;
            return false;
        }
    }

    /// <summary>Driver, devices and NVRTC, each with its problem if it has one. Never throws for a missing driver or library.</summary>
    public static CudaEnvironment Describe()
    {
        var devices = new List<CudaDeviceInfo>();
        string? driverProblem = null;
        int driverVersion = 0;
        bool loaded = CudaDriver.TryLoad(out string loadReason);
        if (!loaded)
        {
            driverProblem = loadReason;
        }
        else
        {
            try
            {
                if (TryInitialize(out string reason, out driverVersion, out int count))
                {
                    for (int i = 0; i < count; i++)
                    {
                        devices.Add(QueryDevice(i));
                    }
                }
                else
                {
                    driverProblem = reason;
                }
            }
            catch (Exception e) when (e is CudaException or EntryPointNotFoundException)
            {
                driverProblem = e.Message;
            }
        }
        Nvrtc.TryGet(out var nvrtc, out string nvrtcReason);
        return new CudaEnvironment(loaded, driverVersion, devices, driverProblem, nvrtc, nvrtc is null ? nvrtcReason : null);
    }

    internal static bool TryInitialize(out string reason, out int driverVersion, out int deviceCount)
    {
        driverVersion = 0;
        deviceCount = 0;
        if (!CudaDriver.TryLoad(out reason))
        {
            return false;
        }
        lock (InitLock)
        {
            if (_initResult < 0)
            {
                _initResult = CudaDriver.cuInit(0);
            }
        }
        if (_initResult != CudaDriver.Success)
        {
            reason = $"cuInit failed: {CudaDriver.Describe(_initResult)}" + (CudaDriver.AdviceFor(_initResult) is { } advice ? $"; {advice}" : "");
            return false;
        }
        CudaDriver.Check(CudaDriver.cuDriverGetVersion(out driverVersion), "cuDriverGetVersion");
        CudaDriver.Check(CudaDriver.cuDeviceGetCount(out deviceCount), "cuDeviceGetCount");
        if (deviceCount == 0)
        {
            reason = "the NVIDIA driver answers but sees no CUDA device (check nvidia-smi and CUDA_VISIBLE_DEVICES)";
            return false;
        }
        reason = "";
        return true;
    }

    internal static unsafe CudaDeviceInfo QueryDevice(int ordinal)
    {
        CudaDriver.Check(CudaDriver.cuDeviceGet(out int device, ordinal), $"cuDeviceGet({ordinal})");
        byte* name = stackalloc byte[256];
        CudaDriver.Check(CudaDriver.cuDeviceGetName(name, 256, device), "cuDeviceGetName");
        CudaDriver.Check(CudaDriver.cuDeviceTotalMem(out nuint total, device), "cuDeviceTotalMem");
        return new CudaDeviceInfo(
            ordinal,
            new string((sbyte*)name, 0, IndexOfNul(name, 256), Encoding.UTF8),
            Attribute(device, CudaDriver.AttributeComputeCapabilityMajor, "compute capability major"),
            Attribute(device, CudaDriver.AttributeComputeCapabilityMinor, "compute capability minor"),
            Attribute(device, CudaDriver.AttributeMultiprocessorCount, "multiprocessor count"),
            (long)total,
            Attribute(device, CudaDriver.AttributeMaxThreadsPerBlock, "max threads per block"),
            Attribute(device, CudaDriver.AttributeMaxSharedMemoryPerBlock, "max shared memory per block"),
            Attribute(device, CudaDriver.AttributeMaxSharedMemoryPerBlockOptin, "max shared memory per block (opt-in)"));
    }

    private static unsafe int IndexOfNul(byte* text, int capacity)
    {
        int i = 0;
        while (i < capacity && text[i] != 0)
        {
            i++;
        }
        return i;
    }

    private static int Attribute(int device, int attribute, string what)
    {
        CudaDriver.Check(CudaDriver.cuDeviceGetAttribute(out int value, attribute, device), $"cuDeviceGetAttribute({what})");
        return value;
    }

    private static bool TryDeviceOrdinal(int deviceCount, out int ordinal, out string reason)
    {
        reason = "";
        ordinal = 0;
        string? text = Environment.GetEnvironmentVariable("ILGPUOCT_CUDA_DEVICE");
        if (string.IsNullOrWhiteSpace(text))
        {
            return true;
        }
        if (!int.TryParse(text, out ordinal) || ordinal < 0 || ordinal >= deviceCount)
        {
            reason = $"ILGPUOCT_CUDA_DEVICE={text} is not a device ordinal; this machine has devices 0..{deviceCount - 1}";
            return false;
        }
        return true;
    }
}
