namespace IlgpuOct.Kernels.Profiling;

/// <summary>What caps the number of resident blocks of a launch on one SM.</summary>
public enum OccupancyLimiter
{
    /// <summary>The SM's warp slots (MaxWarpsPerSm / warps per block).</summary>
    Warps,

    /// <summary>The SM's block slots (MaxBlocksPerSm).</summary>
    Blocks,

    /// <summary>The register file: registers per thread x threads, allocated per warp.</summary>
    Registers,

    /// <summary>Shared memory: static + dynamic + the per-block reservation.</summary>
    SharedMemory,
}

/// <summary>Theoretical occupancy of one launch shape: resident blocks and warps per SM and what limits them.</summary>
public readonly record struct OccupancyResult(
    int WarpsPerBlock,
    int BlocksByWarps,
    int BlocksByBlockSlots,
    int BlocksByRegisters,
    int BlocksBySharedMemory,
    int ActiveBlocks,
    int ActiveWarps,
    int MaxWarps,
    OccupancyLimiter Limiter)
{
    /// <summary>Active warps / the SM's warp slots, 0..1.</summary>
    public double Fraction => MaxWarps == 0 ? 0 : (double)ActiveWarps / MaxWarps;

    public string LimiterName => Limiter switch
    {
        OccupancyLimiter.Warps => "warps",
        OccupancyLimiter.Blocks => "blocks",
        OccupancyLimiter.Registers => "registers",
        _ => "shared memory",
    };
}

/// <summary>
/// The CUDA occupancy rules of cuda_occupancy.h (the CUDA Occupancy Calculator) for one block shape:
/// blocks limited by warp slots, block slots, registers (allocated per warp in units of
/// <see cref="GpuArchitecture.RegisterAllocationUnit"/>, per register-file sub-partition) and shared
/// memory (rounded up to <see cref="GpuArchitecture.SharedAllocationUnit"/>, plus the per-block reservation).
/// </summary>
public static class Occupancy
{
    public static OccupancyResult Compute(GpuArchitecture arch, int threadsPerBlock, int registersPerThread, int sharedBytesPerBlock)
    {
        ArgumentNullException.ThrowIfNull(arch);
        ArgumentOutOfRangeException.ThrowIfLessThan(threadsPerBlock, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(registersPerThread);
        ArgumentOutOfRangeException.ThrowIfNegative(sharedBytesPerBlock);
        int warpsPerBlock = DivideRoundUp(threadsPerBlock, GpuArchitecture.WarpSize);

        int byWarps = arch.MaxWarpsPerSm / warpsPerBlock;
        int bySlots = arch.MaxBlocksPerSm;

        int byRegisters;
        if (registersPerThread == 0)
        {
            byRegisters = int.MaxValue;
        }
        else
        {
            int registersPerWarp = RoundUp(registersPerThread * GpuArchitecture.WarpSize, arch.RegisterAllocationUnit);
            bool fitsOneBlock = registersPerThread <= arch.MaxRegistersPerThread && (long)registersPerWarp * warpsPerBlock <= arch.MaxRegistersPerBlock;
            // Each sub-partition (one warp scheduler's share of the register file) holds whole warps.
            int warpsPerSubPartition = arch.RegistersPerSm / arch.SubPartitions / registersPerWarp;
            byRegisters = fitsOneBlock ? warpsPerSubPartition * arch.SubPartitions / warpsPerBlock : 0;
        }

        int sharedPerBlock = RoundUp(sharedBytesPerBlock + arch.ReservedSharedPerBlock, arch.SharedAllocationUnit);
        int byShared = sharedBytesPerBlock > arch.MaxSharedMemoryPerBlock ? 0
            : sharedPerBlock == 0 ? int.MaxValue : arch.SharedMemoryPerSm / sharedPerBlock;

        // Ties go to the hardware slots first: at full occupancy "warps" is the honest answer.
        var limits = new (OccupancyLimiter Limiter, int Blocks)[]
        {
            (OccupancyLimiter.Warps, byWarps),
            (OccupancyLimiter.Blocks, bySlots),
            (OccupancyLimiter.Registers, byRegisters),
            (OccupancyLimiter.SharedMemory, byShared),
        };
        var smallest = limits[0];
        foreach (var limit in limits)
        {
            if (limit.Blocks < smallest.Blocks)
            {
                smallest = limit;
            }
        }
        int blocks = Math.Max(0, smallest.Blocks);
        return new OccupancyResult(warpsPerBlock, byWarps, bySlots, byRegisters, byShared, blocks, blocks * warpsPerBlock, arch.MaxWarpsPerSm, smallest.Limiter);
    }

    private static int DivideRoundUp(int value, int unit) => (value + unit - 1) / unit;

    private static int RoundUp(int value, int unit) => DivideRoundUp(value, unit) * unit;
}
