namespace IlgpuOct.Kernels;

/// <summary>What the source generator knows of one kernel: its CUDA C translation unit and how it synchronises.</summary>
public sealed class KernelDefinition
{
    public KernelDefinition(
        string name,
        string entryPoint,
        string cudaSource,
        string sourceSha256,
        string parameters,
        bool usesBarriers,
        bool usesWarpShuffles,
        int staticSharedBytes,
        string generatorVersion)
    {
        Name = name;
        EntryPoint = entryPoint;
        CudaSource = cudaSource;
        SourceSha256 = sourceSha256;
        Parameters = parameters;
        UsesBarriers = usesBarriers;
        UsesWarpShuffles = usesWarpShuffles;
        StaticSharedBytes = staticSharedBytes;
        GeneratorVersion = generatorVersion;
    }

    /// <summary>Declaring type and method, e.g. <c>Elementwise.Axpy</c>.</summary>
    public string Name { get; }

    /// <summary>The extern "C" __global__ function name in <see cref="CudaSource"/>.</summary>
    public string EntryPoint { get; }

    /// <summary>A complete CUDA C translation unit: prelude, helpers, the kernel.</summary>
    public string CudaSource { get; }

    /// <summary>Lower-case hex SHA-256 of <see cref="CudaSource"/> (UTF-8).</summary>
    public string SourceSha256 { get; }

    /// <summary>The CUDA parameter list, for messages (e.g. <c>float* x, int x_length, int n</c>).</summary>
    public string Parameters { get; }

    public bool UsesBarriers { get; }

    public bool UsesWarpShuffles { get; }

    /// <summary>Bytes of statically sized __shared__ arrays.</summary>
    public int StaticSharedBytes { get; }

    public string GeneratorVersion { get; }

    public override string ToString() => Name;
}
