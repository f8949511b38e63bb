using FluentAssertions;
using IlgpuOct.Kernels;
using Xunit;

namespace IlgpuOct.Tests.Generator;

/// <summary>The CUDA C the generator writes for each accepted construct, and that the generated C# compiles cleanly.</summary>
public sealed class GeneratorCudaTests
{
    private static GeneratorRun Compile(string body, string parameters = ", View<float> x, View<float> y, int n", string extra = "")
    {
        var run = GeneratorHarness.Run($$"""
            namespace Demo;
            public static partial class K
            {
                {{extra}}
                [Kernel]
                public static void Run(KernelContext ctx{{parameters}})
                {
            {{body}}
                }
            }
            """);
        run.GeneratorDiagnostics.Should().BeEmpty();
        run.CompilationProblems.Should().BeEmpty();
        return run;
    }

    private static string Cuda(string body, string parameters = ", View<float> x, View<float> y, int n", string extra = "") =>
        Compile(body, parameters, extra).Cuda("Demo.K", "Run");

    [Fact]
    public void Entry_point_and_parameters_follow_the_naming_rules()
    {
        var run = Compile("y[0] = x[0];", ", View<float> x, View<float> y, float a, double d, int n, uint u, long l, bool b, View<int> iv, View<byte> bv, View<double> dv, View<uint> uv, View<long> lv");
        string cuda = run.Cuda("Demo.K", "Run");
        cuda.Should().Contain("extern \"C\" __global__ void ioct_Demo_K_Run(float* x, int x_length, float* y, int y_length, float a, double d, int n, unsigned int u, long long l, bool b, int* iv, int iv_length, unsigned char* bv, int bv_length, double* dv, int dv_length, unsigned int* uv, int uv_length, long long* lv, int lv_length)");
        run.Field("Demo.K", "Run", "CudaSourceSha256").Should().Be(global::IlgpuOct.Kernels.Generator.KernelEmitter.Sha256Hex(cuda));
        cuda.Should().NotContain("#include");
    }

    [Fact]
    public void Indices_and_dimensions_map_to_cuda_builtins_as_signed_ints()
    {
        string cuda = Cuda("""
            int a = ctx.ThreadIdx.X + ctx.ThreadIdx.Y + ctx.ThreadIdx.Z;
            int b = ctx.BlockIdx.X + ctx.BlockDim.Y + ctx.GridDim.Z;
            int c = ctx.GlobalX + ctx.GlobalY + ctx.GlobalZ + ctx.GridStrideX;
            int d = ctx.LinearThreadIdx + ctx.LaneIdx + ctx.WarpIdx + KernelContext.WarpSize;
            y[0] = a + b + c + d + x.Length;
            """);
        cuda.Should().Contain("int a = ((((int)threadIdx.x) + ((int)threadIdx.y)) + ((int)threadIdx.z));");
        cuda.Should().Contain("int b = ((((int)blockIdx.x) + ((int)blockDim.y)) + ((int)gridDim.z));");
        cuda.Should().Contain("int c = (((ioct_global_x() + ioct_global_y()) + ioct_global_z()) + ioct_grid_stride_x());");
        cuda.Should().Contain("int d = (((ioct_linear_thread_idx() + (ioct_linear_thread_idx() & 31)) + (ioct_linear_thread_idx() >> 5)) + 32);");
        cuda.Should().Contain("y[0] = ((float)((((a + b) + c) + d) + x_length));");
    }

    [Fact]
    public void Literals_keep_exact_round_trip_text_and_constants_are_inlined()
    {
        string cuda = Cuda("""
            const int Local = 7;
            float v = x[0];
            double w = v;
            float a = v * 0.1f + 1f + 1e-7f + 3.4028235E+38f + 16777216f;
            double b = w * 0.1 + 1.0 / 3.0;
            long c = n + 5000000000L;
            uint d = (uint)n + 4000000000u;
            float e = v + float.MaxValue + float.Epsilon + float.NegativeInfinity;
            int f = n + int.MaxValue + int.MinValue + Local + Width;
            y[0] = a + (float)b + c + d + e + f;
            """, extra: "private const int Width = 12;");
        cuda.Should().Contain("float a = (((((v * 0.1f) + 1.0f) + 1E-07f) + 3.4028235E+38f) + 16777216.0f);");
        cuda.Should().Contain("double b = ((w * 0.1) + 0.3333333333333333);", "constant sub-expressions are folded by C#, exactly");
        cuda.Should().Contain("long long c = (((long long)n) + 5000000000LL);");
        cuda.Should().Contain("unsigned int d = (((unsigned int)n) + 4000000000u);");
        cuda.Should().Contain("float e = (((v + 3.4028235E+38f) + 1E-45f) + __int_as_float((int)0xff800000));");
        cuda.Should().Contain("int f = ((((n + 2147483647) + (-2147483647 - 1)) + 7) + 12);");
        cuda.Should().NotContain("Local").And.NotContain("Width");
    }

