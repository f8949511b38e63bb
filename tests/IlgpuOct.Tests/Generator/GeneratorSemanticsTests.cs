using FluentAssertions;
using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Cuda;
using IlgpuOct.Tests.Cuda;
using Xunit;

namespace IlgpuOct.Tests.Generator;

/// <summary>
/// Regression kernels for translations that compiled but meant something else in CUDA C (issue 7): names
/// that aliased generated or reserved ones, evaluation order, shift counts, conversions, NaN bits and
/// namespaces. Each is checked as text here and compiled by NVRTC in <see cref="Every_regression_kernel_compiles_with_nvrtc"/>.
/// </summary>
public sealed class GeneratorSemanticsTests
{
    private const string Parameters = ", View<float> x, View<float> y, int n";

    /// <summary>Name, kernel body, parameters, extra members.</summary>
    private static readonly (string Name, string Body, string Parameters, string Extra)[] Kernels =
    {
        ("ShadowedMin", "float min = x[0]; float min_ = x[1]; y[0] = MathF.Min(min, min_);", Parameters, ""),
        ("LengthNames", "int x_length = 5; y[0] = x.Length + x_length;", Parameters, ""),
        ("DynamicLength", "var d = ctx.DynamicShared<float>(); int d_length = 3; if (ctx.ThreadIdx.X == 0) { d[0] = d.Length + d_length; y[0] = d[0]; }", Parameters, ""),
        ("CudaNames", "float expf = x[0]; float @delete = 1f; int @int = 2; int @new = 3; float float2 = 4f; y[0] = MathF.Exp(expf) + @delete + @int + @new + float2;", Parameters, ""),
        ("GeneratedNames", "int ioct_t0 = 1; int ioct_fn_K_Twice = 2; y[0] = ioct_t0 + Twice(ioct_fn_K_Twice);", Parameters, "private static int Twice(int v) => 2 * v;"),
        ("UnderscoreNames", "var s = ctx.Shared<float>(64); int __syncthreads = 1; int __shfl0 = 2; s[ctx.ThreadIdx.X] = __syncthreads + __shfl0; ctx.Barrier(); y[0] = s[0];", Parameters, ""),
        ("UncheckedTop", "unchecked { var s = ctx.Shared<int>(64); s[ctx.ThreadIdx.X] = n * 3; ctx.Barrier(); y[0] = s[0] + (float)Math.CopySign(1.0, (double)x[0]); }", Parameters, ""),
        ("LengthParameter", "y[0] = x.Length + x_length;", ", View<float> x, View<float> y, int x_length", ""),
        ("LauncherNames", "y[0] = config[0] + accelerator;", ", View<float> config, View<float> y, int accelerator", ""),
        ("FmodTarget", "int k = n; y[k++] %= 2f; y[k] = k;", Parameters, ""),
        ("AssignOrder", "int i = n; y[i++] = i;", Parameters, ""),
        ("CompoundOrder", "int i = n; y[i++] += i;", Parameters, ""),
        ("ArgumentOrder", "int i = n; y[0] = MathF.Max(i++, i); int j = i++ + i; y[1] = j;", Parameters, ""),
        ("ShortCircuitOrder", "int i = n; bool b = i++ > 0 && i > 1; y[0] = b ? i : -i;", Parameters, ""),
        ("HelperReturnOrder", "y[0] = Next(n);", Parameters, "private static int Next(int i) { return i++ + i; }"),
        ("Shifts", "int s = n; long w = n; w <<= s; int t = n; t >>= s; y[0] = (1 << s) + (n >> s) + (1L << s) + (n << 3) + (n << 33) + w + t;", Parameters, ""),
        ("FloatToInteger", "byte b = (byte)(x[0] * 255f); int i = (int)x[1]; uint u = (uint)x[2]; long l = (long)(double)x[3]; ulong w = (ulong)x[4]; y[0] = b; y[1] = i; y[2] = u; y[3] = l; y[4] = w;", Parameters, ""),
        ("NaNBits", "y[0] = float.NaN; double d = double.NaN; y[1] = (float)d;", Parameters, ""),
        ("RegisterArray", "Span<float> acc = stackalloc float[8]; for (int r = 0; r < 4; r++) { Scale(acc, x[r], r); } for (int j = 0; j < 8; j++) { y[j] = acc[j]; } for (int k = 0; k < n; k++) { y[8] += acc[k & 7]; }", Parameters,
            "private static void Scale(Span<float> acc, float v, int r) { for (int j = 0; j < 8; j++) { acc[j] += v * (j + r); } }"),
    };

