using FluentAssertions;
using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Fuzzing;
using Xunit;

namespace IlgpuOct.Tests.CudaHost;

/// <summary>
/// One small kernel per class of translation bug that issue 7 lists or the differential fuzzer
/// found: each must mean the same on cpu-kernels (C#) and cuda-host (the generated CUDA C).
/// Classes the generator refuses instead (IOCT0018, IOCT0030) assert the diagnostic; signed overflow,
/// undefined in CUDA C, asserts that cpu-kernels reports it.
/// </summary>
public sealed class TranslationRegressionTests
{
    private static string Kernel(string body, string extraParameters = "", string members = "") => $$"""
        namespace IlgpuOct.Regress;
        public static partial class C
        {
            {{members}}
            [Kernel]
            public static void K(KernelContext ctx, View<long> o, View<int> x{{extraParameters}})
            {
                int t = ctx.ThreadIdx.X;
                unchecked
                {
                    {{body}}
                }
            }
        }
        """;

    [Fact]
    public void Plain_arithmetic_agrees_so_the_harness_itself_is_sound()
    {
        var o = DifferentialKernel.AssertSameOnBoth(Kernel("o[t] = (long)x[t] * 3 + (t ^ 5) - (x[t] >> 1);"));
        o[7].Should().Be(7 * 3 + (7 ^ 5) - (7 >> 1));
    }

    [Fact]
    public void A_local_named_min_next_to_a_local_named_min_keeps_both()
    {
        DifferentialKernel.AssertSameOnBoth(Kernel("int min = x[t] + 3; int min_ = x[t] * 5; o[t] = min * 1000 + min_;"));
    }

    [Fact]
    public void A_local_named_x_length_next_to_view_x_keeps_both()
    {
        DifferentialKernel.AssertSameOnBoth(Kernel("int x_length = 7 + t; o[t] = x.Length * 1000 + x_length;"));
    }

    [Fact]
    public void A_local_named_d_length_next_to_dynamic_shared_d_keeps_both()
    {
        string source = """
            namespace IlgpuOct.Regress;
            public static partial class C
            {
                [Kernel]
                public static void K(KernelContext ctx, View<long> o, View<int> x)
                {
                    var d = ctx.DynamicShared<int>();
                    int t = ctx.ThreadIdx.X;
                    int d_length = 3 + t;
                    d[t] = x[t];
                    ctx.Barrier();
                    o[t] = d.Length * 1000 + d_length + d[31 - t];
                }
            }
            """;
        DifferentialKernel.AssertSameOnBoth(source, dynamicSharedBytes: DifferentialKernel.Threads * sizeof(int));
    }

    [Fact]
    public void A_compound_assignment_evaluates_its_target_once()
    {
        DifferentialKernel.AssertSameOnBoth(Kernel("Span<int> y = stackalloc int[4]; int k = 0; y[k++] += 5 + t; y[k++] %= 3; o[t] = k * 10000 + y[0] * 100 + y[1];"));
    }

    [Fact]
    public void Assignment_operands_evaluate_left_to_right()
    {
        DifferentialKernel.AssertSameOnBoth(Kernel("Span<int> a = stackalloc int[4]; int i = 0; a[i++] = i + t; a[i++] += i; o[t] = a[0] * 100 + a[1] * 10 + i;"));
    }

    [Fact]
    public void Side_effects_inside_an_expression_happen_left_to_right()
    {
        DifferentialKernel.AssertSameOnBoth(Kernel("int i = t; int v = (i++) * 10 + i; o[t] = v * 100 + i;"));
    }

    [Fact]
    public void Float_nan_constant_has_the_bits_of_dotnet()
    {
        DifferentialKernel.AssertSameOnBoth(Kernel("o[t] = KernelMath.FloatAsInt(float.NaN) + (long)t;"));
    }

    [Fact]
    public void Float_to_byte_conversion_matches_dotnet()
    {
        DifferentialKernel.AssertSameOnBoth(Kernel("float v = -0.6f * 255f * (x[t] + 1); byte b = (byte)v; byte c = (byte)(v * -3f); o[t] = b * 1000L + c;"));
    }

