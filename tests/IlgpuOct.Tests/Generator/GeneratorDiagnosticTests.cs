using FluentAssertions;
using Microsoft.CodeAnalysis;
using Xunit;

namespace IlgpuOct.Tests.Generator;

/// <summary>Every construct outside the kernel subset is a compile error with a stable ID and a message that says what to do.</summary>
public sealed class GeneratorDiagnosticTests
{
    private static IReadOnlyList<Diagnostic> Diagnose(string source) => GeneratorHarness.Run("namespace Demo;\n" + source).GeneratorDiagnostics;

    private static string Kernel(string body, string extra = "", string parameters = ", View<float> x, View<float> y, int n") => $$"""
        public static partial class K
        {
            {{extra}}
            [Kernel]
            public static void Run(KernelContext ctx{{parameters}})
            {
                {{body}}
            }
        }
        """;

    private static void ShouldReport(string source, string id, string fragment)
    {
        var diagnostics = Diagnose(source);
        diagnostics.Should().Contain(d => d.Id == id, $"source:\n{source}\nreported: {string.Join("; ", diagnostics)}");
        var match = diagnostics.First(d => d.Id == id);
        match.Severity.Should().Be(DiagnosticSeverity.Error);
        match.GetMessage(System.Globalization.CultureInfo.InvariantCulture).Should().Contain(fragment);
        // Cached diagnostics carry file/span locations (external-file kind), not syntax-tree references.
        var span = match.Location.GetLineSpan();
        span.Path.Should().Be("Kernels.cs", "the error points at the offending code");
    }

