using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using IlgpuOct.Kernels.Profiling;

namespace IlgpuOct.Kernels.Operators;

/// <summary>
/// Element-wise operators on flat float views: Axpy (y += a*x), ReLU forward/backward, residual Add
/// (z = x + y and y += x), Add then ReLU in one pass (z = max(x + y, 0)) and Scale (y = a*x). Each has a CPU implementation (the <c>cpu</c> engine and
/// the reference of the kernel tests), a grid-stride [Kernel] and a dispatcher that picks one.
/// </summary>
public static partial class Elementwise
{
    /// <summary>Threads per block of every launch here.</summary>
    public const int BlockSize = 256;

    // Blocks are capped so large tensors exercise the grid-stride loop instead of huge grids.
    private const int MaxBlocks = 1024;

    // Below this the CPU implementations run on the calling thread; above it, in chunks on the pool.
    private const int ParallelThreshold = 1 << 17;
    private const int ChunkSize = 1 << 15;

    // ------------------------------------------------------------------ kernels

    [Kernel]
    private static void Axpy(KernelContext ctx, float a, View<float> x, View<float> y)
    {
        for (int i = ctx.GlobalX; i < y.Length; i += ctx.GridStrideX)
        {
            y[i] += a * x[i];
        }
    }

    [Kernel]
    private static void ReluForward(KernelContext ctx, View<float> x, View<float> y)
    {
        for (int i = ctx.GlobalX; i < y.Length; i += ctx.GridStrideX)
        {
            y[i] = MathF.Max(x[i], 0f);
        }
    }

    [Kernel]
    private static void ReluBackward(KernelContext ctx, View<float> x, View<float> dy, View<float> dx)
    {
        for (int i = ctx.GlobalX; i < dx.Length; i += ctx.GridStrideX)
        {
            dx[i] = x[i] > 0f ? dy[i] : 0f;
        }
    }

    [Kernel]
    private static void Add(KernelContext ctx, View<float> x, View<float> y, View<float> z)
    {
        for (int i = ctx.GlobalX; i < z.Length; i += ctx.GridStrideX)
        {
            z[i] = x[i] + y[i];
        }
    }

    [Kernel]
    private static void AddRelu(KernelContext ctx, View<float> x, View<float> y, View<float> z)
    {
        for (int i = ctx.GlobalX; i < z.Length; i += ctx.GridStrideX)
        {
            z[i] = MathF.Max(x[i] + y[i], 0f);
        }
    }

    [Kernel]
    private static void AddInPlace(KernelContext ctx, View<float> x, View<float> y)
    {
        for (int i = ctx.GlobalX; i < y.Length; i += ctx.GridStrideX)
        {
            y[i] += x[i];
        }
    }

    [Kernel]
    private static void Scale(KernelContext ctx, float a, View<float> x, View<float> y)
    {
        for (int i = ctx.GlobalX; i < y.Length; i += ctx.GridStrideX)
        {
            y[i] = a * x[i];
        }
    }

    // ------------------------------------------------------------------ dispatchers

    /// <summary>y += a * x. <paramref name="x"/> (n), <paramref name="y"/> (n).</summary>
    public static void Axpy(Accelerator accelerator, float a, View<float> x, View<float> y)
    {
        CheckSameLength(accelerator, x, y, nameof(Axpy));
        OperatorDispatch.Run(accelerator, "Elementwise.Axpy", OperatorCost.Elementwise(y.Length, 2, reads: 2, writes: 1),
            () => ForChunks(y.Length, (s, n) => AxpyCpu(a, x.Slice(s, n).AsSpan(), y.Slice(s, n).AsSpan())),
            () => AxpyKernel.Launch(accelerator, Config(y.Length), a, x, y));
    }

    /// <summary>y = max(x, 0) (NaN propagates, as MathF.Max). x (n), y (n); y may be x.</summary>
    public static void ReluForward(Accelerator accelerator, View<float> x, View<float> y)
    {
        CheckSameLength(accelerator, x, y, nameof(ReluForward));
        OperatorDispatch.Run(accelerator, "Elementwise.ReluForward", OperatorCost.Elementwise(y.Length, 1, reads: 1, writes: 1),
            () => ForChunks(y.Length, (s, n) => ReluForwardCpu(x.Slice(s, n).AsSpan(), y.Slice(s, n).AsSpan())),
            () => ReluForwardKernel.Launch(accelerator, Config(y.Length), x, y));
    }

