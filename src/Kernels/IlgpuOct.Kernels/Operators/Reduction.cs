using System.Numerics.Tensors;
using IlgpuOct.Kernels.Profiling;

namespace IlgpuOct.Kernels.Operators;

/// <summary>
/// Sum of a float view into a one-element result. Two kernels: <see cref="Sum"/>'s block tree
/// reduction in shared memory (barriers, then one atomic per block) and <see cref="SumByWarps"/>'s warp
/// shuffles with one shared slot per warp. The CPU implementation accumulates float chunks in double.
/// </summary>
public static partial class Reduction
{
    /// <summary>Threads per block; the kernels' shared arrays are sized for exactly this.</summary>
    public const int BlockSize = 256;

    private const int WarpsPerBlock = BlockSize / KernelContext.WarpSize;
    private const int MaxBlocks = 256;
    private const int ChunkSize = 1 << 14;

    // ------------------------------------------------------------------ kernels

    /// <summary>Each block reduces a grid-stride slice tree-style in shared memory; thread 0 adds the block's sum atomically.</summary>
    [Kernel]
    private static void BlockSum(KernelContext ctx, View<float> x, View<float> result)
    {
        var partial = ctx.Shared<float>(BlockSize);
        int t = ctx.ThreadIdx.X;
        float sum = 0f;
        for (int i = ctx.GlobalX; i < x.Length; i += ctx.GridStrideX)
        {
            sum += x[i];
        }
        float total = BlockReduce.Sum(ctx, sum, partial);
        if (t == 0)
        {
            Atomic.Add(ref result[0], total);
        }
    }

    /// <summary>Warp sums by ShuffleDown, one shared slot per warp, warp 0 reduces the slots and adds atomically.</summary>
    [Kernel]
    private static void WarpSum(KernelContext ctx, View<float> x, View<float> result)
    {
        var warpSums = ctx.Shared<float>(WarpsPerBlock);
        float sum = 0f;
        for (int i = ctx.GlobalX; i < x.Length; i += ctx.GridStrideX)
        {
            sum += x[i];
        }
        float warpTotal = BlockReduce.WarpSum(ctx, sum);
        int lane = ctx.LaneIdx;
        if (lane == 0)
        {
            warpSums[ctx.WarpIdx] = warpTotal;
        }
        ctx.Barrier();
        if (ctx.WarpIdx == 0)
        {
            float v = lane < WarpsPerBlock ? warpSums[lane] : 0f;
            float blockTotal = BlockReduce.WarpSum(ctx, v);
            if (lane == 0)
            {
                Atomic.Add(ref result[0], blockTotal);
            }
        }
    }

    // ------------------------------------------------------------------ dispatchers

    /// <summary>result[0] = sum of x (block tree reduction on kernel accelerators). x (n), result (1).</summary>
    private static LaunchConfig Config(int length) => new((int)Math.Clamp((length + (long)BlockSize - 1) / BlockSize, 1, MaxBlocks), BlockSize);

    [LaunchShapes]
    private static IEnumerable<LaunchShape> LaunchShapes()
    {
        var (layer, s) = ResNet18Shapes.Activations[0];
        yield return new LaunchShape(BlockSumKernel.Definition, layer, Config(s.Length));
        yield return new LaunchShape(WarpSumKernel.Definition, layer, Config(s.Length));
    }

    public static void Sum(Accelerator accelerator, View<float> x, View<float> result)
        => Run(accelerator, x, result, byWarps: false);

    /// <summary>result[0] = sum of x (warp-shuffle reduction on kernel accelerators). x (n), result (1).</summary>
    public static void SumByWarps(Accelerator accelerator, View<float> x, View<float> result)
        => Run(accelerator, x, result, byWarps: true);

    private static void Run(Accelerator accelerator, View<float> x, View<float> result, bool byWarps)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        if (result.Length != 1)
        {
            throw new ArgumentException($"Reduction: the result view has {result.Length} elements; pass a view of exactly 1.", nameof(result));
        }
        OperatorDispatch.Run(accelerator, byWarps ? "Reduction.SumByWarps" : "Reduction.Sum", OperatorCost.Elementwise(x.Length, 1, reads: 1, writes: 0),
            () => result.AsSpan()[0] = (float)SumCpu(x.AsSpan()),
            () =>
            {
                accelerator.Clear(result);
                var config = Config(x.Length);
                if (byWarps)
                {
                    WarpSumKernel.Launch(accelerator, config, x, result);
                }
                else
                {
                    BlockSumKernel.Launch(accelerator, config, x, result);
                }
            });
    }

    // ------------------------------------------------------------------ CPU implementation

    /// <summary>Sum with float SIMD chunks accumulated in double (chunks in parallel for large inputs).</summary>
    public static double SumCpu(ReadOnlySpan<float> x)
    {
        if (x.Length < 16 * ChunkSize)
        {
            double total = 0;
            for (int s = 0; s < x.Length; s += ChunkSize)
            {
                total += TensorPrimitives.Sum(x.Slice(s, Math.Min(ChunkSize, x.Length - s)));
            }
            return total;
        }
        var array = x.ToArray();
        int chunks = (array.Length + ChunkSize - 1) / ChunkSize;
        var partial = new double[chunks];
        Parallel.For(0, chunks, new ParallelOptions { MaxDegreeOfParallelism = Gemm.CpuMaxThreads }, c =>
        {
            int s = c * ChunkSize;
            partial[c] = TensorPrimitives.Sum(new ReadOnlySpan<float>(array, s, Math.Min(ChunkSize, array.Length - s)));
        });
        double sum = 0;
        foreach (var p in partial)
        {
            sum += p;
        }
        return sum;
    }

    // ------------------------------------------------------------------ self-tests

    [SelfTests]
    private static IEnumerable<SelfTestCase> SelfTests()
    {
        foreach (int n in new[] { 1, 1000, 1 << 20 })
        {
            yield return new SelfTestCase("Reduction.BlockSum", $"n={n}", (acc, seed) => Check(acc, seed, n, byWarps: false));
            yield return new SelfTestCase("Reduction.WarpSum", $"n={n}", (acc, seed) => Check(acc, seed, n, byWarps: true));
        }
    }

    private static SelfTestResult Check(Accelerator accelerator, int seed, int n, bool byWarps)
    {
        var random = new Random(seed);
        var data = new float[n];
        double exact = 0;
        for (int i = 0; i < n; i++)
        {
            data[i] = (float)(random.NextDouble() * 2 - 1);
            exact += data[i];
        }
        using var x = accelerator.Upload<float>(data);
        using var result = accelerator.Allocate<float>(1);
        Run(accelerator, x.View, result.View, byWarps);
        accelerator.Synchronize();
        float got = accelerator.Download(result.View)[0];
        // float accumulation in a different order: error grows with n and the magnitude of partial sums
        double tolerance = 1e-5 + 1e-6 * Math.Sqrt(n) * 4;
        return new SelfTestResult(Math.Abs(got - exact), tolerance);
    }
}
