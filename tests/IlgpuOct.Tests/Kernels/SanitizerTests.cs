using System.Reflection;
using FluentAssertions;
using IlgpuOct.Kernels;
using IlgpuOct.Tests.Generator;
using Xunit;

namespace IlgpuOct.Tests.Kernels;

/// <summary>
/// The cpu-kernels sanitizers on small generated kernels: racecheck, initcheck and synccheck report a
/// defect with kernel, block, threads and index; signed overflow names the expression; the correct
/// twin of each defective kernel is not reported. Also: launches with atomics give the same bits in
/// every run and for every core count.
/// </summary>
public sealed class SanitizerTests
{
    private const string Source = """
        namespace SanitizerProbe;
        public static partial class Host
        {
        // Private: the module initializer does not register these kernels with the process-wide registry.
        private static partial class K
        {
            public const int Block = 64;

            [Kernel]
            public static void Reduce(KernelContext ctx, View<float> x, View<float> y, int withBarrier)
            {
                var partial = ctx.Shared<float>(Block);
                int t = ctx.ThreadIdx.X;
                partial[t] = x[ctx.GlobalX];
                ctx.Barrier();
                for (int stride = Block / 2; stride > 0; stride >>= 1)
                {
                    if (t < stride)
                    {
                        partial[t] += partial[t + stride];
                    }
                    if (withBarrier != 0)
                    {
                        ctx.Barrier();
                    }
                }
                ctx.Barrier();
                if (t == 0)
                {
                    y[ctx.BlockIdx.X] = partial[0];
                }
            }

            [Kernel]
            public static void Shift(KernelContext ctx, View<float> y, int writeHalo)
            {
                var tile = ctx.Shared<float>(Block + 1);
                int t = ctx.ThreadIdx.X;
                tile[t] = t;
                if (writeHalo != 0 && t == 0)
                {
                    tile[Block] = -1f;
                }
                ctx.Barrier();
                y[ctx.GlobalX] = tile[t + 1];
            }

            [Kernel]
            public static void Histogram(KernelContext ctx, View<int> values, View<int> bins, int withBarrier)
            {
                var counts = ctx.Shared<int>(4);
                int t = ctx.ThreadIdx.X;
                if (t < 4)
                {
                    counts[t] = 0;
                }
                ctx.Barrier();
                Atomic.Add(ref counts[values[ctx.GlobalX] & 3], 1);
                if (withBarrier != 0)
                {
                    ctx.Barrier();
                }
                if (t < 4)
                {
                    Atomic.Add(ref bins[t], counts[t]);
                }
            }

            [Kernel]
            public static void Divergent(KernelContext ctx, View<float> y, int split)
            {
                var s = ctx.Shared<float>(Block);
                int t = ctx.ThreadIdx.X;
                s[t] = t;
                // The thread index reaches the condition through a stackalloc element, which the
                // build-time check (IOCT0031) does not follow; synccheck sees it at run time.
                Span<int> mine = stackalloc int[1];
                mine[0] = t;
                if (mine[0] < split)
                {
                    ctx.Barrier();
                }
                ctx.Barrier();
                y[ctx.GlobalX] = s[Block - 1 - t];
            }

            [Kernel]
            public static void EarlyExit(KernelContext ctx, View<float> y, int n)
            {
                var s = ctx.Shared<float>(Block);
                int t = ctx.ThreadIdx.X;
                if (ctx.GlobalX >= n)
                {
                    return;
                }
                s[t] = t;
                ctx.Barrier();
                y[ctx.GlobalX] = s[t];
            }

            [Kernel]
            public static void Scale(KernelContext ctx, View<int> y, int factor)
            {
                int g = ctx.GlobalX;
                if (g < y.Length)
                {
                    y[g] = g * factor;
                }
            }

            [Kernel]
            public static void Arithmetic(KernelContext ctx, View<int> y, View<long> z, int start, long big)
            {
                int g = ctx.GlobalX;
                uint hash = (uint)g * 2654435761u + 2246822519u;
                int count = start;
                count++;
                ++count;
                count += g;
                int negated = -count;
                y[g] = negated + (int)(hash & 7u);
                y[g] -= 1;
                y[g]++;
                long wide = big * 2L;
                z[g] = wide / 2L + g;
            }

            [Kernel]
            public static void Sum(KernelContext ctx, View<float> x, View<float> total)
            {
                int g = ctx.GlobalX;
                if (g < x.Length)
                {
                    Atomic.Add(ref total[0], x[g]);
                }
            }

            private static int Offset(int row, int pitch) => row * pitch;

            [Kernel]
            public static void Rows(KernelContext ctx, View<int> y, int pitch)
            {
                int g = ctx.GlobalX;
                y[g] = Offset(g, pitch);
            }
        }
        }
        """;