    [Fact]
    public void Operators_control_flow_and_casts_translate_one_to_one()
    {
        string cuda = Cuda("""
            int i = ctx.GlobalX;
            if (i >= n) { return; }
            int acc = 0;
            for (int k = 0, m = 1; k < n && m > 0; k++, m <<= 1)
            {
                if (k % 3 == 0) continue;
                else if (k > 100) break;
                else acc += k ^ (m | 1) & ~k;
            }
            int w = 0;
            while (w < 4) { w++; }
            do { --w; } while (w > 0);
            acc -= i > 2 ? (int)x[i] : (int)(x[i] * 2.5f);
            bool flag = !(acc == 1) || acc != 2;
            y[i] = flag ? (float)acc / 2 : -x[i];
            y[i] *= 2;
            y[i] %= 1.5f;
            y[0] = x[i] % 3f + (float)((double)x[i] % 2.0) + (float)(i % 7);
            """);
        cuda.Should().Contain("if (i >= n)");
        cuda.Should().Contain("return;");
        cuda.Should().Contain("for (int k = 0, m = 1; (k < n) && (m > 0); k++, m <<= 1)");
        cuda.Should().Contain("if ((k % 3) == 0)");
        cuda.Should().Contain("continue;");
        cuda.Should().Contain("else if (k > 100)");
        cuda.Should().Contain("break;");
        cuda.Should().Contain("acc += (k ^ ((m | 1) & (~k)));");
        cuda.Should().Contain("while (w < 4)");
        cuda.Should().Contain("do\n");
        cuda.Should().Contain("--w;");
        cuda.Should().Contain("while (w > 0);");
        cuda.Should().Contain("acc -= ((i > 2) ? __float2int_rz(x[i]) : __float2int_rz((x[i] * 2.5f)));", "float to int saturates as in .NET 9+");
        cuda.Should().Contain("bool flag = ((!(acc == 1)) || (acc != 2));");
        cuda.Should().Contain("y[i] = (flag ? (((float)acc) / 2.0f) : (-x[i]));");
        cuda.Should().Contain("y[i] *= 2.0f;");
        cuda.Should().Contain("ioct_fmod_assign(y[i], 1.5f);", "C has no % on floating point, and the target is evaluated once");
        cuda.Should().Contain("y[0] = ((fmodf(x[i], 3.0f) + ((float)(fmod(((double)x[i]), 2.0)))) + ((float)(i % 7)));");
    }

    [Fact]
    public void Implicit_conversions_become_explicit_casts_so_c_promotion_rules_cannot_differ()
    {
        // C# promotes uint + int to long; C would compute it in unsigned int.
        string cuda = Cuda("""
            uint u = 3u;
            long l = u + n;
            y[0] = l;
            """);
        cuda.Should().Contain("long long l = (((long long)u) + ((long long)n));");
        cuda.Should().Contain("y[0] = ((float)l);");
    }

    [Fact]
    public void Shared_memory_barriers_and_atomics()
    {
        var run = Compile("""
            var tile = ctx.Shared<float>(Size * 2);
            var counts = ctx.Shared<int>(16);
            var dyn = ctx.DynamicShared<float>();
            int t = ctx.ThreadIdx.X;
            tile[t] = x[t];
            ctx.Barrier();
            Atomic.Add(ref y[0], tile[tile.Length - 1 - t]);
            Atomic.Max(ref y[1], tile[t]);
            Atomic.Min(ref y[2], dyn[dyn.Length - 1]);
            Atomic.Add(ref counts[0], 1);
            Atomic.Max(ref counts[1], t);
            Atomic.Min(ref counts[2], t);
            int old = Atomic.CompareExchange(ref counts[3], 0, t);
            float prev = Atomic.Exchange(ref y[3], 1f);
            float cas = Atomic.CompareExchange(ref y[4], 0f, prev);
            Atomic.Exchange(ref counts[4], old);
            y[5] = cas;
            """, extra: "private const int Size = 64;");
        string cuda = run.Cuda("Demo.K", "Run");
        cuda.Should().Contain("__shared__ float tile[128];");
        cuda.Should().Contain("__shared__ int counts[16];");
        cuda.Should().Contain("float* dyn = (float*)ioct_dynamic_shared;");
        cuda.Should().Contain("const int dyn_length = (int)(ioct_dynamic_shared_bytes() / sizeof(float));");
        cuda.Should().Contain("__syncthreads();");
        cuda.Should().Contain("atomicAdd(&y[0], tile[((128 - 1) - t)]);");
        cuda.Should().Contain("ioct_atomic_max_f32(&y[1], tile[t]);");
        cuda.Should().Contain("ioct_atomic_min_f32(&y[2], dyn[(dyn_length - 1)]);");
        cuda.Should().Contain("atomicAdd(&counts[0], 1);");
        cuda.Should().Contain("atomicMax(&counts[1], t);");
        cuda.Should().Contain("atomicMin(&counts[2], t);");
        cuda.Should().Contain("int old = atomicCAS(&counts[3], 0, t);");
        cuda.Should().Contain("float prev = atomicExch(&y[3], 1.0f);");
        cuda.Should().Contain("float cas = ioct_atomic_cas_f32(&y[4], 0.0f, prev);");
        run.Field("Demo.K", "Run", "CudaSource").Should().NotBeNull();
        var definitionUsesBarriers = run.GeneratedText("K.Run").Contains("usesBarriers: true", StringComparison.Ordinal);
        definitionUsesBarriers.Should().BeTrue();
        run.GeneratedText("K.Run").Should().Contain("staticSharedBytes: 576,");
    }

