using System.Reflection;
using FluentAssertions;
using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Operators;
using IlgpuOct.Tests.Support;
using Microsoft.CodeAnalysis;
using Xunit;

namespace IlgpuOct.Tests.Generator;

/// <summary>
/// Generated launchers and iterator copies, compiled in memory and run on cpu-kernels; the registry
/// of the repository's real kernels; incremental caching; the README example.
/// </summary>
public sealed class GeneratorRuntimeTests
{
    private const string Probe = """
        namespace GeneratorProbe;
        public static partial class Probe
        {
            private const int Block = 64;
            private const int Taps = 3;

            private static float Weight(int k) => k == 0 ? 0.5f : 0.25f;

            private static float Clamp01(float v)
            {
                if (v < 0f) { return 0f; }
                return v > 1f ? 1f : v;
            }

            // Barriers in a loop, a stackalloc span, helpers, a shuffle in a declaration and in a compound
            // assignment, an early return before the last barrier-free part.
            [Kernel]
            public static void Smooth(KernelContext ctx, View<float> x, View<float> y, View<float> warpTotals, int n)
            {
                var tile = ctx.Shared<float>(Block + 2);
                int t = ctx.ThreadIdx.X;
                int g = ctx.GlobalX;
                Span<float> w = stackalloc float[Taps];
                for (int k = 0; k < Taps; k++) { w[k] = Weight(k); }
                tile[t + 1] = g < n ? x[g] : 0f;
                if (t == 0) { tile[0] = g > 0 && g - 1 < n ? x[g - 1] : 0f; }
                if (t == Block - 1) { tile[Block + 1] = g + 1 < n ? x[g + 1] : 0f; }
                ctx.Barrier();
                float v = w[0] * tile[t + 1] + w[1] * tile[t] + w[2] * tile[t + 2];
                float sum = v;
                for (int offset = 16; offset > 0; offset >>= 1)
                {
                    sum += ctx.ShuffleDown(sum, offset);
                }
                float first = ctx.Shuffle(sum, 0);
                if (ctx.LaneIdx == 0) { warpTotals[g / 32] = first; }
                if (g >= n) { return; }
                y[g] = Clamp01(v);
            }

            [Kernel]
            internal static void Count(KernelContext ctx, View<int> counts, View<float> maxima, View<float> values)
            {
                int g = ctx.GlobalX;
                if (g >= values.Length) { return; }
                float v = values[g];
                Atomic.Add(ref counts[v > 0f ? 1 : 0], 1);
                Atomic.Max(ref maxima[0], v);
                Atomic.Min(ref maxima[1], v);
            }
        }
        """;

    private static readonly Lazy<(GeneratorRun Run, Assembly Assembly)> Compiled = new(() =>
    {
        var run = GeneratorHarness.Run(Probe);
        return (run, run.Load());
    });

    [Fact]
    public void Probe_kernels_compile_without_warnings()
    {
        var (run, _) = Compiled.Value;
        run.GeneratorDiagnostics.Should().BeEmpty();
        run.CompilationProblems.Should().BeEmpty();
    }

    [Fact]
    public void Iterator_copy_turns_barriers_and_shuffles_into_yields()
    {
        var (run, _) = Compiled.Value;
        string text = run.GeneratedText("Probe.Smooth");
        text.Should().Contain("private static global::System.Collections.Generic.IEnumerator<int> SmoothIterator(global::IlgpuOct.Kernels.KernelContext ctx, global::IlgpuOct.Kernels.View<float> x");
        text.Should().Contain("yield return global::IlgpuOct.Kernels.KernelYield.BarrierAt(28);", "a barrier yields its source line for synccheck");
        text.Should().Contain("ctx.ShuffleDeposit<float>(sum, global::IlgpuOct.Kernels.ShuffleMode.Down, offset);");
        text.Should().Contain("ctx.ShuffleDeposit<float>(sum, global::IlgpuOct.Kernels.ShuffleMode.Index, 0);");
        text.Should().Contain("yield return global::IlgpuOct.Kernels.KernelYield.WarpSync;");
        text.Should().Contain("float first = __shfl1;");
        text.Should().Contain("yield break;");
        text.Should().Contain("float[] w = new float[Taps];");
        text.Should().Contain("=> SmoothIterator(__ctx, x, y, warpTotals, n)");
        text.Should().NotContain("ctx.Barrier()");
        run.GeneratedText("Probe.Count").Should().NotContain("Iterator(", "barrier-free kernels run as plain per-thread calls")
            .And.Contain("=> CountChecked(__ctx, counts, maxima, values)").And.Contain("private static void CountChecked(");
    }

