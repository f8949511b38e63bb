using IlgpuOct.Kernels.Profiling;

namespace IlgpuOct.Kernels.Operators;

/// <summary>The geometry of a fully connected layer: x (N, In), w (Out, In), b (Out), y (N, Out).</summary>
public readonly record struct LinearShape(int N, int In, int Out)
{
    public int InputLength => N * In;

    public int WeightLength => Out * In;

    public int OutputLength => N * Out;

    public void Validate()
    {
        if (N < 1 || In < 1 || Out < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(LinearShape), $"{this}: every extent must be >= 1.");
        }
        if ((long)N * In > int.MaxValue || (long)Out * In > int.MaxValue || (long)N * Out > int.MaxValue)
        {
            throw new ArgumentOutOfRangeException(nameof(LinearShape), $"{this}: a tensor exceeds 2^31-1 elements.");
        }
    }
}

/// <summary>
/// Fully connected layer y = x w^T + b (PyTorch's nn.Linear) through the GEMM (<see cref="Gemm.Cpu"/>
/// on the CPU, <see cref="Gemm.Run(Accelerator, bool, bool, int, int, int, float, View{float}, int, View{float}, int, float, View{float}, int)"/>
/// on devices): forward is one SGEMM with w transposed, dx = dy w, dw = dy^T x, db = column sums of dy.
/// </summary>
public static partial class Linear
{
    /// <summary>Cost model of Linear's own kernels (its products are Gemm calls with their own cost): the bias broadcast writes N x Out.</summary>
    public static OperatorCost ForwardCost(in LinearShape s) => new(0, 4.0 * (s.Out + s.OutputLength));

    /// <summary>Cost model of Linear's own kernels: the bias gradient sums N x Out (when asked for).</summary>
    public static OperatorCost BackwardCost(in LinearShape s, bool biasGradient) => biasGradient ? new(s.OutputLength, 4.0 * (s.OutputLength + s.Out)) : default;

    /// <summary>Forward on the accelerator. Shapes as <see cref="ForwardCpu"/>.</summary>
    public static void Forward(Accelerator accelerator, LinearShape s, View<float> x, View<float> w, View<float> b, View<float> y)
    {
        OperatorDispatch.Run(accelerator, "Linear.Forward", ForwardCost(s),
            () => ForwardCpu(s, x.AsSpan(), w.AsSpan(), b.AsSpan(), y.AsSpan()),
            () => ForwardKernels(accelerator, s, x, w, b, y));
    }

    /// <summary>Backward on the accelerator. Shapes as <see cref="BackwardCpu"/>; an empty dx skips the input gradient, empty dw and db the weight gradients.</summary>
    public static void Backward(Accelerator accelerator, LinearShape s, View<float> x, View<float> w, View<float> dy, View<float> dx, View<float> dw, View<float> db)
    {
        OperatorDispatch.Run(accelerator, "Linear.Backward", BackwardCost(s, db.Length != 0),
            () => BackwardCpu(s, x.AsSpan(), w.AsSpan(), dy.AsSpan(), dx.AsSpan(), dw.AsSpan(), db.AsSpan()),
            () => BackwardKernels(accelerator, s, x, w, dy, dx, dw, db));
    }

    /// <summary>x (N, In), w (Out, In), b (Out); y (N, Out) overwritten.</summary>
    public static void ForwardCpu(in LinearShape s, ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> b, Span<float> y)
    {
        s.Validate();
        RequireLength(x.Length, s.InputLength, nameof(x), "(N, In)");
        RequireLength(w.Length, s.WeightLength, nameof(w), "(Out, In)");
        RequireLength(b.Length, s.Out, nameof(b), "(Out)");
        RequireLength(y.Length, s.OutputLength, nameof(y), "(N, Out)");
        for (int n = 0; n < s.N; n++)
        {
            b.CopyTo(y.Slice(n * s.Out, s.Out));
        }
        Gemm.Cpu(false, true, s.N, s.Out, s.In, 1f, x, s.In, w, s.In, 1f, y, s.Out);
    }

    /// <summary>
    /// x (N, In), w (Out, In), dy (N, Out); dx (N, In), dw (Out, In), db (Out) overwritten.
    /// Pass an empty dx to skip the input gradient, and empty dw and db to skip the weight gradients.
    /// </summary>
    public static void BackwardCpu(in LinearShape s, ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> dy, Span<float> dx, Span<float> dw, Span<float> db)
    {
        s.Validate();
        RequireLength(x.Length, s.InputLength, nameof(x), "(N, In)");
        RequireLength(w.Length, s.WeightLength, nameof(w), "(Out, In)");
        RequireLength(dy.Length, s.OutputLength, nameof(dy), "(N, Out)");
        if (!dx.IsEmpty)
        {
            RequireLength(dx.Length, s.InputLength, nameof(dx), "(N, In)");
            Gemm.Cpu(false, false, s.N, s.In, s.Out, 1f, dy, s.Out, w, s.In, 0f, dx, s.In);
        }
        if (dw.IsEmpty && db.IsEmpty)
        {
            return; // input gradient only (attacks): no weight-gradient work
        }
        RequireLength(dw.Length, s.WeightLength, nameof(dw), "(Out, In)");
        RequireLength(db.Length, s.Out, nameof(db), "(Out)");
        Gemm.Cpu(true, false, s.Out, s.In, s.N, 1f, dy, s.Out, x, s.In, 0f, dw, s.In);
        for (int o = 0; o < s.Out; o++)
        {
            double sum = 0;
            for (int n = 0; n < s.N; n++)
            {
                sum += dy[n * s.Out + o];
            }
            db[o] = (float)sum;
        }
    }