    [Fact]
    public void Shuffles_map_to_sync_intrinsics_with_a_full_mask()
    {
        string cuda = Cuda("""
            float v = x[ctx.GlobalX];
            v += ctx.ShuffleDown(v, 16);
            float a = ctx.ShuffleUp(v, 1);
            int b = ctx.ShuffleXor(ctx.LaneIdx, 5);
            double c = ctx.Shuffle(1.5, 0);
            y[ctx.GlobalX] = v + a + b + (float)c;
            """);
        cuda.Should().Contain("v += __shfl_down_sync(0xffffffffu, v, 16);");
        cuda.Should().Contain("float a = __shfl_up_sync(0xffffffffu, v, 1);");
        cuda.Should().Contain("int b = __shfl_xor_sync(0xffffffffu, (ioct_linear_thread_idx() & 31), 5);");
        cuda.Should().Contain("double c = __shfl_sync(0xffffffffu, 1.5, 0);");
    }

    [Fact]
    public void Math_functions_map_to_cuda_functions_and_prelude_helpers()
    {
        string cuda = Cuda("""
            float v = x[0];
            float a = MathF.Exp(v) + MathF.Log(v) + MathF.Sqrt(v) + MathF.Tanh(v) + MathF.Abs(v) + MathF.Floor(v) + MathF.Ceiling(v);
            float b = MathF.Max(v, 0f) + MathF.Min(v, 1f) + MathF.Pow(v, 2f) + MathF.FusedMultiplyAdd(v, v, v) + MathF.Sin(v) + MathF.Cos(v) + MathF.Round(v);
            double d = Math.Exp(1.0) + Math.Sqrt(2.0) + Math.Max(1.0, d0) + Math.Log(3.0);
            int i = Math.Min(n, 3) + Math.Max(n, 4) + Math.Abs(n);
            float r = KernelMath.Rsqrt(v) + KernelMath.IntAsFloat(KernelMath.FloatAsInt(v));
            bool q = float.IsNaN(v) || float.IsInfinity(v);
            y[0] = a + b + (float)d + i + r + (q ? 1f : 0f);
            """, ", View<float> x, View<float> y, int n, double d0");
        cuda.Should().Contain("expf(v)").And.Contain("logf(v)").And.Contain("sqrtf(v)").And.Contain("tanhf(v)").And.Contain("fabsf(v)")
            .And.Contain("floorf(v)").And.Contain("ceilf(v)").And.Contain("ioct_max(v, 0.0f)").And.Contain("ioct_min(v, 1.0f)")
            .And.Contain("powf(v, 2.0f)").And.Contain("fmaf(v, v, v)").And.Contain("sinf(v)").And.Contain("cosf(v)").And.Contain("rintf(v)");
        cuda.Should().Contain("exp(1.0)").And.Contain("sqrt(2.0)").And.Contain("ioct_max(1.0, d0)").And.Contain("log(3.0)");
        cuda.Should().Contain("int i = ((ioct_min(n, 3) + ioct_max(n, 4)) + ioct_abs(n));");
        cuda.Should().Contain("rsqrtf(v)").And.Contain("__int_as_float(__float_as_int(v))");
        cuda.Should().Contain("bool q = (ioct_isnan(v) || ioct_isinf(v));");
    }

