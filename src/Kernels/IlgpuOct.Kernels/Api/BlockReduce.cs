namespace IlgpuOct.Kernels;

/// <summary>
/// The block-wide sums kernels share: helpers with barriers and warp shuffles, translated with the
/// kernel that calls them (see src/Kernels/README.md, "Helpers that synchronise"). Every thread of the
/// block (of a one-dimensional block) must make the call; every thread gets the sum, and the scratch
/// memory is free for reuse when the call returns (the helper ends with a barrier).
/// </summary>
/// <remarks>
/// Kernel helpers are translated from source, so an assembly with kernels compiles this file itself
/// (IlgpuOct.Defense links it); it is internal so the copies never meet.
/// </remarks>
internal static class BlockReduce
{
    /// <summary>
    /// Tree sum in shared memory: scratch[t] = value, then scratch[t] += scratch[t + stride] for stride =
    /// n/2, n/4, ..., 1 (n = scratch.Length = the block size, a power of two).
    /// </summary>
    public static float Sum(KernelContext ctx, float value, View<float> scratch)
    {
        int t = ctx.ThreadIdx.X;
        scratch[t] = value;
        ctx.Barrier();
        for (int stride = scratch.Length / 2; stride > 0; stride >>= 1)
        {
            if (t < stride)
            {
                scratch[t] += scratch[t + stride];
            }
            ctx.Barrier();
        }
        float total = scratch[0];
        ctx.Barrier();
        return total;
    }

    /// <summary>The tree sum of <see cref="Sum(KernelContext, float, View{float})"/> in double.</summary>
    public static double Sum(KernelContext ctx, double value, View<double> scratch)
    {
        int t = ctx.ThreadIdx.X;
        scratch[t] = value;
        ctx.Barrier();
        for (int stride = scratch.Length / 2; stride > 0; stride >>= 1)
        {
            if (t < stride)
            {
                scratch[t] += scratch[t + stride];
            }
            ctx.Barrier();
        }
        double total = scratch[0];
        ctx.Barrier();
        return total;
    }

    /// <summary>A warp's sum by ShuffleDown (offsets 16, 8, 4, 2, 1); lane 0 gets the total, other lanes partial sums.</summary>
    public static float WarpSum(KernelContext ctx, float value)
    {
        for (int offset = KernelContext.WarpSize / 2; offset > 0; offset >>= 1)
        {
            float other = ctx.ShuffleDown(value, offset);
            value += other;
        }
        return value;
    }

    /// <summary>The warp sum of <see cref="WarpSum(KernelContext, float)"/> in double.</summary>
    public static double WarpSum(KernelContext ctx, double value)
    {
        for (int offset = KernelContext.WarpSize / 2; offset > 0; offset >>= 1)
        {
            double other = ctx.ShuffleDown(value, offset);
            value += other;
        }
        return value;
    }

    /// <summary>
    /// Block sum through the warps: each warp's <see cref="WarpSum(KernelContext, double)"/> goes to
    /// warpScratch[warp] (warpScratch.Length = the block's warp count), then every thread adds the warp
    /// totals in warp order (the same total in every thread, without a broadcast).
    /// </summary>
    public static double SumOfWarps(KernelContext ctx, double value, View<double> warpScratch)
    {
        double warpTotal = WarpSum(ctx, value);
        if (ctx.LaneIdx == 0)
        {
            warpScratch[ctx.WarpIdx] = warpTotal;
        }
        ctx.Barrier();
        double total = 0.0;
        for (int w = 0; w < warpScratch.Length; w++)
        {
            total += warpScratch[w];
        }
        ctx.Barrier();
        return total;
    }
}
