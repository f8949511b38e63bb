using System.Reflection;
using FluentAssertions;
using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Cuda;
using IlgpuOct.Tests.Cuda;
using Microsoft.CodeAnalysis;
using Xunit;

namespace IlgpuOct.Tests.Generator;

/// <summary>
/// Helpers that synchronise (barriers, shuffles, mma): accepted when every thread reaches the call,
/// rejected under a varying condition (IOCT0017) or with a varying condition inside given the call's
/// arguments (IOCT0031), translated to force-inlined device functions, and run with block semantics on
/// cpu-kernels (nested iterators) and cuda-host, bit for bit.
/// </summary>
public sealed class GeneratorSyncHelperTests
{
    /// <summary>A tree sum every thread gets back (the shape of BlockReduce.Sum), in a type of its own.</summary>
    private const string Helpers = """
        public static class Reduce
        {
            private const float Half = 0.5f;

            public static float Sum(KernelContext ctx, float value, View<float> scratch)
            {
                int t = ctx.ThreadIdx.X;
                scratch[t] = value;
                ctx.Barrier();
                for (int stride = scratch.Length / 2; stride > 0; stride >>= 1)
                {
                    if (t < stride) { scratch[t] += scratch[t + stride]; }
                    ctx.Barrier();
                }
                float total = scratch[0];
                ctx.Barrier();
                return total;
            }

            public static float Pair(KernelContext ctx, float v) => ctx.ShuffleXor(v, 1) * Half + v * Half;

            public static void Fence(KernelContext ctx) { ctx.Barrier(); }

            public static float Twice(KernelContext ctx, float value, View<float> scratch)
            {
                float first = Sum(ctx, value, scratch);
                Fence(ctx);
                float second = Sum(ctx, first, scratch);
                return first + second;
            }

            public static void Early(KernelContext ctx, int k)
            {
                if (k > 3) { return; }
                ctx.Barrier();
            }

            public static void Guarded(KernelContext ctx, int k)
            {
                if (k > 0) { Fence(ctx); }
            }

            public static void Step(KernelContext ctx, Span<float> acc, Span<float> a, Span<float> b) { ctx.MmaTf32(acc, a, b); }
        }
        """;

    private static string Kernel(string body) => "namespace Demo;\n" + Helpers + $$"""
        public static partial class K
        {
            private const int Block = 64;

            [Kernel]
            public static void Run(KernelContext ctx, View<float> x, View<float> y, View<float> sums, int n)
            {
                var scratch = ctx.Shared<float>(Block);
                {{body}}
            }
        }
        """;

    private const string Accepted = """
        int g = ctx.GlobalX;
        float v = Reduce.Pair(ctx, x[g]);
        float twice = Reduce.Twice(ctx, v, scratch);
        Reduce.Guarded(ctx, n);
        y[g] = v;
        if (ctx.ThreadIdx.X == 0) { sums[ctx.BlockIdx.X] = twice; }
        """;

    private static IReadOnlyList<Diagnostic> Diagnose(string source) => GeneratorHarness.Run(source).GeneratorDiagnostics;

    private static void ShouldReport(string body, string id, params string[] fragments)
    {
        var diagnostics = Diagnose(Kernel(body));
        diagnostics.Should().Contain(d => d.Id == id, $"reported: {string.Join("; ", diagnostics)}");
        string message = diagnostics.First(d => d.Id == id).GetMessage(System.Globalization.CultureInfo.InvariantCulture);
        foreach (var fragment in fragments)
        {
            message.Should().Contain(fragment);
        }
    }

    [Fact]
    public void A_helper_with_barriers_and_shuffles_called_by_every_thread_is_accepted()
    {
        var run = GeneratorHarness.Run(Kernel(Accepted));
        run.GeneratorDiagnostics.Should().BeEmpty();
        run.CompilationProblems.Should().BeEmpty();
        run.Field("Demo.K", "Run", "CudaSource").Should().NotBeNull();
    }

