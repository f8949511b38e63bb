using System.Collections.Generic;
using Microsoft.CodeAnalysis;

namespace IlgpuOct.Kernels.Generator;

/// <summary>Every diagnostic the kernel generator reports. IDs are stable; src/Kernels/README.md documents each.</summary>
internal static class DiagnosticDescriptors
{
    private const string Category = "IlgpuOct.Kernels";

    public static readonly DiagnosticDescriptor NotPartial = Error("IOCT0001", "Kernel's declaring type must be partial",
        "Type '{0}' declares kernel '{1}' but is not partial; make {0} partial (and every type that contains it) so the generator can add the launcher");

    public static readonly DiagnosticDescriptor NotStatic = Error("IOCT0002", "Kernel must be static",
        "Kernel '{0}' is an instance method; make it static (kernels take all their data as parameters)");

    public static readonly DiagnosticDescriptor FirstParameter = Error("IOCT0003", "First kernel parameter must be KernelContext",
        "Kernel '{0}' must take IlgpuOct.Kernels.KernelContext as its first parameter, e.g. 'static void {0}(KernelContext ctx, View<float> x)'");

    public static readonly DiagnosticDescriptor ParameterType = Error("IOCT0004", "Unsupported kernel or helper parameter",
        "Parameter '{0}' of type '{1}' is not supported; use View<T> (T: float, double, int, uint, long, byte) or a scalar (float, double, int, uint, long, bool), passed by value");

    public static readonly DiagnosticDescriptor ReturnType = Error("IOCT0005", "Kernel must return void",
        "Kernel '{0}' returns '{1}'; kernels return void and write their results into View<T> parameters");

    public static readonly DiagnosticDescriptor Allocation = Error("IOCT0006", "Allocation in kernel code",
        "'{0}' allocates an object or array, which kernel code cannot do; pass a View<T>, use ctx.Shared<T>(N), or 'Span<T> a = stackalloc T[N]' with a constant N");

    public static readonly DiagnosticDescriptor Strings = Error("IOCT0007", "Strings and chars in kernel code",
        "'{0}' uses a string or char, which kernel code cannot; use numeric codes");

    public static readonly DiagnosticDescriptor Exceptions = Error("IOCT0008", "Exceptions in kernel code",
        "'{0}' throws or catches; GPU code has no exceptions: check arguments in the launcher's caller and write a status flag into a View<int> instead");

    public static readonly DiagnosticDescriptor Lambdas = Error("IOCT0009", "Lambdas, local functions and LINQ in kernel code",
        "'{0}' is a lambda, local function or query; write a static helper method in the same assembly and call it");

    public static readonly DiagnosticDescriptor Recursion = Error("IOCT0010", "Recursion in kernel code",
        "'{0}' calls itself (through {1}); GPU code must not recurse: rewrite it as a loop");

    public static readonly DiagnosticDescriptor ForEach = Error("IOCT0011", "foreach in kernel code",
        "'foreach' is not supported in kernels; write 'for (int i = 0; i < view.Length; i++)'");

    public static readonly DiagnosticDescriptor Switch = Error("IOCT0012", "switch in kernel code",
        "'switch' statements and expressions are not supported in kernels; use if/else chains or the ?: operator");

    public static readonly DiagnosticDescriptor Goto = Error("IOCT0013", "goto and labels in kernel code",
        "'{0}' is not supported in kernels; use structured loops with break/continue");

    public static readonly DiagnosticDescriptor UnsupportedCall = Error("IOCT0014", "Unsupported call in kernel code",
        "Call to '{0}' cannot be translated: {1}. Kernels may call static methods declared in this assembly's source, the KernelContext/Atomic/KernelMath members and the mapped MathF/Math functions");

    public static readonly DiagnosticDescriptor RefLocal = Error("IOCT0015", "ref/out locals and arguments in kernel code",
        "'{0}' uses ref/out/in, which kernels support only as 'ref view[i]' in an Atomic call; use a plain local and write back explicitly");

    public static readonly DiagnosticDescriptor SharedDeclaration = Error("IOCT0016", "Misplaced or non-constant shared memory",
        "'{0}': declare shared memory as a local at the top level of the kernel body, 'var s = ctx.Shared<float>(N);', with N a compile-time constant (a const or a literal)");

    public static readonly DiagnosticDescriptor SyncInHelper = Error("IOCT0017", "Synchronising helper called where not every thread reaches it",
        "'{0}' calls helper '{1}', which reaches {2}, under a condition or loop that may differ between the threads ({3}); every thread of the block (warp, for shuffles and mma) must make the call: call it unconditionally and use the condition on its result");

    public static readonly DiagnosticDescriptor ShufflePosition = Error("IOCT0018", "Warp shuffle in an unsupported position",
        "'{0}' must appear in an expression statement or a local declaration, not inside ?:, && or ||, a loop/if header, another shuffle or a statement with other ++/--/assignments; assign it to a local first: 'float t = ctx.ShuffleDown(v, k);'");

    public static readonly DiagnosticDescriptor UnsupportedType = Error("IOCT0019", "Unsupported type in kernel code",
        "Type '{0}' cannot be used in kernel code; use float, double, int, uint, long, ulong, byte or bool (and View<T> parameters)");

    public static readonly DiagnosticDescriptor ReturnValueInKernel = Error("IOCT0020", "Return with a value in a kernel",
        "Kernel '{0}' returns a value; write 'return;' and store results in a View<T> parameter");

    public static readonly DiagnosticDescriptor Unsupported = Error("IOCT0021", "Unsupported construct in kernel code",
        "'{0}' ({1}) cannot be translated to CUDA C; rewrite it with locals, arithmetic, if/for/while/do and calls to static helpers");