    public static TheoryData<string, string, string> Cases => new()
    {
        { "public static class K { [Kernel] public static void Run(KernelContext ctx) { } }", "IOCT0001", "make K partial" },
        { "public partial class Outer { public class K { [Kernel] public static void Run(KernelContext ctx) { } } }", "IOCT0001", "make K partial" },
        { "public partial class K { [Kernel] public void Run(KernelContext ctx) { } }", "IOCT0002", "make it static" },
        { "public partial class K { [Kernel] public static void Run(View<float> x) { } }", "IOCT0003", "KernelContext as its first parameter" },
        { Kernel("", parameters: ", decimal d"), "IOCT0004", "Parameter 'd' of type 'decimal'" },
        { Kernel("", parameters: ", View<bool> flags"), "IOCT0004", "use View<T>" },
        { Kernel("", parameters: ", ref int r"), "IOCT0004", "passed by value" },
        { "public partial class K { [Kernel] public static int Run(KernelContext ctx) { return 0; } }", "IOCT0005", "returns 'int'" },
        { Kernel("float[] a = new float[4]; y[0] = a[0];"), "IOCT0006", "allocates" },
        { Kernel("var r = new Random(1); y[0] = 1f;"), "IOCT0006", "pass a View<T>" },
        { Kernel("char c = 'a'; y[0] = c;"), "IOCT0007", "string or char" },
        { Kernel("if (n < 0) { throw new InvalidOperationException(); }"), "IOCT0008", "no exceptions" },
        { Kernel("try { y[0] = 1f; } finally { y[1] = 2f; }"), "IOCT0008", "no exceptions" },
        { Kernel("Func<int, int> f = v => v + 1; y[0] = f(n);"), "IOCT0009", "static helper" },
        { Kernel("int Local(int v) => v; y[0] = Local(n);"), "IOCT0009", "static helper" },
        { Kernel("y[0] = Down(n);", "static int Down(int v) => v <= 0 ? 0 : Down(v - 1);"), "IOCT0010", "Down -> Down" },
        { Kernel("y[0] = A(n);", "static int A(int v) => v <= 0 ? 0 : B(v - 1); static int B(int v) => A(v);"), "IOCT0010", "A -> B -> A" },
        { Kernel("foreach (var v in new[] { 1, 2 }) { y[0] += v; }"), "IOCT0011", "for (int i = 0" },
        { Kernel("switch (n) { case 1: y[0] = 1f; break; }"), "IOCT0012", "if/else" },
        { Kernel("y[0] = n switch { 1 => 1f, _ => 0f };"), "IOCT0012", "?: operator" },
        { Kernel("again: y[0] += 1f; if (y[0] < 3f) goto again;"), "IOCT0013", "structured loops" },
        { Kernel("y[0] = MathF.Atan2(1f, x[0]);"), "IOCT0014", "neither a mapped intrinsic nor declared" },
        { Kernel("y[0] = x.GetHashCode();"), "IOCT0014", "instance method" },
        { Kernel("ref float r = ref y[0]; r = 1f;"), "IOCT0015", "ref view[i]" },
        { Kernel("Atomic.Add(ref y[0], Bump(ref n));", "static int Bump(ref int v) => v;"), "IOCT0015", "Atomic call" },
        { Kernel("var s = ctx.Shared<float>(n); s[0] = 1f;"), "IOCT0016", "compile-time constant" },
        { Kernel("if (n > 0) { var s = ctx.Shared<float>(32); s[0] = 1f; }"), "IOCT0016", "top level of the kernel body" },
        { Kernel("y[0] = n > 0 ? ctx.ShuffleDown(x[0], 1) : 0f;"), "IOCT0018", "assign it to a local first" },
        { Kernel("if (ctx.ShuffleXor(n, 1) > 0) { y[0] = 1f; }"), "IOCT0018", "loop/if header" },
        { Kernel("y[0] = ctx.ShuffleDown(ctx.ShuffleDown(x[0], 1), 2);"), "IOCT0018", "another shuffle" },
        { Kernel("int i = 0; y[i++] = ctx.ShuffleDown(x[i], 1);"), "IOCT0018", "other ++/--/assignments" },
        { Kernel("decimal d = 1.5m; y[0] = (float)d;"), "IOCT0019", "'decimal'" },
        { Kernel("Dim3 d = ctx.BlockDim; y[0] = d.X;"), "IOCT0019", "Dim3" },
        { Kernel("return 1;"), "IOCT0020", "write 'return;'" },
        { Kernel("y[0] = x[0] is > 0f ? 1f : 0f;"), "IOCT0021", "cannot be translated to CUDA C" },
        { "public partial class K<T> { [Kernel] public static void Run(KernelContext ctx) { } }", "IOCT0022", "one non-generic kernel" },
        { "public partial class K { [Kernel] public static void Run<T>(KernelContext ctx) { } }", "IOCT0022", "generic" },
        { Kernel("y[0] = Gain;", "private static readonly float Gain = 2f;"), "IOCT0023", "make it const" },
        { Kernel("y[0] = Counter;", "private static float Counter { get; set; }"), "IOCT0023", "not a compile-time constant" },
        { Kernel("Span<float> t = stackalloc float[n]; t[0] = 1f; y[0] = t[0];"), "IOCT0024", "stackalloc T[N]" },
        { Kernel("var c = ctx; y[0] = c.GlobalX;"), "IOCT0025", "KernelContext may only be used for its members" },
        { Kernel("var v = x; v[0] = 1f;"), "IOCT0026", "views can be indexed" },
        { Kernel("y[0] = x[^1];"), "IOCT0026", "views can be indexed" },
        { "public partial class K { [Kernel] public static void Run(KernelContext ctx, View<float> y) => y[0] = 1f; }", "IOCT0027", "no block body" },
        { "public partial class K { [Kernel] public static void Run(KernelContext ctx, View<float> y) { } [Kernel] public static void Run(KernelContext ctx, View<int> y) { } }", "IOCT0021", "give each kernel its own name" },
        { Kernel("var a = ctx.Shared<float>(8192); var b = ctx.Shared<double>(2049); a[0] = 1f; b[0] = 2.0; y[0] = a[0];"), "IOCT0028", "49160 bytes of static shared memory" },
        { Kernel("float a = x[0], b = ctx.ShuffleDown(a, 1); y[0] = b;"), "IOCT0018", "assign it to a local first" },
        { Kernel("int i = 0; if (y[i++] > i) { y[0] = 1f; }"), "IOCT0029", "move the ++/--/assignment/call into a separate statement" },
        { Kernel("int i = 0; while (i++ < x[i]) { y[0] += 1f; }"), "IOCT0029", "C++ does not evaluate left to right" },
        { Kernel("int i = 0; for (int j = 0; j < n; y[j] = j++) { i++; }"), "IOCT0029", "separate statement" },
        { Kernel("int __shfl0 = 1; float v = ctx.ShuffleDown(x[0], 1); y[0] = __shfl0 + v;"), "IOCT0030", "'__shfl0' is a name the generated C# uses" },
        { Kernel("y[0] = __slots;", parameters: ", View<float> y, int __slots"), "IOCT0030", "rename it" },
        { Kernel("var s = ctx.Shared<float>(32); if (ctx.ThreadIdx.X < 16) { ctx.Barrier(); } s[0] = 1f; y[0] = s[0];"), "IOCT0031", "ctx.ThreadIdx.X < 16" },
        { Kernel("int t = ctx.LinearThreadIdx; int half = t / 2; if (half > 3) { ctx.Barrier(); }"), "IOCT0031", "half > 3" },
        { Kernel("bool first = false; if (ctx.GlobalX == 0) { first = true; } if (first) { ctx.Barrier(); }"), "IOCT0031", "(first)" },
        { Kernel("for (int i = ctx.GlobalX; i < n; i += ctx.GridStrideX) { ctx.Barrier(); y[i] = 1f; }"), "IOCT0031", "i < n" },
        { Kernel("for (int k = 0; k < n; k++) { if (x[ctx.GlobalX] > 0f) { break; } ctx.Barrier(); }"), "IOCT0031", "x[ctx.GlobalX] > 0f" },
        { Kernel("if (ctx.WarpIdx == 0) { ctx.Barrier(); }"), "IOCT0031", "some threads of the block or warp may not reach it" },
        { Kernel("float v = x[0]; if (ctx.LaneIdx < 16) { v = ctx.ShuffleDown(v, 1); } y[0] = v;"), "IOCT0031", "ctx.LaneIdx < 16" },
        { Kernel("var a = ctx.DynamicShared<float>(); var b = ctx.DynamicShared<int>(); a[0] = b[0]; y[0] = a[0];"), "IOCT0032", "already takes it as float" },
        { Kernel("Span<float> acc = stackalloc float[3]; Span<float> a = stackalloc float[4]; Span<float> b = stackalloc float[2]; ctx.MmaTf32(acc, a, b); y[0] = acc[0];"), "IOCT0040", "'acc' is the acc fragment of ctx.MmaTf32" },
        { Kernel("Span<float> acc = stackalloc float[8]; Span<uint> a = stackalloc uint[4]; Span<uint> b = stackalloc uint[4]; ctx.MmaBf16(acc.Slice(4, 4), a, b); y[0] = acc[0];"), "IOCT0040", "stackalloc float[4]" },
        { Kernel("Span<float> acc = stackalloc float[4]; Span<uint> a = stackalloc uint[4]; Span<uint> b = stackalloc uint[4]; ctx.MmaBf16(acc, a, b); y[0] = acc[0];"), "IOCT0040", "Span<uint> b = stackalloc uint[2];" },
        { Kernel("Span<float> acc = stackalloc float[4]; Span<float> a = stackalloc float[4]; Span<float> b = stackalloc float[2]; if (ctx.LaneIdx < 16) { ctx.MmaTf32(acc, a, b); } y[0] = acc[0];"), "IOCT0031", "ctx.LaneIdx < 16" },
        { "public static partial class K { public static void Host() { [Kernel] static void Inner(KernelContext ctx, View<float> y) { y[0] = 1f; } } }", "IOCT0033", "Local function 'Inner' is marked [Kernel]" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Unsupported_construct_is_an_error_with_id_and_fix(string source, string id, string fragment) => ShouldReport(source, id, fragment);

    [Fact]
    public void Uniform_conditions_around_barriers_and_warp_uniform_ones_around_shuffles_are_accepted()
    {
        var diagnostics = Diagnose(Kernel("""
            var s = ctx.Shared<float>(64);
            int tid = ctx.ThreadIdx.X;
            s[tid] = x[ctx.GlobalX];
            ctx.Barrier();
            for (int stride = 32; stride > 0; stride >>= 1)
            {
                if (tid < stride) { s[tid] += s[tid + stride]; }
                ctx.Barrier();
            }
            if (n > 0) { ctx.Barrier(); }
            float v = s[ctx.LaneIdx];
            if (ctx.WarpIdx == 0) { v += ctx.ShuffleDown(v, 1); }
            if (tid == 0) { y[ctx.BlockIdx.X] = v; }
            """));
        diagnostics.Should().BeEmpty();
    }

    [Fact]
    public void A_barrier_helper_called_under_a_thread_dependent_condition_is_reported_at_the_call()
    {
        // Helpers may synchronise (GeneratorSyncHelperTests); IOCT0017 is what stays forbidden: a call not every thread makes.
        ShouldReport(Kernel("if (ctx.GlobalX < n) { Sync(ctx); }", "static void Sync(KernelContext c) { c.Barrier(); }"), "IOCT0017", "calls helper 'Sync'");
        ShouldReport(Kernel("if (ctx.LaneIdx == 0) { y[0] = Pass(ctx, x[0]); }", "static float Pass(KernelContext c, float v) => c.ShuffleDown(v, 1);"), "IOCT0017", "calls helper 'Pass'");
    }

    [Fact]
    public void A_kernel_with_errors_gets_no_launcher_but_its_valid_neighbours_do()
    {
        var run = GeneratorHarness.Run("""
            namespace Demo;
            public static partial class K
            {
                [Kernel] public static void Bad(KernelContext ctx, View<float> y) { foreach (var v in new[] { 1 }) { y[0] = v; } }
                [Kernel] public static void Good(KernelContext ctx, View<float> y) { y[ctx.GlobalX] = 1f; }
            }
            """);
        run.GeneratorDiagnostics.Select(d => d.Id).Should().Equal("IOCT0011");
        run.Result.GeneratedTrees.Select(t => Path.GetFileName(t.FilePath)).Should().Contain(f => f.StartsWith("K.Good", StringComparison.Ordinal))
            .And.NotContain(f => f.StartsWith("K.Bad", StringComparison.Ordinal));
    }

    [Fact]
    public void Every_diagnostic_id_is_documented_in_the_kernels_readme()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "IlgpuOct.sln")))
        {
            dir = dir.Parent;
        }
        dir.Should().NotBeNull("the tests run inside the repository");
        string readme = File.ReadAllText(Path.Combine(dir!.FullName, "src", "Kernels", "README.md"));
        var ids = typeof(IlgpuOct.Kernels.Generator.KernelGenerator).Assembly.GetType("IlgpuOct.Kernels.Generator.DiagnosticDescriptors")!
            .GetFields(System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Static)
            .Select(f => ((DiagnosticDescriptor)f.GetValue(null)!).Id).ToList();
        ids.Should().HaveCountGreaterThan(20).And.OnlyHaveUniqueItems();
        foreach (var id in ids)
        {
            readme.Should().Contain("| " + id + " |", $"{id} needs a row in the README's diagnostics table");
        }
    }
}
