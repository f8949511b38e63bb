using FluentAssertions;
using IlgpuOct.Kernels.Profiling;
using Xunit;

namespace IlgpuOct.Tests.Profiling;

/// <summary>Cases worked out by hand from the occupancy rules (see each comment), one per limiter and architecture.</summary>
public sealed class OccupancyTests
{
    private static readonly GpuArchitecture Sm80 = GpuArchitecture.Get(80);
    private static readonly GpuArchitecture Sm86 = GpuArchitecture.Get(86);
    private static readonly GpuArchitecture Sm89 = GpuArchitecture.Get(89);
    private static readonly GpuArchitecture Sm90 = GpuArchitecture.Get(90);

    [Fact]
    public void Small_kernel_of_256_threads_fills_an_sm_90_warp_limited()
    {
        // 8 warps per block; 64/8 = 8 blocks by warps; 32 regs -> 1024 per warp, 16384/1024 = 16 warps
        // per sub-partition -> 64 warps -> 8 blocks (a tie, reported as warps).
        var r = Occupancy.Compute(Sm90, 256, 32, 0);
        r.Should().Be(new OccupancyResult(8, 8, 32, 8, 228, 8, 64, 64, OccupancyLimiter.Warps));
        r.Fraction.Should().Be(1.0);
    }

    [Fact]
    public void Seventy_two_registers_limit_sm_90_to_three_blocks_of_256()
    {
        // 72 x 32 = 2304 registers per warp (a multiple of 256); 16384 / 2304 = 7 warps per sub-partition
        // -> 28 warps -> 3 blocks of 8 warps -> 24 of 64 warps.
        var r = Occupancy.Compute(Sm90, 256, 72, 0);
        r.BlocksByRegisters.Should().Be(3);
        r.ActiveWarps.Should().Be(24);
        r.Limiter.Should().Be(OccupancyLimiter.Registers);
        r.Fraction.Should().Be(0.375);
    }

    [Fact]
    public void Register_allocation_rounds_each_warp_up_to_256()
    {
        // 34 x 32 = 1088 -> 1280 per warp; 16384 / 1280 = 12 warps per sub-partition -> 48 warps -> 12 blocks of 4 warps.
        var r = Occupancy.Compute(Sm90, 128, 34, 0);
        r.BlocksByRegisters.Should().Be(12);
        r.ActiveWarps.Should().Be(48);
        r.Limiter.Should().Be(OccupancyLimiter.Registers);
    }

    [Fact]
    public void A_1024_thread_block_on_sm_86_leaves_a_third_of_the_warp_slots_empty()
    {
        // 32 warps per block; 48 / 32 = 1 block -> 32 of 48 warps.
        var r = Occupancy.Compute(Sm86, 1024, 16, 0);
        r.ActiveBlocks.Should().Be(1);
        r.ActiveWarps.Should().Be(32);
        r.MaxWarps.Should().Be(48);
        r.Limiter.Should().Be(OccupancyLimiter.Warps);
    }

    [Fact]
    public void One_warp_blocks_on_sm_80_hit_the_32_block_slots()
    {
        // 1 warp per block: 64 by warps, 32 by block slots -> 32 warps of 64.
        var r = Occupancy.Compute(Sm80, 32, 16, 0);
        r.ActiveBlocks.Should().Be(32);
        r.ActiveWarps.Should().Be(32);
        r.Limiter.Should().Be(OccupancyLimiter.Blocks);
        r.Fraction.Should().Be(0.5);
    }

    [Fact]
    public void Forty_eight_kib_of_shared_memory_fit_twice_in_an_sm_89()
    {
        // 49152 + 1024 reserved = 50176 B per block (a multiple of 128); 102400 / 50176 = 2 blocks of 4 warps = 8 of 48 warps.
        var r = Occupancy.Compute(Sm89, 128, 32, 48 * 1024);
        r.BlocksBySharedMemory.Should().Be(2);
        r.ActiveWarps.Should().Be(8);
        r.Limiter.Should().Be(OccupancyLimiter.SharedMemory);
    }

    [Fact]
    public void Shared_memory_is_allocated_in_128_byte_units()
    {
        // 100 B + 1024 reserved = 1124 -> 1152 B; 233472 / 1152 = 202 blocks: not the limit, but counted exactly.
        Occupancy.Compute(Sm90, 256, 32, 100).BlocksBySharedMemory.Should().Be(202);
    }

    [Fact]
    public void A_block_whose_registers_exceed_the_per_block_file_cannot_launch()
    {
        // 255 regs -> 8160 -> 8192 per warp x 32 warps = 262144 > 65536 per block.
        var r = Occupancy.Compute(Sm90, 1024, 255, 0);
        r.ActiveBlocks.Should().Be(0);
        r.Limiter.Should().Be(OccupancyLimiter.Registers);
    }

    [Fact]
    public void Unknown_architectures_are_refused_with_the_known_list()
    {
        var act = () => GpuArchitecture.Get(75);
        act.Should().Throw<ArgumentException>().WithMessage("*sm_75*sm_80*sm_90*");
    }
}