    [Fact]
    public void Generated_launcher_runs_the_iterator_copy_with_block_semantics()
    {
        var (_, assembly) = Compiled.Value;
        const int n = 150; // three blocks of 64, the last partly idle
        var random = new Random(9);
        var x = Enumerable.Range(0, n).Select(_ => (float)random.NextDouble() * 2f - 0.5f).ToArray();
        var y = new float[n];
        var warpTotals = new float[6];
        using var acc = new HostAccelerator(AcceleratorKind.CpuKernels);
        Launch(assembly, "Smooth", acc, new LaunchConfig(3, 64), new View<float>(x), new View<float>(y), new View<float>(warpTotals), n);

        var expectedY = new float[n];
        var values = new float[192];
        for (int g = 0; g < 192; g++)
        {
            float centre = g < n ? x[g] : 0f;
            float left = g > 0 && g - 1 < n ? x[g - 1] : 0f;
            float right = g + 1 < n ? x[g + 1] : 0f;
            values[g] = 0.5f * centre + 0.25f * left + 0.25f * right;
            if (g < n)
            {
                expectedY[g] = Math.Clamp(values[g], 0f, 1f);
            }
        }
        Tolerance.AssertClose(y, expectedY, 1e-6, 1e-6, "smoothed values");
        var expectedTotals = Enumerable.Range(0, 6).Select(w => values.Skip(w * 32).Take(32).Sum()).ToArray();
        Tolerance.AssertClose(warpTotals, expectedTotals, 1e-5, 1e-5, "warp totals by shuffle");
    }

    [Fact]
    public void Generated_launcher_runs_atomics_on_every_thread()
    {
        var (_, assembly) = Compiled.Value;
        var values = Enumerable.Range(0, 1000).Select(i => (float)Math.Sin(i)).ToArray();
        var counts = new int[2];
        var maxima = new[] { float.NegativeInfinity, float.PositiveInfinity };
        using var acc = new HostAccelerator(AcceleratorKind.CpuKernels);
        Launch(assembly, "Count", acc, LaunchConfig.For1D(1000, 128), new View<int>(counts), new View<float>(maxima), new View<float>(values));
        counts[1].Should().Be(values.Count(v => v > 0));
        counts[0].Should().Be(values.Count(v => v <= 0));
        maxima[0].Should().Be(values.Max());
        maxima[1].Should().Be(values.Min());
    }

    [Fact]
    public void Generated_launcher_rejects_a_null_accelerator_and_compiled_launch_reaches_the_accelerator()
    {
        var (_, assembly) = Compiled.Value;
        var launch = assembly.GetType("GeneratorProbe.Probe+CountKernel")!.GetMethod("Launch")!;
        var nullAcc = () => launch.Invoke(null, new object?[] { null, new LaunchConfig(1, 1), new View<int>(new int[2]), new View<float>(new float[2]), new View<float>(new float[1]) });
        nullAcc.Should().Throw<TargetInvocationException>().WithInnerException<ArgumentNullException>();

        var recorder = new RecordingAccelerator();
        launch.Invoke(null, new object[] { recorder, new LaunchConfig(2, 32), new View<int>(0x1000, 2), new View<float>(0x2000, 2), new View<float>(0x3000, 7) });
        recorder.Slots.Should().Equal(0x1000UL, 2UL, 0x2000UL, 2UL, 0x3000UL, 7UL);
        recorder.Kernel!.EntryPoint.Should().Be("ioct_GeneratorProbe_Probe_Count");
    }

    private static void Launch(Assembly assembly, string kernel, Accelerator acc, LaunchConfig config, params object[] args)
    {
        var launch = assembly.GetType($"GeneratorProbe.Probe+{kernel}Kernel")!.GetMethod("Launch")!;
        try
        {
            launch.Invoke(null, new object[] { acc, config }.Concat(args).ToArray());
        }
        catch (TargetInvocationException e) when (e.InnerException is not null)
        {
            throw e.InnerException;
        }
    }

    [Fact]
    public void Repository_kernels_are_registered_with_their_cuda_and_its_sha256()
    {
        KernelRegistry.EnsureLoaded(typeof(Elementwise).Assembly);
        var names = new[]
        {
            "Elementwise.Axpy", "Elementwise.ReluForward", "Elementwise.ReluBackward", "Elementwise.Add",
            "Elementwise.AddInPlace", "Elementwise.Scale", "Reduction.BlockSum", "Reduction.WarpSum",
        };
        foreach (var name in names)
        {
            var definition = KernelRegistry.Find(name);
            definition.Should().NotBeNull(name);
            definition!.CudaSource.Should().Contain("extern \"C\" __global__ void " + definition.EntryPoint + "(");
            definition.SourceSha256.Should().Be(global::IlgpuOct.Kernels.Generator.KernelEmitter.Sha256Hex(definition.CudaSource));
            definition.GeneratorVersion.Should().Be(global::IlgpuOct.Kernels.Generator.KernelGenerator.Version);
        }
        KernelRegistry.Find("Reduction.BlockSum")!.UsesBarriers.Should().BeTrue();
        KernelRegistry.Find("Reduction.BlockSum")!.StaticSharedBytes.Should().Be(Reduction.BlockSize * sizeof(float));
        KernelRegistry.Find("Reduction.WarpSum")!.UsesWarpShuffles.Should().BeTrue();
        KernelRegistry.Find("Elementwise.Axpy")!.UsesBarriers.Should().BeFalse();
        KernelRegistry.Find("Elementwise.Axpy")!.Parameters.Should().Be("float a, float* x, int x_length, float* y, int y_length");
    }