    private static string Source((string Name, string Body, string Parameters, string Extra) k) => $$"""
        namespace Demo;
        public static partial class K
        {
            {{k.Extra}}
            [Kernel]
            public static void {{k.Name}}(KernelContext ctx{{k.Parameters}})
            {
                {{k.Body}}
            }
        }
        """;

    private static readonly Lazy<Dictionary<string, GeneratorRun>> Runs = new(() =>
        Kernels.ToDictionary(k => k.Name, k => GeneratorHarness.Run(Source(k))));

    private static string Cuda(string name)
    {
        var run = Runs.Value[name];
        run.GeneratorDiagnostics.Should().BeEmpty(name);
        run.CompilationProblems.Should().BeEmpty(name);
        return run.Cuda("Demo.K", name);
    }

    [Fact]
    public void A_local_named_like_an_escaped_name_gets_its_own_spelling()
    {
        string cuda = Cuda("ShadowedMin");
        cuda.Should().Contain("float min_ = x[0];").And.Contain("float min__ = x[1];").And.Contain("y[0] = ioct_min(min_, min__);");
    }

    [Fact]
    public void Locals_and_parameters_named_like_length_companions_do_not_alias_them()
    {
        Cuda("LengthNames").Should().Contain("int x_length_ = 5;").And.Contain("y[0] = ((float)(x_length + x_length_));");
        Cuda("DynamicLength").Should().Contain("const int d_length = (int)(ioct_dynamic_shared_bytes() / sizeof(float));")
            .And.Contain("int d_length_ = 3;").And.Contain("d[0] = ((float)(d_length + d_length_));");
        Cuda("LengthParameter").Should().Contain("(float* x, int x_length, float* y, int y_length, int x_length_)")
            .And.Contain("y[0] = ((float)(x_length + x_length_));");
    }

    [Fact]
    public void Locals_named_like_cuda_functions_or_cpp_keywords_are_escaped()
    {
        string cuda = Cuda("CudaNames");
        cuda.Should().Contain("float expf_ = x[0];").And.Contain("float delete_ = 1.0f;").And.Contain("int int_ = 2;")
            .And.Contain("int new_ = 3;").And.Contain("float float2_ = 4.0f;").And.Contain("expf(expf_)");
        string generated = Cuda("GeneratedNames");
        generated.Should().Contain("int ioct_t0_ = 1;").And.Contain("int ioct_fn_K_Twice_ = 2;").And.Contain("ioct_fn_K_Twice(ioct_fn_K_Twice_)");
    }

    [Fact]
    public void Double_underscore_names_are_escaped_and_an_unchecked_block_keeps_the_top_level()
    {
        Cuda("UnderscoreNames").Should().Contain("int __syncthreads_ = 1;").And.Contain("int __shfl0_ = 2;").And.Contain("__syncthreads();");
        Cuda("UncheckedTop").Should().Contain("__shared__ int s[64];").And.Contain("copysign(1.0, ((double)x[0]))");
    }

    [Fact]
    public void Kernel_parameters_named_config_or_accelerator_keep_the_launcher_compiling()
    {
        Cuda("LauncherNames").Should().Contain("(float* config, int config_length, float* y, int y_length, int accelerator)");
        Runs.Value["LauncherNames"].GeneratedText("K.LauncherNames").Should()
            .Contain("Launch(global::IlgpuOct.Kernels.Accelerator accelerator_, global::IlgpuOct.Kernels.LaunchConfig config_, ");
    }