    private static readonly Lazy<Assembly> Compiled = new(() =>
    {
        var run = GeneratorHarness.Run(Source);
        run.GeneratorDiagnostics.Should().BeEmpty();
        run.CompilationProblems.Should().BeEmpty();
        return run.Load();
    });

    private static void Launch(string kernel, Accelerator acc, LaunchConfig config, params object[] args)
    {
        var launch = Compiled.Value.GetType($"SanitizerProbe.Host+K+{kernel}Kernel")!.GetMethod("Launch")!;
        try
        {
            launch.Invoke(null, new object[] { acc, config }.Concat(args).ToArray());
        }
        catch (TargetInvocationException e) when (e.InnerException is not null)
        {
            throw e.InnerException;
        }
    }

    private static HostAccelerator Sanitized(int cores = 0) => new(AcceleratorKind.CpuKernels, cores, sanitize: true);

    private static float[] Inputs(int n) => Enumerable.Range(0, n).Select(i => (float)Math.Sin(i) * (1 + i % 7)).ToArray();

    [Fact]
    public void Racecheck_reports_a_tree_reduction_missing_its_barrier_with_block_threads_and_index()
    {
        using var acc = Sanitized();
        var x = Inputs(3 * 64);
        var act = () => Launch("Reduce", acc, new LaunchConfig(3, 64), new View<float>(x), new View<float>(new float[3]), 0);
        // Thread 0 runs first through every stride, reading partial[1] in the last step; thread 1 then
        // updates it in its stride-32 step of the same phase.
        act.Should().Throw<KernelExecutionException>().Which.Message.Should()
            .Contain("Kernel SanitizerProbe.Host.K.Reduce").And.Contain("block (0,0,0):").And.Contain("racecheck")
            .And.Contain("thread (0,0,0) reads partial[1]").And.Contain("thread (1,0,0) updates (reads and writes) it");
    }

    [Fact]
    public void Racecheck_accepts_the_tree_reduction_with_its_barriers()
    {
        using var acc = Sanitized();
        var x = Inputs(3 * 64);
        var y = new float[3];
        Launch("Reduce", acc, new LaunchConfig(3, 64), new View<float>(x), new View<float>(y), 1);
        for (int b = 0; b < 3; b++)
        {
            double expected = x.Skip(b * 64).Take(64).Sum(v => (double)v);
            Math.Abs(y[b] - expected).Should().BeLessThan(1e-4, $"block {b}");
        }
    }

    [Fact]
    public void Initcheck_reports_a_read_of_shared_memory_no_thread_wrote()
    {
        using var acc = Sanitized();
        var act = () => Launch("Shift", acc, new LaunchConfig(2, 64), new View<float>(new float[128]), 0);
        act.Should().Throw<KernelExecutionException>().Which.Message.Should()
            .Contain("Kernel SanitizerProbe.Host.K.Shift").And.Contain("block (0,0,0):").And.Contain("initcheck")
            .And.Contain("thread (63,0,0) reads tile[64]").And.Contain("no thread of the block has written");
    }

