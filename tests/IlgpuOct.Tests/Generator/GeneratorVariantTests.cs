using System.Reflection;
using FluentAssertions;
using IlgpuOct.Kernels;
using Microsoft.CodeAnalysis;
using Xunit;

namespace IlgpuOct.Tests.Generator;

/// <summary>
/// [KernelVariant]: one kernel body specialised into several kernels (const overrides inside the body, own
/// launch bounds, shared and register array sizes), each run on cpu-kernels with its own values; and
/// IOCT0050 for every misuse.
/// </summary>
public sealed class GeneratorVariantTests
{
    private const string Probe = """
        namespace VariantProbe;
        public static partial class Tiles
        {
            private const int Width = 4;       // values each thread sums
            private const bool Twice = false;  // whether the sum is doubled
            private const int Threads = 64;

            private static float Scale(float v, int factor) => v * factor;

            [Kernel(MaxThreadsPerBlock = Threads)]
            [KernelVariant("SumWide", nameof(Width), 8, nameof(Twice), true, MinBlocksPerMultiprocessor = 3)]
            public static void Sum(KernelContext ctx, View<float> x, View<float> y)
            {
                const int pitch = Width + 1;
                var tile = ctx.Shared<float>(Threads * pitch);
                Span<float> acc = stackalloc float[Width];
                int t = ctx.ThreadIdx.X;
                for (int j = 0; j < Width; j++)
                {
                    tile[t * pitch + j] = x[(ctx.BlockIdx.X * Threads + t) * Width + j];
                }
                ctx.Barrier();
                float s = 0f;
                for (int j = 0; j < Width; j++)
                {
                    acc[j] = tile[t * pitch + j];
                    s += acc[j];
                }
                y[ctx.BlockIdx.X * Threads + t] = Twice ? Scale(s, 2) : s;
            }
        }
        """;

    private static readonly Lazy<(GeneratorRun Run, Assembly Assembly)> Compiled = new(() =>
    {
        var run = GeneratorHarness.Run(Probe);
        return (run, run.Load());
    });

    [Fact]
    public void Each_variant_is_its_own_cuda_kernel_with_its_constants_and_launch_bounds()
    {
        var (run, _) = Compiled.Value;
        run.GeneratorDiagnostics.Should().BeEmpty();
        run.CompilationProblems.Should().BeEmpty();
        string sum = run.Cuda("VariantProbe.Tiles", "Sum");
        string wide = run.Cuda("VariantProbe.Tiles", "SumWide");
        sum.Should().Contain("__launch_bounds__(64) ioct_VariantProbe_Tiles_Sum(").And.Contain("float acc[4]");
        wide.Should().Contain("__launch_bounds__(64, 3) ioct_VariantProbe_Tiles_SumWide(").And.Contain("float acc[8]");
        run.GeneratedText("Tiles.Sum.").Should().Contain("staticSharedBytes: 1280,");   // 64 x 5 floats
        run.GeneratedText("Tiles.SumWide.").Should().Contain("staticSharedBytes: 2304,"); // 64 x 9 floats
        run.Field("VariantProbe.Tiles", "SumWide", "CudaSourceSha256").Should().NotBe(run.Field("VariantProbe.Tiles", "Sum", "CudaSourceSha256"));
    }

    [Fact]
    public void Each_variant_runs_on_cpu_kernels_with_its_own_values()
    {
        var (_, assembly) = Compiled.Value;
        const int blocks = 2, threads = 64;
        var x = Enumerable.Range(0, blocks * threads * 8).Select(i => (float)(i % 13) - 6f).ToArray();
        using var acc = new HostAccelerator(AcceleratorKind.CpuKernels);
        var y = new float[blocks * threads];
        Launch(assembly, "Sum", acc, new LaunchConfig(blocks, threads), new View<float>(x), new View<float>(y));
        y.Should().Equal(Enumerable.Range(0, blocks * threads).Select(g => Enumerable.Range(0, 4).Sum(j => x[g * 4 + j])).ToArray());
        var wide = new float[blocks * threads];
        Launch(assembly, "SumWide", acc, new LaunchConfig(blocks, threads), new View<float>(x), new View<float>(wide));
        wide.Should().Equal(Enumerable.Range(0, blocks * threads).Select(g => 2f * Enumerable.Range(0, 8).Sum(j => x[g * 8 + j])).ToArray());
    }

