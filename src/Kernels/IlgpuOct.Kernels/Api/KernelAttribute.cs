namespace IlgpuOct.Kernels;

/// <summary>
/// Marks a static method as a GPU kernel. The source generator translates its body (and every
/// static helper it calls) to CUDA C, emits a typed launcher as the nested class
/// <c>{MethodName}Kernel</c> of the (partial) declaring class, and, for kernels with barriers or
/// warp shuffles, a C# iterator copy that the CPU accelerator steps barrier by barrier.
/// The first parameter must be <see cref="KernelContext"/>; the others are <see cref="View{T}"/>
/// or scalars (float, double, int, uint, long, bool).
/// </summary>
[AttributeUsage(AttributeTargets.Method, Inherited = false)]
public sealed class KernelAttribute : Attribute
{
    /// <summary>
    /// True when ptxas may spill registers of this kernel to local memory and that is accepted
    /// (say why beside the attribute); <c>ilgpuoct kernels report --fail-on-spill</c> fails on any
    /// other kernel that spills.
    /// </summary>
    public bool MaySpill { get; set; }

    /// <summary>
    /// With <see cref="MinBlocksPerMultiprocessor"/>: CUDA's <c>__launch_bounds__(MaxThreadsPerBlock,
    /// MinBlocksPerMultiprocessor)</c>, so ptxas caps registers at what that many resident blocks allow
    /// (e.g. 256 and 2: 128 registers per thread). 0 (the default) emits no bound. Launches with
    /// more threads per block than this fail on the GPU; check <c>kernels report</c> for spills.
    /// </summary>
    public int MaxThreadsPerBlock { get; set; }

    /// <summary>The second argument of <c>__launch_bounds__</c> (see <see cref="MaxThreadsPerBlock"/>); 0: none.</summary>
    public int MinBlocksPerMultiprocessor { get; set; }
}