    /// <summary>dx = dy where x &gt; 0, else 0. x (n) is the forward input, dy (n), dx (n).</summary>
    public static void ReluBackward(Accelerator accelerator, View<float> x, View<float> dy, View<float> dx)
    {
        CheckSameLength(accelerator, x, dy, nameof(ReluBackward));
        CheckSameLength(accelerator, x, dx, nameof(ReluBackward));
        OperatorDispatch.Run(accelerator, "Elementwise.ReluBackward", OperatorCost.Elementwise(dx.Length, 1, reads: 2, writes: 1),
            () => ForChunks(dx.Length, (s, n) => ReluBackwardCpu(x.Slice(s, n).AsSpan(), dy.Slice(s, n).AsSpan(), dx.Slice(s, n).AsSpan())),
            () => ReluBackwardKernel.Launch(accelerator, Config(dx.Length), x, dy, dx));
    }

    /// <summary>z = x + y (residual connection). x (n), y (n), z (n); z may be x or y.</summary>
    public static void Add(Accelerator accelerator, View<float> x, View<float> y, View<float> z)
    {
        CheckSameLength(accelerator, x, y, nameof(Add));
        CheckSameLength(accelerator, x, z, nameof(Add));
        OperatorDispatch.Run(accelerator, "Elementwise.Add", OperatorCost.Elementwise(z.Length, 1, reads: 2, writes: 1),
            () => ForChunks(z.Length, (s, n) => AddCpu(x.Slice(s, n).AsSpan(), y.Slice(s, n).AsSpan(), z.Slice(s, n).AsSpan())),
            () => AddKernel.Launch(accelerator, Config(z.Length), x, y, z));
    }

    /// <summary>
    /// z = max(x + y, 0): a residual sum and the ReLU after it in one pass (bit-identical to Add then ReluForward).
    /// x (n), y (n), z (n); z may be x or y.
    /// </summary>
    public static void AddRelu(Accelerator accelerator, View<float> x, View<float> y, View<float> z)
    {
        CheckSameLength(accelerator, x, y, nameof(AddRelu));
        CheckSameLength(accelerator, x, z, nameof(AddRelu));
        OperatorDispatch.Run(accelerator, "Elementwise.AddRelu", OperatorCost.Elementwise(z.Length, 2, reads: 2, writes: 1),
            () => ForChunks(z.Length, (s, n) => AddReluCpu(x.Slice(s, n).AsSpan(), y.Slice(s, n).AsSpan(), z.Slice(s, n).AsSpan())),
            () => AddReluKernel.Launch(accelerator, Config(z.Length), x, y, z));
    }

    /// <summary>y += x (in-place residual). x (n), y (n).</summary>
    public static void AddInPlace(Accelerator accelerator, View<float> x, View<float> y)
    {
        CheckSameLength(accelerator, x, y, nameof(AddInPlace));
        OperatorDispatch.Run(accelerator, "Elementwise.AddInPlace", OperatorCost.Elementwise(y.Length, 1, reads: 2, writes: 1),
            () => ForChunks(y.Length, (s, n) => AddCpu(y.Slice(s, n).AsSpan(), x.Slice(s, n).AsSpan(), y.Slice(s, n).AsSpan())),
            () => AddInPlaceKernel.Launch(accelerator, Config(y.Length), x, y));
    }

    /// <summary>y = a * x. x (n), y (n); y may be x.</summary>
    public static void Scale(Accelerator accelerator, float a, View<float> x, View<float> y)
    {
        CheckSameLength(accelerator, x, y, nameof(Scale));
        OperatorDispatch.Run(accelerator, "Elementwise.Scale", OperatorCost.Elementwise(y.Length, 1, reads: 1, writes: 1),
            () => ForChunks(y.Length, (s, n) => ScaleCpu(a, x.Slice(s, n).AsSpan(), y.Slice(s, n).AsSpan())),
            () => ScaleKernel.Launch(accelerator, Config(y.Length), a, x, y));
    }

    // ------------------------------------------------------------------ CPU implementations (single thread, SIMD)

