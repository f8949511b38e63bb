using IlgpuOct.Kernels.Cuda;

namespace IlgpuOct.Kernels.Profiling;

/// <summary>Occupancy of one declared launch shape of a kernel.</summary>
public sealed record ShapeOccupancy(string Case, Dim3 Block, int DynamicSharedBytes, OccupancyResult Occupancy);

/// <summary>One kernel's row: ptxas resources (null with <see cref="Error"/> when NVRTC failed), NVRTC warnings, occupancy per launch shape.</summary>
public sealed record KernelResourceRow(
    string Kernel,
    KernelResources? Resources,
    bool MaySpill,
    IReadOnlyList<string> Warnings,
    IReadOnlyList<ShapeOccupancy> Shapes,
    string? Error)
{
    /// <summary>Spills without having declared <c>[Kernel(MaySpill = true)]</c>.</summary>
    public bool UndeclaredSpill => Resources is { Spills: true } && !MaySpill;
}

/// <summary>Registers, spills, stack and shared memory of every kernel from ptxas, and the theoretical occupancy of the shapes operators launch.</summary>
public sealed record KernelResourceReport(GpuArchitecture Architecture, string Compiler, IReadOnlyList<KernelResourceRow> Kernels)
{
    /// <summary>The ptxas option that makes NVRTC log each entry function's resources (works without a GPU).</summary>
    public const string VerbosePtxasOption = "--ptxas-options=-v";

    /// <summary>Compiles every kernel to CUBIN for <paramref name="arch"/> with verbose ptxas (in parallel) and computes occupancy for each of its <paramref name="shapes"/>.</summary>
    public static KernelResourceReport Build(
        Nvrtc nvrtc,
        GpuArchitecture arch,
        IReadOnlyList<KernelDefinition> kernels,
        IReadOnlyList<LaunchShape> shapes,
        IReadOnlySet<string> maySpill,
        IProgress<string>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(nvrtc);
        if (!nvrtc.SupportedArchitectures.Contains(arch.ComputeCapability) || !nvrtc.CanEmitCubin)
        {
            throw new NotSupportedException($"{nvrtc} cannot emit a CUBIN for {arch.Name}, which ptxas' resource report needs; use an NVRTC that supports it (11.8+ for sm_90).");
        }
        var target = new NvrtcTarget(arch.ComputeCapability, NvrtcOutput.Cubin);
        var options = nvrtc.OptionsFor(target).Append(VerbosePtxasOption).ToArray();
        var rows = new KernelResourceRow[kernels.Count];
        int done = 0;
        Parallel.For(0, kernels.Count, new ParallelOptions { CancellationToken = cancellationToken, MaxDegreeOfParallelism = Environment.ProcessorCount }, i =>
        {
            var kernel = kernels[i];
            var kernelShapes = shapes.Where(s => ReferenceEquals(s.Kernel, kernel) || s.Kernel.Name == kernel.Name).ToArray();
            rows[i] = Row(nvrtc, arch, target, options, kernel, kernelShapes, maySpill.Contains(kernel.Name));
            progress?.Report($"{Interlocked.Increment(ref done)}/{kernels.Count} {kernel.Name}");
        });
        return new KernelResourceReport(arch, nvrtc.ToString(), rows);
    }

    private static KernelResourceRow Row(Nvrtc nvrtc, GpuArchitecture arch, NvrtcTarget target, IReadOnlyList<string> options,
        KernelDefinition kernel, IReadOnlyList<LaunchShape> shapes, bool maySpill)
    {
        NvrtcResult result;
        try
        {
            result = nvrtc.Compile(kernel.CudaSource, kernel.Name, target, options);
        }
        catch (NvrtcCompileException e)
        {
            return new KernelResourceRow(kernel.Name, null, maySpill, [], [], e.Message);
        }
        var warnings = NvrtcLog.Warnings(result.Log);
        if (!PtxasLog.Parse(result.Log).TryGetValue(kernel.EntryPoint, out var resources))
        {
            return new KernelResourceRow(kernel.Name, null, maySpill, warnings, [],
                $"ptxas reported no resources for entry point {kernel.EntryPoint} (options: {string.Join(" ", options)}); log:\n{result.Log.TrimEnd()}");
        }
        var occupancies = shapes
            .Select(s => new ShapeOccupancy(s.Case, s.Config.Block, s.Config.DynamicSharedBytes,
                Occupancy.Compute(arch, (int)s.Config.Block.Volume, resources.Registers, resources.StaticSharedBytes + s.Config.DynamicSharedBytes)))
            .ToArray();
        return new KernelResourceRow(kernel.Name, resources, maySpill, warnings, occupancies, null);
    }
}