    [Fact]
    public void Floating_point_remainder_assignment_evaluates_its_target_once()
    {
        string cuda = Cuda("FmodTarget");
        cuda.Should().Contain("ioct_fmod_assign(y[(k++)], 2.0f);").And.NotContain("fmodf(y[");
        cuda.Should().Contain("float ioct_fmod_assign(float& target, float divisor)");
    }

    [Fact]
    public void Side_effects_on_a_variable_read_elsewhere_are_sequenced_left_to_right()
    {
        // o[i++] = i: C# takes the index, increments i, then reads the new i.
        Cuda("AssignOrder").Should().Contain(
            "    { int ioct_t0 = i; int ioct_t1 = ioct_t0 + 1; i = ioct_t1; float ioct_t2 = ((float)i); y[ioct_t0] = ioct_t2; }\n");
        // o[i++] += i: the old element is read before the right-hand side.
        Cuda("CompoundOrder").Should().Contain(
            "    { int ioct_t0 = i; int ioct_t1 = ioct_t0 + 1; i = ioct_t1; float ioct_t2 = y[ioct_t0]; float ioct_t3 = ((float)i); "
            + "float ioct_t4 = (ioct_t2 + ioct_t3); y[ioct_t0] = ioct_t4; }\n");
    }

    [Fact]
    public void Arguments_operands_short_circuits_and_returns_are_sequenced_too()
    {
        // MathF.Max(i++, i): the first argument is the old i, the second the new one.
        Cuda("ArgumentOrder").Should().Contain(
            "    { int ioct_t0 = i; int ioct_t1 = ioct_t0 + 1; i = ioct_t1; float ioct_t2 = ((float)ioct_t0); float ioct_t3 = ((float)i); "
            + "float ioct_t4 = ioct_max(ioct_t2, ioct_t3); y[0] = ioct_t4; }\n")
            .And.Contain("    int j; { int ioct_t5 = i; int ioct_t6 = ioct_t5 + 1; i = ioct_t6; int ioct_t7 = i; int ioct_t8 = (ioct_t5 + ioct_t7); j = ioct_t8; }\n");
        // The right operand of && runs only when the left is true, after the left's side effect.
        Cuda("ShortCircuitOrder").Should().Contain(
            "    bool b; { int ioct_t1 = i; int ioct_t2 = ioct_t1 + 1; i = ioct_t2; bool ioct_t3 = (ioct_t1 > 0); bool ioct_t0 = ioct_t3; "
            + "if (ioct_t0) { int ioct_t4 = i; bool ioct_t5 = (ioct_t4 > 1); ioct_t0 = ioct_t5; } b = ioct_t0; }\n");
        Cuda("HelperReturnOrder").Should().Contain(
            "    { int ioct_t0 = i; int ioct_t1 = ioct_t0 + 1; i = ioct_t1; int ioct_t2 = i; int ioct_t3 = (ioct_t0 + ioct_t2); return ioct_t3; }\n");
    }

    [Fact]
    public void Shift_counts_are_masked_as_in_csharp()
    {
        string cuda = Cuda("Shifts");
        cuda.Should().Contain("(1 << (s & 31))").And.Contain("(n >> (s & 31))").And.Contain("(1LL << (s & 63))")
            .And.Contain("(n << 3)").And.Contain("(n << 1)").And.Contain("w <<= (s & 63);").And.Contain("t >>= (s & 31);");
    }

    [Fact]
    public void Float_to_integer_conversions_saturate_and_reach_byte_through_int()
    {
        string cuda = Cuda("FloatToInteger");
        cuda.Should().Contain("unsigned char b = ((unsigned char)__float2int_rz((x[0] * 255.0f)));")
            .And.Contain("int i = __float2int_rz(x[1]);").And.Contain("unsigned int u = __float2uint_rz(x[2]);")
            .And.Contain("long long l = __double2ll_rz(((double)x[3]));").And.Contain("unsigned long long w = __float2ull_rz(x[4]);");
    }