    [Fact]
    public void The_repository_registers_the_collapsed_gemm_and_the_conv_variants()
    {
        foreach (string name in new[] { "Gemm.Gemm2Tiled64", "Gemm.Gemm3Tiled128", "Conv2d.ConvWarpTiled", "Conv2d.ConvWarpTiled128", "Conv2d.ConvWarpTiled64" })
        {
            KernelRegistry.Find(name).Should().NotBeNull(name);
        }
        KernelRegistry.Find("Gemm.Gemm2Tiled64")!.StaticSharedBytes.Should().Be(2 * 16 * 68 * sizeof(float), "Gemm2's k slices of 16 over 64 + 4 padded rows");
        KernelRegistry.Find("Gemm.Gemm3Tiled128")!.StaticSharedBytes.Should().Be(2 * 8 * 132 * sizeof(float));
    }

    private static string Kernel(string attribute, string extra = "", string body = "y[0] = Width;") => $$"""
        namespace Demo;
        public static partial class K
        {
            private const int Width = 4;
            {{extra}}
            [Kernel]
            {{attribute}}
            public static void Run(KernelContext ctx, View<float> x, View<float> y)
            {
                {{body}}
            }
        }
        """;

    public static TheoryData<string, string> Misuses => new()
    {
        { Kernel("[KernelVariant(\"Wide\", \"Depth\", 8)]"), "'Depth' is not a const field of K" },
        { Kernel("[KernelVariant(\"Wide\", nameof(Width))]"), "pass pairs of a const field name" },
        { Kernel("[KernelVariant(\"Wide\", nameof(Width), true)]"), "only int and bool constants" },
        { Kernel("[KernelVariant(\"Run\", nameof(Width), 8)]"), "no other kernel or variant" },
        { Kernel("[KernelVariant(\"Wide\", nameof(Width), 8)][KernelVariant(\"Wide\", nameof(Width), 2)]"), "no other kernel or variant" },
        { Kernel("[KernelVariant(\"Wide\", nameof(Width), 8, nameof(Width), 2)]"), "overrides 'Width' twice" },
        { Kernel("[KernelVariant(\"Wide\", nameof(Width), 8)]", "private const int Depth = 2;", "y[0] = Depth;"), "never reads 'Width'" },
        { Kernel("[KernelVariant(\"Wide\", nameof(Width), 8)]", "private const int Pitch = Width + 1;", "y[0] = Width + Pitch;"), "'Pitch', which is derived from overridden 'Width'" },
        { Kernel("[KernelVariant(\"Wide\", nameof(Width), 8)]", "private static int Get() => Width;", "y[0] = Width + Get();"), "helper 'Get' reads 'Width'" },
    };

    [Theory]
    [MemberData(nameof(Misuses))]
    public void Misuse_is_IOCT0050_with_a_fix(string source, string fragment)
    {
        var diagnostics = GeneratorHarness.Run(source).GeneratorDiagnostics;
        diagnostics.Should().Contain(d => d.Id == "IOCT0050", $"source:\n{source}\nreported: {string.Join("; ", diagnostics)}");
        var match = diagnostics.First(d => d.Id == "IOCT0050");
        match.Severity.Should().Be(DiagnosticSeverity.Error);
        match.GetMessage(System.Globalization.CultureInfo.InvariantCulture).Should().Contain(fragment);
        match.Location.GetLineSpan().Path.Should().Be("Kernels.cs", "the error points at the attribute");
    }

    private static void Launch(Assembly assembly, string kernel, Accelerator acc, LaunchConfig config, params object[] args)
    {
        var launch = assembly.GetType($"VariantProbe.Tiles+{kernel}Kernel")!.GetMethod("Launch")!;
        try
        {
            launch.Invoke(null, new object[] { acc, config }.Concat(args).ToArray());
        }
        catch (TargetInvocationException e) when (e.InnerException is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e.InnerException).Throw();
        }
    }
}
