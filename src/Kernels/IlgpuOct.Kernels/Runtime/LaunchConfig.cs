namespace IlgpuOct.Kernels;

/// <summary>The shape of a launch: grid and block extents and dynamic shared-memory bytes.</summary>
public readonly record struct LaunchConfig(Dim3 Grid, Dim3 Block, int DynamicSharedBytes = 0)
{
    /// <summary>A 1-d launch covering <paramref name="count"/> threads with blocks of <paramref name="blockSize"/>.</summary>
    public static LaunchConfig For1D(long count, int blockSize = 256, int dynamicSharedBytes = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfLessThan(blockSize, 1);
        long blocks = Math.Max(1, (count + blockSize - 1) / blockSize);
        if (blocks > int.MaxValue)
        {
            throw new ArgumentOutOfRangeException(nameof(count), $"{count} threads need more than 2^31-1 blocks of {blockSize}; use a grid-stride loop.");
        }
        return new LaunchConfig(new Dim3((int)blocks), new Dim3(blockSize), dynamicSharedBytes);
    }

    /// <summary>Checks the limits every NVIDIA GPU since sm_30 shares; throws with the offending value.</summary>
    public void Validate(string kernelName)
    {
        if (Grid.X < 1 || Grid.Y < 1 || Grid.Z < 1 || Grid.Y > 65535 || Grid.Z > 65535)
        {
            throw new ArgumentOutOfRangeException(nameof(Grid), $"Kernel {kernelName}: grid {Grid} is invalid (each extent >= 1; y and z <= 65535).");
        }
        if (Block.X < 1 || Block.Y < 1 || Block.Z < 1 || Block.Volume > 1024 || Block.Z > 64)
        {
            throw new ArgumentOutOfRangeException(nameof(Block), $"Kernel {kernelName}: block {Block} is invalid (each extent >= 1, at most 1024 threads, z <= 64).");
        }
        if (DynamicSharedBytes < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(DynamicSharedBytes), $"Kernel {kernelName}: dynamic shared memory {DynamicSharedBytes} bytes is negative.");
        }
    }

    public override string ToString() => $"grid {Grid} x block {Block}" + (DynamicSharedBytes > 0 ? $", {DynamicSharedBytes} B dynamic shared" : "");
}