    [Fact]
    public void NaN_constants_keep_the_dotnet_bits()
    {
        string cuda = Cuda("NaNBits");
        int floatBits = BitConverter.SingleToInt32Bits(float.NaN);
        long doubleBits = BitConverter.DoubleToInt64Bits(double.NaN);
        cuda.Should().Contain($"y[0] = __int_as_float((int)0x{floatBits:x8}u);")
            .And.Contain($"double d = __longlong_as_double((long long)0x{doubleBits:x16}ULL);");
    }

    [Fact]
    public void Register_arrays_pass_to_helpers_as_pointers_and_constant_loops_over_them_unroll()
    {
        string cuda = Cuda("RegisterArray");
        cuda.Should().Contain("static __device__ __forceinline__ void ioct_fn_K_Scale(float* acc, int acc_length, float v, int r)")
            .And.Contain("_Pragma(\"unroll\") for (int j = 0; j < 8; j++)")
            .And.Contain("float acc[8] = {0};").And.Contain("ioct_fn_K_Scale(acc, 8, x[r], r);")
            .And.Contain("    for (int r = 0; r < 4; r++)", "the loop only passes the array on; the helper's own loop unrolls");
        cuda.Should().Contain("    for (int k = 0; k < n; k++)", "a loop without a constant trip count is left to the compiler");
    }

    /// <summary>Inputs chosen to hit the edges the fixes are about: out-of-range and NaN conversions, shift counts over 31.</summary>
    private static readonly float[] Inputs = [-0.6f, 3e9f, -5f, 1e19f, float.NaN, 1.5f, -2.25f, 7f];

    [Fact]
    public void Regression_kernels_compute_the_same_bits_on_cpu_kernels_and_cuda_host()
    {
        using var cudaHost = IlgpuOct.Kernels.CudaHost.CudaHostAccelerator.Open(sanitize: false, cache: new KernelCache(enabled: false), maxParallelism: 1);
        using var cpuKernels = new HostAccelerator(AcceleratorKind.CpuKernels, maxParallelism: 1);
        foreach (var k in Kernels)
        {
            Cuda(k.Name);
            // Nested in a private class, the kernel is not registered with KernelRegistry when the assembly loads.
            var run = GeneratorHarness.Run(Source(k).Replace("public static partial class K", "public static partial class Unregistered\n{\nprivate static partial class K") + "}\n");
            run.GeneratorDiagnostics.Should().BeEmpty(k.Name);
            var assembly = run.Load();
            var launch = assembly.GetType("Demo.Unregistered+K+" + k.Name + "Kernel")!.GetMethod("Launch")!;
            float[] expected = Execute(cpuKernels, launch);
            float[] actual = Execute(cudaHost, launch);
            for (int i = 0; i < expected.Length; i++)
            {
                BitConverter.SingleToInt32Bits(actual[i]).Should().Be(BitConverter.SingleToInt32Bits(expected[i]),
                    $"{k.Name}: y[{i}] is {expected[i]} on cpu-kernels and {actual[i]} on cuda-host");
            }
        }
    }

    /// <summary>One block of 32 threads (every thread computes the same values), 35 as the int parameter, 256 B of dynamic shared memory.</summary>
    private static float[] Execute(Accelerator accelerator, System.Reflection.MethodInfo launch)
    {
        float[] x = new float[64];
        Inputs.CopyTo(x, 0);
        using var first = accelerator.Upload<float>(x);
        using var second = accelerator.Upload<float>(new float[64]);
        var config = new LaunchConfig(new Dim3(1), new Dim3(32), DynamicSharedBytes: 256);
        try
        {
            launch.Invoke(null, [accelerator, config, first.View, second.View, 35]);
        }
        catch (System.Reflection.TargetInvocationException e) when (e.InnerException is not null)
        {
            throw e.InnerException;
        }
        accelerator.Synchronize();
        return accelerator.Download(second.View);
    }

