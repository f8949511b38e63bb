using IlgpuOct.Kernels.Operators;

namespace IlgpuOct.Kernels.Cpu;

/// <summary>The row loops of the cpu engine's layout-bound operators: threads only where the work pays for them.</summary>
internal static class CpuParallel
{
    /// <summary>Below this many elements (or multiply-adds) one thread finishes before a second one would start.</summary>
    public const long MinParallelWork = 1L << 16;

    /// <summary>
    /// body(0) .. body(count - 1), on up to <see cref="Gemm.CpuMaxThreads"/> threads when <paramref name="work"/>
    /// reaches <see cref="MinParallelWork"/>, else in order on this thread. Bodies must not depend on each other.
    /// </summary>
    public static void For(int count, long work, Action<int> body)
    {
        if (count == 1 || Gemm.CpuMaxThreads == 1 || work < MinParallelWork)
        {
            for (int i = 0; i < count; i++)
            {
                body(i);
            }
        }
        else
        {
            Parallel.For(0, count, new ParallelOptions { MaxDegreeOfParallelism = Gemm.CpuMaxThreads }, body);
        }
    }
}