    [Fact]
    public void A_helper_may_take_the_context_without_synchronising_and_reads_the_same_built_ins()
    {
        var run = GeneratorHarness.Run(Kernel("if (ctx.ThreadIdx.X < n) { y[ctx.GlobalX] = Lane(ctx); }").Replace("private const int Block = 64;",
            "private const int Block = 64; static float Lane(KernelContext c) => c.LaneIdx;"));
        run.GeneratorDiagnostics.Should().BeEmpty("a helper without barriers or shuffles may be called anywhere");
        string cuda = (string)run.Field("Demo.K", "Run", "CudaSource");
        cuda.Should().Contain("static __device__ float ioct_fn_K_Lane()").And.Contain("y[ioct_global_x()] = ioct_fn_K_Lane();");
        Diagnose(Kernel("var c = ctx; y[0] = c.GlobalX;")).Should().Contain(d => d.Id == "IOCT0025", "the context is still no value to copy");
    }

    [Fact]
    public void A_synchronising_helper_called_under_a_thread_dependent_condition_is_IOCT0017()
    {
        ShouldReport("if (ctx.ThreadIdx.X < 16) { y[0] = Reduce.Sum(ctx, x[0], scratch); }", "IOCT0017", "Reduce.Sum(ctx, x[0], scratch)", "'Sum'", "a barrier", "ctx.ThreadIdx.X < 16");
        // A barrier needs the whole block: a warp-uniform condition is not enough.
        ShouldReport("if (ctx.WarpIdx == 0) { Reduce.Fence(ctx); }", "IOCT0017", "'Fence'", "ctx.WarpIdx == 0");
        ShouldReport("for (int i = ctx.GlobalX; i < n; i += ctx.GridStrideX) { y[i] = Reduce.Twice(ctx, x[i], scratch); }", "IOCT0017", "'Twice'", "i < n");
    }

    [Fact]
    public void A_warp_only_helper_may_run_under_a_warp_uniform_condition()
    {
        Diagnose(Kernel("if (ctx.WarpIdx == 0) { y[ctx.LaneIdx] = Reduce.Pair(ctx, x[ctx.LaneIdx]); }")).Should().BeEmpty();
        ShouldReport("if (ctx.LaneIdx < 8) { y[0] = Reduce.Pair(ctx, x[0]); }", "IOCT0017", "a warp shuffle or mma", "ctx.LaneIdx < 8");
    }

    [Fact]
    public void A_condition_inside_the_helper_is_checked_with_the_divergence_of_the_call_arguments()
    {
        Diagnose(Kernel("Reduce.Guarded(ctx, n); Reduce.Early(ctx, n);")).Should().BeEmpty("n is the same in every thread");
        ShouldReport("Reduce.Guarded(ctx, ctx.ThreadIdx.X);", "IOCT0031", "k > 0", "in helper 'Guarded' called at line");
        ShouldReport("Reduce.Early(ctx, ctx.LaneIdx);", "IOCT0031", "k > 3", "a return before it");
    }

    [Fact]
    public void A_synchronising_call_must_be_evaluated_unconditionally_in_its_statement()
    {
        ShouldReport("y[0] = n > 0 ? Reduce.Sum(ctx, x[0], scratch) : 0f;", "IOCT0018", "Reduce.Sum(ctx, x[0], scratch)");
        ShouldReport("y[0] = Reduce.Sum(ctx, Reduce.Sum(ctx, x[0], scratch), scratch);", "IOCT0018", "Reduce.Sum(ctx, x[0], scratch)");
    }

    [Fact]
    public void Mma_fragments_passed_through_a_helper_must_be_register_arrays_of_the_fragment_size()
    {
        const string Fragments = "Span<float> a = stackalloc float[4]; Span<float> b = stackalloc float[2];";
        Diagnose(Kernel("Span<float> acc = stackalloc float[4]; " + Fragments + " Reduce.Step(ctx, acc, a, b); y[0] = acc[0];")).Should().BeEmpty();
        ShouldReport("Span<float> acc = stackalloc float[3]; " + Fragments + " Reduce.Step(ctx, acc, a, b); y[0] = acc[0];", "IOCT0040", "MmaTf32 (through Step)", "stackalloc float[4]");
    }

