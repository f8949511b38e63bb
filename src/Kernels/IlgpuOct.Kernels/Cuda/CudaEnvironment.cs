namespace IlgpuOct.Kernels.Cuda;

/// <summary>What the driver says about one device.</summary>
public sealed record CudaDeviceInfo(
    int Ordinal,
    string Name,
    int ComputeCapabilityMajor,
    int ComputeCapabilityMinor,
    int MultiprocessorCount,
    long TotalMemoryBytes,
    int MaxThreadsPerBlock,
    int MaxSharedMemoryPerBlock,
    int MaxSharedMemoryPerBlockOptin)
{
    /// <summary>10 * major + minor, e.g. 90 for an H100.</summary>
    public int ComputeCapability => ComputeCapabilityMajor * 10 + ComputeCapabilityMinor;
}

/// <summary>The CUDA side of this machine as far as it can be seen without a GPU failing: driver, devices, NVRTC, and why not.</summary>
public sealed record CudaEnvironment(
    bool DriverLoaded,
    int DriverVersion,
    IReadOnlyList<CudaDeviceInfo> Devices,
    string? DriverProblem,
    Nvrtc? Nvrtc,
    string? NvrtcProblem)
{
    /// <summary>"12.4" from 12040; "none" when no driver answered.</summary>
    public string DriverVersionText => DriverVersion > 0 ? $"{DriverVersion / 1000}.{DriverVersion % 1000 / 10}" : "none";
}