    [Fact]
    public void Shift_counts_are_masked_as_in_csharp()
    {
        // x86 masks shift counts like C#, so only the sanitizer build sees the undefined shift the GPU would get wrong.
        DifferentialKernel.AssertSameOnBoth(Kernel("int s = x[t] + 33; long ls = x[t] + 65; o[t] = (1 << s) + (1L << (int)ls) + (((uint)t) >> s);"), sanitize: true);
    }

    [Fact]
    public void Signed_overflow_is_reported_by_cpu_kernels()
    {
        // Signed overflow wraps in C# and is undefined in CUDA C (the translator keeps native arithmetic
        // for index performance), so cpu-kernels checks it and names kernel, block, thread and expression.
        var act = () => DifferentialKernel.AssertSameOnBoth(Kernel("int n = int.MaxValue - 31 + x[t]; o[t] = (n + 1 > n) ? 1 : 0;"));
        act.Should().Throw<KernelExecutionException>()
            .Which.Message.Should().Contain("IlgpuOct.Regress.C.K").And.Contain("block").And.Contain("thread (31,0,0)")
            .And.Contain("overflow").And.Contain("`n + 1");
    }

    [Fact]
    public void A_parameter_named_config_or_accelerator_builds_and_runs()
    {
        DifferentialKernel.AssertSameOnBoth(Kernel("o[t] = t;", ", int config, int accelerator"));
    }

    [Fact]
    public void Locals_named_like_cuda_functions_and_cpp_keywords_build()
    {
        DifferentialKernel.AssertSameOnBoth(Kernel("float expf = 0.5f * t; int delete = 2; int atomicAdd = 3; o[t] = (long)(MathF.Exp(expf) * 1000f) + delete + atomicAdd;"));
    }

    [Fact]
    public void A_local_named_like_a_shuffle_temporary_is_refused_at_build()
    {
        // The host copy hoists shuffles into __shfl<N> temporaries: such a local is refused, not renamed.
        DifferentialKernel.GeneratorErrors(Kernel("int __shfl0 = t * 2; int s = ctx.ShuffleXor(__shfl0, 1); o[t] = s * 100 + __shfl0;"))
            .Should().Contain("IOCT0030");
    }

    [Fact]
    public void A_shuffle_of_a_local_declared_in_the_same_statement_is_refused_at_build()
    {
        // The host copy hoists the shuffle above the declaration, before its operand exists: refused.
        DifferentialKernel.GeneratorErrors(Kernel("int a = t * 3, b = ctx.ShuffleDown(a, 1); o[t] = a * 1000 + b;"))
            .Should().Contain("IOCT0018");
    }

    [Fact]
    public void A_view_next_to_a_parameter_named_like_its_length_builds()
    {
        DifferentialKernel.AssertSameOnBoth(Kernel("o[t] = x.Length * 1000 + x_length;", ", int x_length"));
    }

    [Fact]
    public void Same_class_name_in_two_namespaces_gives_two_kernels()
    {
        string source = """
            namespace IlgpuOct.RegressA { public static partial class Same { [Kernel] public static void K(KernelContext ctx, View<long> o, View<int> x) { o[ctx.ThreadIdx.X] = 1; } } }
            namespace IlgpuOct.RegressB { public static partial class Same { [Kernel] public static void K(KernelContext ctx, View<long> o, View<int> x) { o[ctx.ThreadIdx.X] = 2; } } }
            """;
        var build = KernelSourceBuild.Run(source, "RegressSame" + Guid.NewGuid().ToString("N"));
        var assembly = build.Load();
        var a = (KernelDefinition)assembly.GetType("IlgpuOct.RegressA.Same+KKernel")!.GetProperty("Definition")!.GetValue(null)!;
        var b = (KernelDefinition)assembly.GetType("IlgpuOct.RegressB.Same+KKernel")!.GetProperty("Definition")!.GetValue(null)!;
        a.Name.Should().NotBe(b.Name, "the registry is keyed by name");
        a.EntryPoint.Should().NotBe(b.EntryPoint);
        DifferentialKernel.AssertSameOnBoth(source, type: "IlgpuOct.RegressA.Same")[0].Should().Be(1);
        DifferentialKernel.AssertSameOnBoth(source, type: "IlgpuOct.RegressB.Same")[0].Should().Be(2);
    }
}