    public static readonly DiagnosticDescriptor Generic = Error("IOCT0022", "Generic kernels and helpers",
        "'{0}' is generic or declared in a generic type; write one non-generic kernel per element type");

    public static readonly DiagnosticDescriptor FieldAccess = Error("IOCT0023", "Non-constant field or property in kernel code",
        "'{0}' is not a compile-time constant; kernels read only parameters, locals and const fields: make it const or pass it as a parameter");

    public static readonly DiagnosticDescriptor StackAlloc = Error("IOCT0024", "Unsupported stackalloc",
        "'{0}': per-thread arrays are written 'Span<T> name = stackalloc T[N];' as a local declaration with N a compile-time constant");

    public static readonly DiagnosticDescriptor ContextMisuse = Error("IOCT0025", "KernelContext used as a value",
        "'{0}': the KernelContext may only be used for its members (ctx.ThreadIdx.X, ctx.Barrier(), ...); copy it nowhere, and pass it to a helper only as the caller's own context, for a KernelContext parameter");

    public static readonly DiagnosticDescriptor ViewMisuse = Error("IOCT0026", "Unsupported use of a View",
        "'{0}': views can be indexed, have their Length read and be passed to helpers, but not be copied into locals, compared or sliced in kernel code; pass offsets as int parameters");

    public static readonly DiagnosticDescriptor ExpressionBody = Error("IOCT0027", "Kernel without a block body",
        "Kernel '{0}' has no block body; write it as '{{ ... }}'");

    public static readonly DiagnosticDescriptor SharedTooLarge = Error("IOCT0028", "Too much static shared memory",
        "Kernel '{0}' declares {1} bytes of static shared memory; CUDA allows at most 49152 (48 KiB) per block: shrink the arrays or use ctx.DynamicShared<T>() with LaunchConfig.DynamicSharedBytes");

    public static readonly DiagnosticDescriptor UnsequencedSideEffect = Error("IOCT0029", "Side effect whose order C++ would change, in a condition or loop header",
        "'{0}' changes a variable or view that it also reads, and C++ does not evaluate left to right as C# does; this is only translated in a statement of its own: move the ++/--/assignment/call into a separate statement before the condition");

    public static readonly DiagnosticDescriptor ReservedName = Error("IOCT0030", "Name reserved for generated code",
        "'{0}' is a name the generated C# uses for itself (the launcher's __ctx and __slots beside the kernel's parameters, the CPU copy's __shfl0, __shfl1, ... in a kernel with shuffles); rename it");

    public static readonly DiagnosticDescriptor DivergentSync = Error("IOCT0031", "Barrier or shuffle under a thread-dependent condition",
        "'{0}' is under a condition or loop that depends on the thread index ({1}), so some threads of the block or warp may not reach it (a hang or undefined result on the GPU); compute the condition into a local, run the barrier or shuffle in every thread, and use the local after it");

    public static readonly DiagnosticDescriptor DynamicSharedTypes = Error("IOCT0032", "Two element types for dynamic shared memory",
        "'{0}' takes dynamic shared memory as {1}, but this kernel already takes it as {2}; every ctx.DynamicShared<T>() of a kernel is the same bytes, so take it once, with one element type, and index that view");

    public static readonly DiagnosticDescriptor LocalFunctionKernel = Error("IOCT0033", "[Kernel] on a local function",
        "Local function '{0}' is marked [Kernel], which the generator ignores; move it to a static method of a partial class");

    public static readonly DiagnosticDescriptor MmaFragment = Error("IOCT0040", "mma fragment is not a register array of the right size",
        "'{0}' is the {2} fragment of ctx.{1}, which must be a register array declared in the kernel body as '{3}' (the PTX fragment of one lane)");

    private static readonly Dictionary<string, DiagnosticDescriptor> Map = new()
    {
        [NotPartial.Id] = NotPartial, [NotStatic.Id] = NotStatic, [FirstParameter.Id] = FirstParameter,
        [ParameterType.Id] = ParameterType, [ReturnType.Id] = ReturnType, [Allocation.Id] = Allocation,
        [Strings.Id] = Strings, [Exceptions.Id] = Exceptions, [Lambdas.Id] = Lambdas, [Recursion.Id] = Recursion,
        [ForEach.Id] = ForEach, [Switch.Id] = Switch, [Goto.Id] = Goto, [UnsupportedCall.Id] = UnsupportedCall,
        [RefLocal.Id] = RefLocal, [SharedDeclaration.Id] = SharedDeclaration, [SyncInHelper.Id] = SyncInHelper,
        [ShufflePosition.Id] = ShufflePosition, [UnsupportedType.Id] = UnsupportedType,
        [ReturnValueInKernel.Id] = ReturnValueInKernel, [Unsupported.Id] = Unsupported, [Generic.Id] = Generic,
        [FieldAccess.Id] = FieldAccess, [StackAlloc.Id] = StackAlloc, [ContextMisuse.Id] = ContextMisuse,
        [ViewMisuse.Id] = ViewMisuse, [ExpressionBody.Id] = ExpressionBody, [SharedTooLarge.Id] = SharedTooLarge,
        [UnsequencedSideEffect.Id] = UnsequencedSideEffect, [ReservedName.Id] = ReservedName, [DivergentSync.Id] = DivergentSync,
        [DynamicSharedTypes.Id] = DynamicSharedTypes, [LocalFunctionKernel.Id] = LocalFunctionKernel,
        [MmaFragment.Id] = MmaFragment,
    };

    public static DiagnosticDescriptor ById(string id) => Map[id];

    private static DiagnosticDescriptor Error(string id, string title, string message) =>
        new(id, title, message, Category, DiagnosticSeverity.Error, isEnabledByDefault: true,
            helpLinkUri: "src/Kernels/README.md#diagnostics");
}