    [Fact]
    public void Kernels_of_one_class_name_in_two_namespaces_get_distinct_symbols_and_registry_names()
    {
        var run = GeneratorHarness.Run("""
            namespace Alpha { public static partial class K { [Kernel] public static void Run(KernelContext ctx, View<float> y) { y[0] = 1f; } } }
            namespace Beta { public static partial class K { [Kernel] public static void Run(KernelContext ctx, View<float> y) { y[0] = 2f; } } }
            """);
        run.GeneratorDiagnostics.Should().BeEmpty();
        run.CompilationProblems.Should().BeEmpty();
        run.Cuda("Alpha.K", "Run").Should().Contain("void ioct_Alpha_K_Run(");
        run.Cuda("Beta.K", "Run").Should().Contain("void ioct_Beta_K_Run(");
        var registration = run.GeneratedText("IlgpuOctKernelRegistration");
        registration.Should().Contain("global::Alpha.K.RunKernel.Definition").And.Contain("global::Beta.K.RunKernel.Definition");
        run.GeneratedText("K.Run.Alpha").Should().Contain("\"Alpha.K.Run\"");
        run.GeneratedText("K.Run.Beta").Should().Contain("\"Beta.K.Run\"");
    }

    [NvrtcFact]
    public void Every_regression_kernel_compiles_with_nvrtc()
    {
        var nvrtc = Nvrtc.Get();
        var target = nvrtc.ChooseTarget(90);
        foreach (var k in Kernels)
        {
            string cuda = Cuda(k.Name);
            var compile = () => nvrtc.Compile(cuda, "Demo.K." + k.Name, target);
            compile.Should().NotThrow(k.Name + ":\n" + cuda);
        }
    }

    private const string LineProbe = """
        namespace Demo;
        public static partial class K
        {
            [Kernel]
            public static void Lines(KernelContext ctx, View<float> x, View<float> y)
            {
                float a = x[0];

                float probeRoot = MathF.Sqrt(a);
                y[0] = Half(probeRoot);
            }

            private static float Half(float v) => v * 0.5f;
        }
        """;

    [Fact]
    public void Statements_and_signatures_carry_line_directives_to_the_csharp_source()
    {
        var run = GeneratorHarness.Run(LineProbe);
        run.GeneratorDiagnostics.Should().BeEmpty();
        string cuda = run.Cuda("Demo.K", "Lines");
        cuda.Should().Contain("#line 5 \"Kernels.cs\"\nextern \"C\" __global__ void ioct_Demo_K_Lines(");
        cuda.Should().Contain("{\n    float a = x[0];\n#line 9 \"Kernels.cs\"\n    float probeRoot = sqrtf(a);\n    y[0] = ioct_fn_K_Half(probeRoot);");
        cuda.Should().Contain("#line 13 \"Kernels.cs\"\nstatic __device__ float ioct_fn_K_Half(float v)");
    }

    [NvrtcFact]
    public void An_nvrtc_error_names_the_csharp_file_and_line()
    {
        var run = GeneratorHarness.Run(LineProbe);
        string cuda = run.Cuda("Demo.K", "Lines");
        var nvrtc = Nvrtc.Get();
        var target = nvrtc.ChooseTarget(90);
        // Break the translation of line 9 the way a bad translation would: a declaration that does not parse.
        var options = nvrtc.OptionsFor(target).Append("-DprobeRoot=probeRoot+").ToList();
        var compile = () => nvrtc.Compile(cuda, "Demo.K.Lines", target, options);
        var error = compile.Should().Throw<NvrtcCompileException>().Which;
        error.Log.Should().Contain("Kernels.cs(9)");
    }

}