    [Fact]
    public void Helpers_are_emitted_once_callees_first_and_views_pass_with_their_length()
    {
        var run = Compile("""
            int i = ctx.GlobalX;
            y[i] = Twice(Square(x[i])) + Last(x) + Square(1f);
            """, extra: """
            private static float Square(float v) => v * v;
            private static float Twice(float v) { return Square(v) + Square(v); }
            private static float Last(View<float> v)
            {
                if (v.Length == 0) { return 0f; }
                return v[v.Length - 1];
            }
            """);
        string cuda = run.Cuda("Demo.K", "Run");
        cuda.Should().Contain("static __device__ float ioct_fn_K_Square(float v)");
        cuda.Should().Contain("return (v * v);");
        cuda.Should().Contain("static __device__ float ioct_fn_K_Last(float* v, int v_length)");
        cuda.Should().Contain("return v[(v_length - 1)];");
        cuda.Should().Contain("y[i] = ((ioct_fn_K_Twice(ioct_fn_K_Square(x[i])) + ioct_fn_K_Last(x, x_length)) + ioct_fn_K_Square(1.0f));");
        int square = cuda.IndexOf("ioct_fn_K_Square(float v)", StringComparison.Ordinal);
        int twice = cuda.IndexOf("ioct_fn_K_Twice(float v)", StringComparison.Ordinal);
        square.Should().BeLessThan(twice, "a callee is defined before its caller");
        cuda.Split("static __device__ float ioct_fn_K_Square(").Length.Should().Be(2, "each helper is emitted once");
    }

    [Fact]
    public void Stackalloc_spans_become_zeroed_local_arrays_and_iterator_arrays()
    {
        var run = Compile("""
            Span<float> acc = stackalloc float[Taps];
            for (int k = 0; k < acc.Length; k++) { acc[k] = x[k]; }
            ctx.Barrier();
            y[0] = acc[Taps - 1];
            """, extra: "private const int Taps = 5;");
        string cuda = run.Cuda("Demo.K", "Run");
        cuda.Should().Contain("float acc[5] = {0};");
        cuda.Should().Contain("for (int k = 0; k < 5; k++)");
        run.GeneratedText("K.Run").Should().Contain("float[] acc = new float[Taps];");
    }

    [Fact]
    public void Launcher_has_the_kernel_parameters_and_packs_one_slot_per_cuda_parameter()
    {
        var run = Compile("y[0] = x[0] * a;", ", View<float> x, View<float> y, float a, long count");
        string text = run.GeneratedText("K.Run");
        text.Should().StartWith("// <auto-generated/>\n#nullable enable");
        text.Should().Contain("public static class RunKernel");
        text.Should().Contain("public static void Launch(global::IlgpuOct.Kernels.Accelerator accelerator, global::IlgpuOct.Kernels.LaunchConfig config, global::IlgpuOct.Kernels.View<float> x, global::IlgpuOct.Kernels.View<float> y, float a, long count)");
        text.Should().Contain("accelerator.LaunchOnHost(Definition, config, (global::IlgpuOct.Kernels.KernelContext __ctx) => RunChecked(__ctx, x, y, a, count));");
        text.Should().Contain("stackalloc ulong[6]");
        text.Should().Contain("__slots[0] = x.DevicePointer;").And.Contain("__slots[1] = (ulong)(uint)x.Length;")
            .And.Contain("__slots[4] = global::IlgpuOct.Kernels.KernelArgs.Pack(a);").And.Contain("__slots[5] = global::IlgpuOct.Kernels.KernelArgs.Pack(count);");
        text.Should().Contain("accelerator.LaunchCompiled(Definition, config, __slots.Slice(0, 6));");
        run.GeneratedText("IlgpuOctKernelRegistration").Should().Contain("KernelRegistry.Register(").And.Contain("global::Demo.K.RunKernel.Definition");
    }

    [Fact]
    public void Private_kernels_get_an_internal_launcher_and_nested_partial_types_work()
    {
        var run = GeneratorHarness.Run("""
            namespace Demo.Deep;
            public partial class Outer
            {
                internal partial struct Inner
                {
                    [Kernel]
                    private static void Fill(KernelContext ctx, View<int> v) { v[ctx.GlobalX] = 1; }
                }
            }
            """);
        run.GeneratorDiagnostics.Should().BeEmpty();
        run.CompilationProblems.Should().BeEmpty();
        string text = run.GeneratedText("Outer.Inner.Fill");
        text.Should().Contain("internal static class FillKernel");
        text.Should().Contain("partial class Outer").And.Contain("partial struct Inner");
        run.Cuda("Demo.Deep.Outer+Inner", "Fill").Should().Contain("void ioct_Demo_Deep_Outer_Inner_Fill(int* v, int v_length)");
        text.Should().Contain("\"Demo.Deep.Outer.Inner.Fill\"");
    }
}