    [Fact]
    public void Initcheck_accepts_the_kernel_that_writes_its_halo()
    {
        using var acc = Sanitized();
        var y = new float[128];
        Launch("Shift", acc, new LaunchConfig(2, 64), new View<float>(y), 1);
        y[0].Should().Be(1f);
        y[63].Should().Be(-1f);
        y[127].Should().Be(-1f);
    }

    [Fact]
    public void Racecheck_reports_a_plain_read_of_shared_memory_other_threads_update_atomically()
    {
        using var acc = Sanitized();
        var values = Enumerable.Range(0, 64).Select(i => i * 7 % 5).ToArray();
        var act = () => Launch("Histogram", acc, new LaunchConfig(1, 64), new View<int>(values), new View<int>(new int[4]), 0);
        act.Should().Throw<KernelExecutionException>().Which.Message.Should()
            .Contain("Kernel SanitizerProbe.Host.K.Histogram").And.Contain("racecheck").And.Contain("thread (0,0,0) reads counts[0]").And.Contain("thread (2,0,0) updates atomically it");
    }

    [Fact]
    public void Racecheck_accepts_shared_atomics_separated_from_reads_by_a_barrier()
    {
        using var acc = Sanitized();
        var values = Enumerable.Range(0, 128).Select(i => i * 7 % 5).ToArray();
        var bins = new int[4];
        Launch("Histogram", acc, new LaunchConfig(2, 64), new View<int>(values), new View<int>(bins), 1);
        bins.Should().Equal(Enumerable.Range(0, 4).Select(b => values.Count(v => (v & 3) == b)));
    }

    [Fact]
    public void Synccheck_reports_threads_waiting_at_different_barriers()
    {
        using var acc = new HostAccelerator(AcceleratorKind.CpuKernels, sanitize: false);
        var act = () => Launch("Divergent", acc, new LaunchConfig(1, 64), new View<float>(new float[64]), 16);
        act.Should().Throw<KernelExecutionException>().Which.Message.Should()
            .Contain("Kernel SanitizerProbe.Host.K.Divergent").And.Contain("block (0,0,0):").And.Contain("synccheck")
            .And.Contain("thread (0,0,0) waits at the barrier of line 81 and thread (16,0,0) at the barrier of line 83");
    }

    [Fact]
    public void Synccheck_accepts_a_barrier_every_thread_reaches()
    {
        using var acc = Sanitized();
        var y = new float[64];
        Launch("Divergent", acc, new LaunchConfig(1, 64), new View<float>(y), 64);
        y.Should().Equal(Enumerable.Range(0, 64).Select(t => 63f - t));
    }

    [Fact]
    public void Synccheck_reports_a_thread_that_returns_while_others_wait_at_a_barrier()
    {
        using var acc = Sanitized();
        var act = () => Launch("EarlyExit", acc, new LaunchConfig(2, 64), new View<float>(new float[128]), 100);
        act.Should().Throw<KernelExecutionException>().Which.Message.Should()
            .Contain("Kernel SanitizerProbe.Host.K.EarlyExit").And.Contain("block (1,0,0):").And.Contain("synccheck")
            .And.Contain("thread (36,0,0) ended while thread (0,0,0) waits at the barrier of line 97");
        var y = new float[128];
        Launch("EarlyExit", acc, new LaunchConfig(2, 64), new View<float>(y), 128);
        y.Should().Equal(Enumerable.Range(0, 128).Select(g => (float)(g % 64)));
    }

