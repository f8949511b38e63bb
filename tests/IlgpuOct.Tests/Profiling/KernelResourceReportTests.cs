using FluentAssertions;
using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Cuda;
using IlgpuOct.Kernels.Operators;
using IlgpuOct.Kernels.Profiling;
using IlgpuOct.Tests.Cuda;
using Xunit;

namespace IlgpuOct.Tests.Profiling;

public sealed class KernelResourceReportTests
{
    private const string Log = """
        file.cu(3): warning #550-D: variable "t" was set but never used

        ptxas info    : 0 bytes gmem
        ptxas info    : Function properties for ioct_fn_helper
        ptxas         .     24 bytes stack frame, 8 bytes spill stores, 8 bytes spill loads
        ptxas info    : Compiling entry function 'k2' for 'sm_90'
        ptxas info    : Function properties for k2
        ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
        ptxas info    : Used 8 registers, 360 bytes cmem[0]
        ptxas info    : Compiling entry function 'k' for 'sm_90'
        ptxas info    : Function properties for k
        ptxas         .     40 bytes stack frame, 36 bytes spill stores, 32 bytes spill loads
        ptxas info    : Used 24 registers, used 1 barriers, 1024 bytes smem, 400 bytes cmem[0]
        """;

    [Fact]
    public void Parses_every_entry_function_and_ignores_device_functions()
    {
        var entries = PtxasLog.Parse(Log);
        entries.Keys.Should().BeEquivalentTo(["k", "k2"]);
        entries["k2"].Should().Be(new KernelResources("k2", "sm_90", 8, 0, 0, 0, 0, 360));
        entries["k"].Should().Be(new KernelResources("k", "sm_90", 24, 36, 32, 40, 1024, 400));
        entries["k"].Spills.Should().BeTrue();
        NvrtcLog.Warnings(Log).Should().ContainSingle().Which.Should().Contain("warning #550-D");
    }

    [Fact]
    public void MaySpill_names_match_the_registry_names()
    {
        // Only test kernels may declare it today; the name format must still be the registry's.
        var names = KernelDeclarations.MaySpill(typeof(KernelResourceReportTests).Assembly);
        names.Should().Contain(typeof(SpillingKernelHolder).FullName!.Replace('+', '.') + ".Declared");
    }

    [Fact]
    public void A_spill_counts_against_a_kernel_unless_it_declares_it_may()
    {
        var spilling = new KernelResources("k", "sm_90", 24, 36, 32, 40, 0, 0);
        new KernelResourceRow("T.K", spilling, MaySpill: false, [], [], null).UndeclaredSpill.Should().BeTrue();
        new KernelResourceRow("T.K", spilling, MaySpill: true, [], [], null).UndeclaredSpill.Should().BeFalse();
        new KernelResourceRow("T.K", spilling with { SpillStoreBytes = 0, SpillLoadBytes = 0 }, MaySpill: false, [], [], null).UndeclaredSpill.Should().BeFalse();
    }

    [NvrtcFact]
    public void Real_ptxas_output_of_a_register_starved_kernel_shows_its_spill()
    {
        // Gemm3's 8 x 8 register tile needs ~128 registers; capped at 32 ptxas must spill.
        var nvrtc = Nvrtc.Get();
        KernelRegistry.EnsureLoaded(typeof(Gemm).Assembly);
        var kernel = KernelRegistry.Find("Gemm.Gemm3Tiled128")!;
        var target = new NvrtcTarget(90, NvrtcOutput.Cubin);
        var result = nvrtc.Compile(kernel.CudaSource, kernel.Name, target, [.. nvrtc.OptionsFor(target), KernelResourceReport.VerbosePtxasOption, "--maxrregcount=32"]);
        var resources = PtxasLog.Parse(result.Log)[kernel.EntryPoint];
        resources.Registers.Should().BeLessThanOrEqualTo(32);
        resources.Spills.Should().BeTrue();
    }

    [NvrtcFact]
    public void Every_kernel_has_resources_and_a_declared_launch_shape_on_sm_90()
    {
        var assemblies = new[] { typeof(Accelerator).Assembly, typeof(IlgpuOct.Defense.Attacks.AttackKernels).Assembly, typeof(IlgpuOct.Nn.Tensor).Assembly };
        KernelRegistry.EnsureLoaded(assemblies);
        // Only the project's kernels: other tests (the translator fuzzer, generator probes) register
        // kernels they compile in memory, process-wide, and those declare no launch shapes.
        var projectKernels = KernelRegistry.All
            .Where(k => assemblies.Any(a => k.Name.StartsWith(a.GetName().Name + ".", StringComparison.Ordinal)))
            .ToList();
        var report = KernelResourceReport.Build(Nvrtc.Get(), GpuArchitecture.Get(90), projectKernels, KernelDeclarations.LaunchShapes(assemblies), KernelDeclarations.MaySpill(assemblies));
        report.Kernels.Should().NotBeEmpty();
        foreach (var row in report.Kernels)
        {
            row.Error.Should().BeNull(row.Kernel);
            row.Resources!.Registers.Should().BeInRange(1, 255, row.Kernel);
            row.Shapes.Should().NotBeEmpty($"{row.Kernel} needs a [LaunchShapes] entry so its occupancy is reported");
            row.Shapes.Should().OnlyContain(s => s.Occupancy.ActiveWarps > 0, row.Kernel);
        }
        var gemm3 = KernelRegistry.Find("Gemm.Gemm3Tiled128")!;
        report.Kernels.Single(k => k.Kernel == gemm3.Name).Resources!.StaticSharedBytes.Should().Be(gemm3.StaticSharedBytes);
    }
}

/// <summary>A kernel that declares it may spill, for the name check (never launched).</summary>
public static partial class SpillingKernelHolder
{
    [Kernel(MaySpill = true)]
    public static void Declared(KernelContext ctx, View<float> x)
    {
        x[ctx.GlobalX] = 0f;
    }
}