    [Fact]
    public void The_helper_becomes_a_force_inlined_device_function_without_a_context_parameter()
    {
        string cuda = (string)GeneratorHarness.Run(Kernel(Accepted)).Field("Demo.K", "Run", "CudaSource");
        cuda.Should().Contain("static __device__ __forceinline__ float ioct_fn_Reduce_Sum(float value, float* scratch, int scratch_length)")
            .And.Contain("static __device__ __forceinline__ float ioct_fn_Reduce_Pair(float v)")
            .And.Contain("static __device__ __forceinline__ void ioct_fn_Reduce_Fence()")
            .And.Contain("__shfl_xor_sync(0xffffffffu, v, 1)")
            .And.Contain("float twice = ioct_fn_Reduce_Twice(v, scratch, 64);");
    }

    [NvrtcFact]
    public void The_cuda_c_of_a_kernel_with_synchronising_helpers_compiles_with_nvrtc()
    {
        string cuda = (string)GeneratorHarness.Run(Kernel(Accepted)).Field("Demo.K", "Run", "CudaSource");
        var nvrtc = Nvrtc.Get();
        var compile = () => nvrtc.Compile(cuda, "Demo.K.Run", nvrtc.ChooseTarget(90));
        compile.Should().NotThrow(cuda);
    }

    [Fact]
    public void Synchronising_helpers_compute_the_same_bits_on_cpu_kernels_and_cuda_host()
    {
        // Nested in a private class, the kernel is not registered with KernelRegistry when the assembly loads.
        var run = GeneratorHarness.Run(Kernel(Accepted).Replace("public static partial class K", "public static partial class Unregistered\n{\nprivate static partial class K") + "}\n");
        run.GeneratorDiagnostics.Should().BeEmpty();
        var launch = run.Load().GetType("Demo.Unregistered+K+RunKernel")!.GetMethod("Launch")!;
        const int blocks = 3, block = 64, n = blocks * block;
        var random = new Random(17);
        float[] x = Enumerable.Range(0, n).Select(_ => (float)random.NextDouble() * 2f - 1f).ToArray();

        // The same float operations in the same order: lane pairs, then the tree sum twice.
        var expectedY = new float[n];
        var expectedSums = new float[blocks];
        for (int g = 0; g < n; g++)
        {
            expectedY[g] = x[g ^ 1] * 0.5f + x[g] * 0.5f;
        }
        for (int b = 0; b < blocks; b++)
        {
            float first = TreeSum(expectedY.Skip(b * block).Take(block).ToArray());
            float second = TreeSum(Enumerable.Repeat(first, block).ToArray());
            expectedSums[b] = first + second;
        }

        using var cpuKernels = new HostAccelerator(AcceleratorKind.CpuKernels, maxParallelism: 1);
        using var cudaHost = IlgpuOct.Kernels.CudaHost.CudaHostAccelerator.Open(sanitize: false, cache: new KernelCache(enabled: false), maxParallelism: 1);
        foreach (var accelerator in new Accelerator[] { cpuKernels, cudaHost })
        {
            var (y, sums) = Execute(accelerator, launch, x, blocks, block);
            for (int i = 0; i < n; i++)
            {
                BitConverter.SingleToInt32Bits(y[i]).Should().Be(BitConverter.SingleToInt32Bits(expectedY[i]), $"{accelerator.Kind}: y[{i}]");
            }
            for (int b = 0; b < blocks; b++)
            {
                BitConverter.SingleToInt32Bits(sums[b]).Should().Be(BitConverter.SingleToInt32Bits(expectedSums[b]), $"{accelerator.Kind}: sums[{b}] is {sums[b]}, expected {expectedSums[b]}");
            }
        }
    }

    private static float TreeSum(float[] s)
    {
        for (int stride = s.Length / 2; stride > 0; stride >>= 1)
        {
            for (int t = 0; t < stride; t++)
            {
                s[t] += s[t + stride];
            }
        }
        return s[0];
    }

    private static (float[] Y, float[] Sums) Execute(Accelerator accelerator, MethodInfo launch, float[] x, int blocks, int block)
    {
        using var input = accelerator.Upload<float>(x);
        using var y = accelerator.Upload<float>(new float[x.Length]);
        using var sums = accelerator.Upload<float>(new float[blocks]);
        try
        {
            launch.Invoke(null, [accelerator, new LaunchConfig(blocks, block), input.View, y.View, sums.View, 1]);
        }
        catch (TargetInvocationException e) when (e.InnerException is not null)
        {
            throw e.InnerException;
        }
        accelerator.Synchronize();
        return (accelerator.Download(y.View), accelerator.Download(sums.View));
    }
}