    [Fact]
    public void Signed_overflow_is_reported_with_block_thread_and_expression()
    {
        using var acc = new HostAccelerator(AcceleratorKind.CpuKernels, maxParallelism: 4, sanitize: false);
        var y = new int[256];
        // g * 2^24 first leaves int at g = 128: block 2 (of 64 threads), thread 0.
        var act = () => Launch("Scale", acc, new LaunchConfig(4, 64), new View<int>(y), 1 << 24);
        act.Should().Throw<KernelExecutionException>().Which.Message.Should()
            .Contain("Kernel SanitizerProbe.Host.K.Scale").And.Contain("block (2,0,0), thread (0,0,0)").And.Contain("signed int overflow in `g * factor (line 107)`")
            .And.Contain("128 * 16777216");
        Launch("Scale", acc, new LaunchConfig(4, 64), new View<int>(y), 1 << 20);
        y[255].Should().Be(255 << 20);
    }

    [Fact]
    public void Signed_overflow_in_a_helper_of_the_kernel_is_reported()
    {
        using var acc = new HostAccelerator(AcceleratorKind.CpuKernels, sanitize: false);
        var y = new int[64];
        var act = () => Launch("Rows", acc, new LaunchConfig(1, 64), new View<int>(y), 1 << 26);
        act.Should().Throw<KernelExecutionException>().Which.Message.Should()
            .Contain("Kernel SanitizerProbe.Host.K.Rows").And.Contain("thread (32,0,0)").And.Contain("signed int overflow in `row * pitch (line 138)`");
        Launch("Rows", acc, new LaunchConfig(1, 64), new View<int>(y), 1 << 20);
        y[63].Should().Be(63 << 20);
    }

    [Fact]
    public void Checked_arithmetic_keeps_csharp_results_and_lets_unsigned_wrap()
    {
        using var acc = new HostAccelerator(AcceleratorKind.CpuKernels);
        var y = new int[64];
        var z = new long[64];
        Launch("Arithmetic", acc, new LaunchConfig(1, 64), new View<int>(y), new View<long>(z), 5, 1L << 40);
        for (int g = 0; g < 64; g++)
        {
            uint hash = unchecked((uint)g * 2654435761u + 2246822519u);
            y[g].Should().Be(-(7 + g) + (int)(hash & 7u), $"thread {g}");
            z[g].Should().Be((1L << 40) + g);
        }
        var overflow = () => Launch("Arithmetic", acc, new LaunchConfig(1, 64), new View<int>(y), new View<long>(z), int.MaxValue - 1, 1L);
        overflow.Should().Throw<KernelExecutionException>().Which.Message.Should().Contain("thread (0,0,0)").And.Contain("`++count (line 118)`");
        var longOverflow = () => Launch("Arithmetic", acc, new LaunchConfig(1, 64), new View<int>(y), new View<long>(z), 0, long.MaxValue / 2 + 1);
        longOverflow.Should().Throw<KernelExecutionException>().Which.Message.Should().Contain("signed long overflow in `big * 2L (line 124)`");
    }

    [Fact]
    public void Atomic_float_sums_are_identical_run_to_run_and_for_every_core_count()
    {
        // Values of very different magnitudes, so the sum's rounding depends on the order of the adds.
        var random = new Random(5);
        var x = Enumerable.Range(0, 64 * 200).Select(_ => (float)(random.NextDouble() - 0.5) * MathF.Pow(10f, random.Next(-3, 5))).ToArray();
        int Sum(int cores)
        {
            using var acc = new HostAccelerator(AcceleratorKind.CpuKernels, cores);
            var total = new float[1];
            Launch("Sum", acc, new LaunchConfig(200, 64), new View<float>(x), new View<float>(total));
            return BitConverter.SingleToInt32Bits(total[0]);
        }
        int sequential = Sum(1);
        float inBlockOrder = 0f;
        foreach (float v in x)
        {
            inBlockOrder += v;
        }
        sequential.Should().Be(BitConverter.SingleToInt32Bits(inBlockOrder), "blocks apply their atomics in linear order, threads in order");
        for (int run = 0; run < 6; run++)
        {
            Sum(4).Should().Be(sequential, $"run {run} with 4 workers");
        }
    }
}