    private static void RequireLength(int actual, int expected, string name, string layout) =>
        ShapeCheck.RequireLength("Linear", nameof(LinearShape), actual, expected, name, layout);

    // ---- Kernels ----
    //
    // The three products run through the GEMM kernels (Gemm.Run picks the tiling); two small kernels
    // broadcast the bias into y before the forward product (beta = 1) and sum dy's columns for db.

    private const int Threads = 256;
    private const int MaxBlocks = 4096;

    [Kernel]
    private static void LinearBroadcastBias(KernelContext ctx, View<float> b, View<float> y, int outputs)
    {
        for (int e = ctx.GlobalX; e < y.Length; e += ctx.GridStrideX)
        {
            y[e] = b[e % outputs];
        }
    }

    [Kernel]
    private static void LinearBiasGradient(KernelContext ctx, View<float> dy, View<float> db, int batch, int outputs)
    {
        for (int o = ctx.GlobalX; o < outputs; o += ctx.GridStrideX)
        {
            double sum = 0.0;
            for (int n = 0; n < batch; n++)
            {
                sum += dy[n * outputs + o];
            }
            db[o] = (float)sum;
        }
    }

    [LaunchShapes]
    private static IEnumerable<LaunchShape> LaunchShapes()
    {
        var s = ResNet18Shapes.Fc;
        yield return new LaunchShape(LinearBroadcastBiasKernel.Definition, "fc", Config(s.OutputLength));
        yield return new LaunchShape(LinearBiasGradientKernel.Definition, "fc", Config(s.Out));
    }

    private static LaunchConfig Config(int length) =>
        new(new Dim3(Math.Clamp((length + Threads - 1) / Threads, 1, MaxBlocks)), new Dim3(Threads));

    private static void ForwardKernels(Accelerator accelerator, in LinearShape s, View<float> x, View<float> w, View<float> b, View<float> y)
    {
        s.Validate();
        RequireLength(x.Length, s.InputLength, nameof(x), "(N, In)");
        RequireLength(w.Length, s.WeightLength, nameof(w), "(Out, In)");
        RequireLength(b.Length, s.Out, nameof(b), "(Out)");
        RequireLength(y.Length, s.OutputLength, nameof(y), "(N, Out)");
        LinearBroadcastBiasKernel.Launch(accelerator, Config(s.OutputLength), b, y, s.Out);
        Gemm.Run(accelerator, false, true, s.N, s.Out, s.In, 1f, x, s.In, w, s.In, 1f, y, s.Out);
    }

    private static void BackwardKernels(Accelerator accelerator, in LinearShape s, View<float> x, View<float> w, View<float> dy, View<float> dx, View<float> dw, View<float> db)
    {
        s.Validate();
        RequireLength(x.Length, s.InputLength, nameof(x), "(N, In)");
        RequireLength(w.Length, s.WeightLength, nameof(w), "(Out, In)");
        RequireLength(dy.Length, s.OutputLength, nameof(dy), "(N, Out)");
        if (dx.Length != 0)
        {
            RequireLength(dx.Length, s.InputLength, nameof(dx), "(N, In)");
            Gemm.Run(accelerator, false, false, s.N, s.In, s.Out, 1f, dy, s.Out, w, s.In, 0f, dx, s.In);
        }
        if (dw.Length == 0 && db.Length == 0)
        {
            return; // input gradient only (attacks): no weight-gradient work
        }
        RequireLength(dw.Length, s.WeightLength, nameof(dw), "(Out, In)");
        RequireLength(db.Length, s.Out, nameof(db), "(Out)");
        Gemm.Run(accelerator, true, false, s.Out, s.In, s.N, 1f, dy, s.Out, x, s.In, 0f, dw, s.In);
        LinearBiasGradientKernel.Launch(accelerator, Config(s.Out), dy, db, s.N, s.Out);
    }

    // ---- Self-tests (ilgpuoct selftest) ----

    [SelfTests]
    private static IEnumerable<SelfTestCase> SelfTests()
    {
        foreach (var s in new[] { new LinearShape(5, 12, 4), new LinearShape(64, 256, 10) })
        {
            string shape = $"x({s.N},{s.In}) w({s.Out},{s.In})";
            double tolerance = 2e-6 * Math.Max(s.In, s.N) + 1e-6;
            yield return new SelfTestCase("Linear.Forward", shape, (acc, seed) => OperatorSelfTest.Compare(acc,
                [OperatorSelfTest.Random(seed, s.InputLength), OperatorSelfTest.Random(seed + 1, s.WeightLength), OperatorSelfTest.Random(seed + 2, s.Out), new float[s.OutputLength]],
                [3], (a, v) => Forward(a, s, v[0], v[1], v[2], v[3]), h => ForwardCpu(s, h[0], h[1], h[2], h[3]), tolerance));
            // arrays: 0 x, 1 w, 2 dy, 3 dx, 4 dw, 5 db
            yield return new SelfTestCase("Linear.Backward", shape, (acc, seed) => OperatorSelfTest.Compare(acc,
                [OperatorSelfTest.Random(seed, s.InputLength), OperatorSelfTest.Random(seed + 1, s.WeightLength), OperatorSelfTest.Random(seed + 2, s.OutputLength),
                 new float[s.InputLength], new float[s.WeightLength], new float[s.Out]],
                [3, 4, 5], (a, v) => Backward(a, s, v[0], v[1], v[2], v[3], v[4], v[5]), h => BackwardCpu(s, h[0], h[1], h[2], h[3], h[4], h[5]), tolerance));
        }
    }
}