    /// <summary>y += a * x, rounded as the kernel does (product, then sum; no fused multiply-add).</summary>
    public static void AxpyCpu(float a, ReadOnlySpan<float> x, Span<float> y)
    {
        CheckSpans(x.Length, y.Length);
        TensorPrimitives.MultiplyAdd(x, a, y, y);
    }

    /// <summary>y = max(x, 0) as MathF.Max(x, 0f): a NaN stays, -0 becomes +0. y may be x.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void ReluForwardCpu(ReadOnlySpan<float> x, Span<float> y)
    {
        CheckSpans(x.Length, y.Length);
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            for (; i <= x.Length - Vector<float>.Count; i += Vector<float>.Count)
            {
                Relu(new Vector<float>(x.Slice(i))).CopyTo(y.Slice(i));
            }
        }
        for (; i < x.Length; i++)
        {
            y[i] = MathF.Max(x[i], 0f);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void ReluBackwardCpu(ReadOnlySpan<float> x, ReadOnlySpan<float> dy, Span<float> dx)
    {
        CheckSpans(x.Length, dy.Length);
        CheckSpans(x.Length, dx.Length);
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i <= x.Length - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var positive = Vector256.GreaterThan(Vector256.Create(x.Slice(i)), Vector256<float>.Zero);
                Vector256.ConditionalSelect(positive, Vector256.Create(dy.Slice(i)), Vector256<float>.Zero).CopyTo(dx.Slice(i));
            }
        }
        for (; i < x.Length; i++)
        {
            dx[i] = x[i] > 0f ? dy[i] : 0f;
        }
    }

    /// <summary>z = x + y. z may be x or y.</summary>
    public static void AddCpu(ReadOnlySpan<float> x, ReadOnlySpan<float> y, Span<float> z) => AddCpu(x, y, z, relu: false);

    /// <summary>z = max(x + y, 0), the sum rounded to float first (as AddCpu then ReluForwardCpu). z may be x or y.</summary>
    public static void AddReluCpu(ReadOnlySpan<float> x, ReadOnlySpan<float> y, Span<float> z) => AddCpu(x, y, z, relu: true);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void AddCpu(ReadOnlySpan<float> x, ReadOnlySpan<float> y, Span<float> z, bool relu)
    {
        CheckSpans(x.Length, y.Length);
        CheckSpans(x.Length, z.Length);
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            for (; i <= x.Length - Vector<float>.Count; i += Vector<float>.Count)
            {
                var sum = new Vector<float>(x.Slice(i)) + new Vector<float>(y.Slice(i));
                (relu ? Relu(sum) : sum).CopyTo(z.Slice(i));
            }
        }
        for (; i < x.Length; i++)
        {
            float sum = x[i] + y[i];
            z[i] = relu ? MathF.Max(sum, 0f) : sum;
        }
    }

    /// <summary>max(v, 0) lane by lane as MathF.Max(v, 0f): positive values and NaN pass, everything else (-0 included) becomes +0.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector<float> Relu(Vector<float> v) =>
        Vector.ConditionalSelect(Vector.GreaterThan(v, Vector<float>.Zero) | ~Vector.Equals(v, v), v, Vector<float>.Zero);

    public static void ScaleCpu(float a, ReadOnlySpan<float> x, Span<float> y)
    {
        CheckSpans(x.Length, y.Length);
        TensorPrimitives.Multiply(x, a, y);
    }

    // ------------------------------------------------------------------ plumbing

    [LaunchShapes]
    private static IEnumerable<LaunchShape> LaunchShapes()
    {
        foreach (var (layer, s) in ResNet18Shapes.Activations)
        {
            foreach (var kernel in new[] { AxpyKernel.Definition, ReluForwardKernel.Definition, ReluBackwardKernel.Definition, AddKernel.Definition, AddReluKernel.Definition, AddInPlaceKernel.Definition, ScaleKernel.Definition })
            {
                yield return new LaunchShape(kernel, layer, Config(s.Length));
            }
        }
    }

    internal static LaunchConfig Config(int n)
    {
        int blocks = (int)Math.Clamp((n + (long)BlockSize - 1) / BlockSize, 1, MaxBlocks);
        return new LaunchConfig(blocks, BlockSize);
    }

    private static void ForChunks(int length, Action<int, int> body)
    {
        if (length < ParallelThreshold)
        {
            body(0, length);
            return;
        }
        int chunks = (length + ChunkSize - 1) / ChunkSize;
        Parallel.For(0, chunks, new ParallelOptions { MaxDegreeOfParallelism = Gemm.CpuMaxThreads }, c =>
        {
            int start = c * ChunkSize;
            body(start, Math.Min(ChunkSize, length - start));
        });
    }

    private static void CheckSameLength(Accelerator accelerator, View<float> a, View<float> b, string op)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        if (a.Length != b.Length)
        {
            throw new ArgumentException($"Elementwise.{op}: views of {a.Length} and {b.Length} elements; pass views of equal length.");
        }
    }

    private static void CheckSpans(int a, int b)
    {
        if (a != b)
        {
            throw new ArgumentException($"Spans of {a} and {b} elements; pass spans of equal length.");
        }
    }

    // ------------------------------------------------------------------ self-tests

    [SelfTests]
    private static IEnumerable<SelfTestCase> SelfTests()
    {
        foreach (int n in new[] { 1000, 300_001 })
        {
            string shape = $"n={n}";
            yield return new SelfTestCase("Elementwise.Axpy", shape, (acc, seed) => Check(acc, seed, n, 2,
                (a, v) => Axpy(a, 0.75f, v[0], v[1]), h => AxpyCpu(0.75f, h[0], h[1]), output: 1));
            yield return new SelfTestCase("Elementwise.ReluForward", shape, (acc, seed) => Check(acc, seed, n, 2,
                (a, v) => ReluForward(a, v[0], v[1]), h => ReluForwardCpu(h[0], h[1]), output: 1));
            yield return new SelfTestCase("Elementwise.ReluBackward", shape, (acc, seed) => Check(acc, seed, n, 3,
                (a, v) => ReluBackward(a, v[0], v[1], v[2]), h => ReluBackwardCpu(h[0], h[1], h[2]), output: 2));
            yield return new SelfTestCase("Elementwise.Add", shape, (acc, seed) => Check(acc, seed, n, 3,
                (a, v) => Add(a, v[0], v[1], v[2]), h => AddCpu(h[0], h[1], h[2]), output: 2));
            yield return new SelfTestCase("Elementwise.AddRelu", shape, (acc, seed) => Check(acc, seed, n, 3,
                (a, v) => AddRelu(a, v[0], v[1], v[2]), h => AddReluCpu(h[0], h[1], h[2]), output: 2));
            yield return new SelfTestCase("Elementwise.AddInPlace", shape, (acc, seed) => Check(acc, seed, n, 2,
                (a, v) => AddInPlace(a, v[0], v[1]), h => AddCpu(h[1], h[0], h[1]), output: 1));
            yield return new SelfTestCase("Elementwise.Scale", shape, (acc, seed) => Check(acc, seed, n, 2,
                (a, v) => Scale(a, -1.5f, v[0], v[1]), h => ScaleCpu(-1.5f, h[0], h[1]), output: 1));
        }
    }

    /// <summary>Runs <paramref name="device"/> on uploaded random buffers and <paramref name="host"/> on copies; compares buffer <paramref name="output"/>.</summary>
    private static SelfTestResult Check(Accelerator accelerator, int seed, int n, int buffers,
        Action<Accelerator, View<float>[]> device, Action<float[][]> host, int output)
    {
        var random = new Random(seed);
        var data = new float[buffers][];
        for (int b = 0; b < buffers; b++)
        {
            data[b] = new float[n];
            for (int i = 0; i < n; i++)
            {
                data[b][i] = (float)(random.NextDouble() * 4 - 2);
            }
        }
        var deviceBuffers = data.Select(d => accelerator.Upload<float>(d)).ToArray();
        try
        {
            device(accelerator, deviceBuffers.Select(d => d.View).ToArray());
            accelerator.Synchronize();
            var actual = accelerator.Download(deviceBuffers[output].View);
            host(data);
            return new SelfTestResult(SelfTestCatalog.MaxAbsDifference(actual, data[output]), 1e-5);
        }
        finally
        {
            foreach (var d in deviceBuffers)
            {
                d.Dispose();
            }
        }
    }
}