    [Fact]
    public void Unchanged_input_is_served_from_the_incremental_cache()
    {
        var run = GeneratorHarness.Run(Probe);
        var driver = Microsoft.CodeAnalysis.CSharp.CSharpGeneratorDriver.Create(
            new[] { new global::IlgpuOct.Kernels.Generator.KernelGenerator().AsSourceGenerator() },
            driverOptions: new GeneratorDriverOptions(IncrementalGeneratorOutputKind.None, trackIncrementalGeneratorSteps: true));
        var original = run.Compilation.RemoveSyntaxTrees(run.Result.GeneratedTrees);
        GeneratorDriver first = driver.RunGenerators(original);
        // An edit elsewhere in the compilation: the kernels' outputs must be cached, not regenerated.
        var edited = original.AddSyntaxTrees(Microsoft.CodeAnalysis.CSharp.CSharpSyntaxTree.ParseText("namespace Other; public static class Unrelated { public static int F() => 1; }",
            (Microsoft.CodeAnalysis.CSharp.CSharpParseOptions)original.SyntaxTrees.First().Options));
        var second = first.RunGenerators(edited).GetRunResult().Results.Single();
        var outputs = second.TrackedOutputSteps.SelectMany(s => s.Value).SelectMany(s => s.Outputs).ToList();
        outputs.Should().NotBeEmpty();
        outputs.Should().OnlyContain(o => o.Reason == IncrementalStepRunReason.Cached || o.Reason == IncrementalStepRunReason.Unchanged,
            "kernel models are value-equatable strings");
    }

    [Fact]
    public void The_readme_example_compiles_and_translates()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "IlgpuOct.sln")))
        {
            dir = dir.Parent;
        }
        string readme = File.ReadAllText(Path.Combine(dir!.FullName, "src", "Kernels", "README.md"));
        int start = readme.IndexOf("```csharp\n", StringComparison.Ordinal) + "```csharp\n".Length;
        int end = readme.IndexOf("```", start, StringComparison.Ordinal);
        var run = GeneratorHarness.Run(readme[start..end]);
        run.GeneratorDiagnostics.Should().BeEmpty();
        run.CompilationProblems.Should().BeEmpty();
        run.Cuda("IlgpuOct.Kernels.Operators.Scaling", "ScaleAndSum").Should().Contain("__shared__ float partial[256];").And.Contain("atomicAdd(&total[0], partial[0]);");
    }

    /// <summary>An accelerator that records compiled launches (what a CUDA accelerator would receive).</summary>
    private sealed class RecordingAccelerator : Accelerator
    {
        public ulong[] Slots { get; private set; } = [];

        public KernelDefinition? Kernel { get; private set; }

        public override AcceleratorKind Kind => AcceleratorKind.Cuda;

        public override string Name => "recorder";

        public override bool RunsKernelsOnHost => false;

        public override void LaunchCompiled(KernelDefinition kernel, LaunchConfig config, ReadOnlySpan<ulong> argumentSlots)
        {
            Kernel = kernel;
            Slots = argumentSlots.ToArray();
        }

        protected override DeviceBuffer<T> AllocateCore<T>(int length) => throw new NotSupportedException();

        protected override void CopyFromHostCore<T>(ReadOnlySpan<T> source, View<T> destination) => throw new NotSupportedException();

        protected override void CopyToHostCore<T>(View<T> source, Span<T> destination) => throw new NotSupportedException();

        public override void Copy<T>(View<T> source, View<T> destination) => throw new NotSupportedException();

        public override void Clear<T>(View<T> destination) => throw new NotSupportedException();

        public override void Synchronize()
        {
        }

        public override IDeviceTimer CreateTimer() => throw new NotSupportedException();

        public override DeviceMemoryInfo GetMemoryInfo() => default;

        public override void LaunchOnHost(KernelDefinition kernel, LaunchConfig config, Action<KernelContext> threadBody) => throw new NotSupportedException();

        public override void LaunchOnHost(KernelDefinition kernel, LaunchConfig config, Func<KernelContext, IEnumerator<int>> threadBody) => throw new NotSupportedException();
    }
}
