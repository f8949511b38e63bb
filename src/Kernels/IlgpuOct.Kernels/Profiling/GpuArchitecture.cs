namespace IlgpuOct.Kernels.Profiling;

/// <summary>
/// The per-SM limits of one NVIDIA architecture that decide occupancy and the FP32 roofline.
/// Sources: CUDA C++ Programming Guide, "Compute Capabilities", table "Technical Specifications per
/// Compute Capability" (warps, blocks, registers and shared memory per SM and per block), and the
/// CUDA Occupancy Calculator (cuda_occupancy.h: register allocation unit 256 per warp, 4 warp
/// schedulers / register-file sub-partitions per SM, shared memory allocation unit 128 B, 1 KiB
/// reserved per block since 8.0); FP32 lanes per SM from the guide's "Arithmetic Instructions" table.
/// </summary>
public sealed record GpuArchitecture(
    int ComputeCapability,
    string Examples,
    int MaxWarpsPerSm,
    int MaxBlocksPerSm,
    int RegistersPerSm,
    int MaxRegistersPerBlock,
    int MaxRegistersPerThread,
    int RegisterAllocationUnit,
    int SubPartitions,
    int SharedMemoryPerSm,
    int MaxSharedMemoryPerBlock,
    int SharedAllocationUnit,
    int ReservedSharedPerBlock,
    int Fp32LanesPerSm)
{
    public const int WarpSize = 32;

    /// <summary>sm_80, sm_86, sm_89 and sm_90.</summary>
    public static IReadOnlyList<GpuArchitecture> Known { get; } =
    [
        new(80, "A100", MaxWarpsPerSm: 64, MaxBlocksPerSm: 32, RegistersPerSm: 65536, MaxRegistersPerBlock: 65536, MaxRegistersPerThread: 255,
            RegisterAllocationUnit: 256, SubPartitions: 4, SharedMemoryPerSm: 164 * 1024, MaxSharedMemoryPerBlock: 163 * 1024,
            SharedAllocationUnit: 128, ReservedSharedPerBlock: 1024, Fp32LanesPerSm: 64),
        new(86, "RTX 30xx, A10, A40", MaxWarpsPerSm: 48, MaxBlocksPerSm: 16, RegistersPerSm: 65536, MaxRegistersPerBlock: 65536, MaxRegistersPerThread: 255,
            RegisterAllocationUnit: 256, SubPartitions: 4, SharedMemoryPerSm: 100 * 1024, MaxSharedMemoryPerBlock: 99 * 1024,
            SharedAllocationUnit: 128, ReservedSharedPerBlock: 1024, Fp32LanesPerSm: 128),
        new(89, "L4, L40S, RTX 40xx", MaxWarpsPerSm: 48, MaxBlocksPerSm: 24, RegistersPerSm: 65536, MaxRegistersPerBlock: 65536, MaxRegistersPerThread: 255,
            RegisterAllocationUnit: 256, SubPartitions: 4, SharedMemoryPerSm: 100 * 1024, MaxSharedMemoryPerBlock: 99 * 1024,
            SharedAllocationUnit: 128, ReservedSharedPerBlock: 1024, Fp32LanesPerSm: 128),
        new(90, "H100, H200", MaxWarpsPerSm: 64, MaxBlocksPerSm: 32, RegistersPerSm: 65536, MaxRegistersPerBlock: 65536, MaxRegistersPerThread: 255,
            RegisterAllocationUnit: 256, SubPartitions: 4, SharedMemoryPerSm: 228 * 1024, MaxSharedMemoryPerBlock: 227 * 1024,
            SharedAllocationUnit: 128, ReservedSharedPerBlock: 1024, Fp32LanesPerSm: 128),
    ];

    public string Name => $"sm_{ComputeCapability}";

    /// <summary>The table row of compute capability <paramref name="computeCapability"/> (e.g. 90), or null when it is not in the table.</summary>
    public static GpuArchitecture? Find(int computeCapability) => Known.FirstOrDefault(a => a.ComputeCapability == computeCapability);

    /// <summary>The table row, or an error listing the architectures there are.</summary>
    public static GpuArchitecture Get(int computeCapability) =>
        Find(computeCapability) ?? throw new ArgumentException(
            $"sm_{computeCapability} is not in the occupancy table; known: {string.Join(", ", Known.Select(a => $"{a.Name} ({a.Examples})"))}.");
}
