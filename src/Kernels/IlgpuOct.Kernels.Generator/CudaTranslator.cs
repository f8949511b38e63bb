using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text;
using System.Threading;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace IlgpuOct.Kernels.Generator;

/// <summary>What the kernel-body translation learnt that the C# side needs (iterator rewriting, definition flags).</summary>
internal sealed class KernelFacts
{
    public bool UsesBarriers;
    public bool UsesShuffles;
    public int StaticSharedBytes;
    public readonly HashSet<StatementSyntax> BarrierStatements = new();
    public readonly Dictionary<InvocationExpressionSyntax, (string Mode, string CsType)> Shuffles = new();
    /// <summary>mma statements and the KernelContext deposit hook the iterator copy calls for each.</summary>
    public readonly Dictionary<StatementSyntax, string> MmaStatements = new();
    /// <summary>Helpers that synchronise (a barrier, shuffle or mma in their body or their callees'); the host copy runs them as nested iterators.</summary>
    public readonly Dictionary<IMethodSymbol, HelperSync> SyncHelpers = new(SymbolEqualityComparer.Default);
}

/// <summary>
/// What a helper synchronises, directly or through the helpers it calls, and where: the call site of
/// such a helper counts as a barrier (or, without barriers, as a shuffle) of the caller, and the helper's
/// own sites are checked for divergence once per call site, with the arguments' divergence levels.
/// </summary>
internal sealed class HelperSync
{
    public HelperSync(IMethodSymbol method, SemanticModel model, MethodDeclarationSyntax syntax)
    {
        Method = method;
        Model = model;
        Syntax = syntax;
    }

    public IMethodSymbol Method { get; }

    public SemanticModel Model { get; }

    public MethodDeclarationSyntax Syntax { get; }

    /// <summary>A block-wide barrier is reached (all threads of the block must call the helper).</summary>
    public bool Barrier;

    /// <summary>A warp shuffle or mma is reached (all lanes of the warp must call the helper).</summary>
    public bool Warp;

    public bool Any => Barrier || Warp;

    /// <summary>Barrier statements, shuffles, mmas and calls of synchronising helpers in the body, with whether each needs the whole block.</summary>
    public readonly List<(SyntaxNode Node, bool IsBarrier)> Sites = new();

    /// <summary>Span parameters that reach an mma operand: parameter ordinal -> (element, fragment length, mma, operand role).</summary>
    public readonly Dictionary<int, (string Element, int Length, string Mma, string Role)> Fragments = new();
}

/// <summary>
/// Syntax-directed translation of a kernel and the static helpers it calls to one CUDA C translation
/// unit. Every construct outside the accepted subset becomes a diagnostic; translation continues so
/// all errors of a kernel are reported at once.
/// </summary>
internal sealed class CudaTranslator
{
    public const string KernelsNamespace = "IlgpuOct.Kernels";

    private readonly Compilation _compilation;
    private readonly CancellationToken _cancellation;
    private readonly Dictionary<IMethodSymbol, string> _helperNames = new(SymbolEqualityComparer.Default);
    private readonly List<string> _helperBodies = new();
    private readonly List<IMethodSymbol> _callStack = new();
    private readonly HashSet<string> _functionNames = new(StringComparer.Ordinal);

    public CudaTranslator(Compilation compilation, CancellationToken cancellation)
    {
        _compilation = compilation;
        _cancellation = cancellation;
    }

    public List<DiagnosticInfo> Diagnostics { get; } = new();

    public KernelFacts Facts { get; } = new();

    /// <summary>Locals and parameters named like the CPU copy's shuffle temporaries (an error only if the kernel shuffles).</summary>
    public List<(string Name, SyntaxNode At)> ShuffleTemporaryNames { get; } = new();

    /// <summary>The C# element type of the kernel's dynamic shared memory, once declared.</summary>
    public string? DynamicSharedElement { get; set; }

    /// <summary>Prelude pieces the translated code refers to.</summary>
    public HashSet<string> PreludeUse { get; } = new();

    public string Use(string key, string text)
    {
        PreludeUse.Add(key);
        return text;
    }

    public bool HasErrors => Diagnostics.Count > 0;

    public void Report(DiagnosticDescriptor descriptor, SyntaxNode node, params string[] args) =>
        Diagnostics.Add(new DiagnosticInfo(descriptor, node.GetLocation(), args));

    /// <summary>Translates the kernel; returns (complete CUDA source, CUDA parameter list).</summary>
    public (string Source, string Parameters) TranslateKernel(IMethodSymbol kernel, MethodDeclarationSyntax syntax, string entryPoint)
    {
        _callStack.Add(kernel);
        _functionNames.Add(entryPoint);
        var model = _compilation.GetSemanticModel(syntax.SyntaxTree);
        var function = new FunctionTranslator(this, model, kernel, isKernel: true);
        string parameters = function.ParameterList(syntax, skipFirst: true);
        string directive = function.SignatureDirective(syntax);
        string body = function.Body(syntax);
        _callStack.RemoveAt(_callStack.Count - 1);
        if (Facts.UsesShuffles)
        {
            foreach (var (name, at) in ShuffleTemporaryNames)
            {
                Report(DiagnosticDescriptors.ReservedName, at, name);
            }
        }

        var sb = new StringBuilder();
        sb.Append(CudaPrelude.For(PreludeUse));
        foreach (var helper in _helperBodies)
        {
            sb.Append(helper).Append('\n');
        }
        sb.Append(directive);
        sb.Append("extern \"C\" __global__ void ").Append(LaunchBounds(kernel)).Append(entryPoint).Append('(').Append(parameters).Append(")\n");
        sb.Append(body);
        return (sb.ToString(), parameters);
    }

    /// <summary><c>__launch_bounds__(threads, blocks) </c> from [Kernel(MaxThreadsPerBlock = .., MinBlocksPerMultiprocessor = ..)], else empty.</summary>
    private static string LaunchBounds(IMethodSymbol kernel)
    {
        var attribute = kernel.GetAttributes().FirstOrDefault(a => a.AttributeClass?.ToDisplayString() == KernelsNamespace + ".KernelAttribute");
        if (attribute is null)
        {
            return "";
        }
        int threads = 0, blocks = 0;
        foreach (var named in attribute.NamedArguments)
        {
            if (named.Key == "MaxThreadsPerBlock" && named.Value.Value is int t)
            {
                threads = t;
            }
            else if (named.Key == "MinBlocksPerMultiprocessor" && named.Value.Value is int b)
            {
                blocks = b;
            }
        }
        if (threads <= 0)
        {
            return "";
        }
        return blocks > 0
            ? "__launch_bounds__(" + threads.ToString(CultureInfo.InvariantCulture) + ", " + blocks.ToString(CultureInfo.InvariantCulture) + ") "
            : "__launch_bounds__(" + threads.ToString(CultureInfo.InvariantCulture) + ") ";
    }

    /// <summary>The CUDA name of a source helper, translating it (and its callees) on first use.</summary>
    public string? Helper(IMethodSymbol method, SyntaxNode callSite)
    {
        method = method.OriginalDefinition;
        if (_callStack.Contains(method, SymbolEqualityComparer.Default))
        {
            var cycle = string.Join(" -> ", _callStack.SkipWhile(m => !SymbolEqualityComparer.Default.Equals(m, method)).Select(m => m.Name).Concat(new[] { method.Name }));
            Report(DiagnosticDescriptors.Recursion, callSite, method.Name, cycle);
            return null;
        }
        if (_helperNames.TryGetValue(method, out var known))
        {
            return known;
        }
        if (method.DeclaringSyntaxReferences.Length == 0 || !SymbolEqualityComparer.Default.Equals(method.ContainingAssembly, _compilation.Assembly))
        {
            Report(DiagnosticDescriptors.UnsupportedCall, callSite, method.ToDisplayString(), "it is not declared in this assembly's source");
            return null;
        }
        if (!method.IsStatic || method.MethodKind != MethodKind.Ordinary)
        {
            Report(DiagnosticDescriptors.UnsupportedCall, callSite, method.ToDisplayString(), "only static methods can be called; make it static");
            return null;
        }
        if (method.IsGenericMethod || method.ContainingType.IsGenericType)
        {
            Report(DiagnosticDescriptors.Generic, callSite, method.ToDisplayString());
            return null;
        }
        if (method.ReturnsByRef || method.ReturnsByRefReadonly)
        {
            Report(DiagnosticDescriptors.RefLocal, callSite, method.ToDisplayString());
            return null;
        }
        if (method.DeclaringSyntaxReferences[0].GetSyntax(_cancellation) is not MethodDeclarationSyntax syntax)
        {
            Report(DiagnosticDescriptors.UnsupportedCall, callSite, method.ToDisplayString(), "it is not an ordinary method declaration");
            return null;
        }
        if (method.GetAttributes().Any(a => a.AttributeClass?.ToDisplayString() == KernelsNamespace + ".KernelAttribute"))
        {
            Report(DiagnosticDescriptors.UnsupportedCall, callSite, method.ToDisplayString(), "a [Kernel] cannot call another kernel; move the shared code into a helper");
            return null;
        }

        string name = "ioct_fn_" + Names.Sanitize(string.Join("_", Names.ContainingTypes(method.ContainingType))) + "_" + Names.Sanitize(method.Name);
        if (method.ContainingType.GetMembers(method.Name).Length > 1)
        {
            name += "_" + string.Join("_", method.Parameters.Select(p => Names.Sanitize(p.Type.Name)));
        }
        name = UniqueFunctionName(name);
        _helperNames[method] = name;

        _callStack.Add(method);
        var model = _compilation.GetSemanticModel(syntax.SyntaxTree);
        var sync = new HelperSync(method, model, syntax);
        var function = new FunctionTranslator(this, model, method, isKernel: false, sync);
        string returnType = method.ReturnsVoid ? "void" : function.ScalarType(method.ReturnType, syntax.ReturnType);
        string parameters = function.ParameterList(syntax, skipFirst: false);
        string directive = function.SignatureDirective(syntax);
        string body = function.Body(syntax);
        _callStack.RemoveAt(_callStack.Count - 1);
        if (sync.Any)
        {
            Facts.SyncHelpers[method] = sync;
        }
        // Register arrays stay in the caller's registers only when inlined; a synchronising helper is
        // inlined too, so its barriers and shuffles sit in the kernel's own control flow.
        bool inline = function.TakesRegisterArrays || sync.Any;
        _helperBodies.Add(directive + (inline ? "static __device__ __forceinline__ " : "static __device__ ") + returnType + " " + name + "(" + parameters + ")\n" + body);
        return name;
    }

    /// <summary>The synchronisation facts of a translated helper, or null when it does not synchronise.</summary>
    public HelperSync? SyncOf(IMethodSymbol method) =>
        Facts.SyncHelpers.TryGetValue(method.OriginalDefinition, out var sync) ? sync : null;

    /// <summary>
    /// IOCT0031 inside a synchronising helper, for one call: the helper's barriers, shuffles and mmas (and
    /// those of the helpers it calls) must not be under a condition that varies, given how much the
    /// arguments of this call vary (<paramref name="argumentLevels"/>, by parameter ordinal).
    /// </summary>
    public void CheckHelperConvergence(HelperSync helper, IReadOnlyList<int> argumentLevels, SyntaxNode callSite, int depth = 0)
    {
        if (depth > 32)
        {
            return; // recursion is IOCT0010, reported where the cycle closes
        }
        var seeds = new Dictionary<ISymbol, int>(SymbolEqualityComparer.Default);
        for (int i = 0; i < helper.Method.Parameters.Length && i < argumentLevels.Count; i++)
        {
            seeds[helper.Method.Parameters[i]] = argumentLevels[i];
        }
        SyntaxNode body = (SyntaxNode?)helper.Syntax.Body ?? helper.Syntax.ExpressionBody!;
        var divergence = new Divergence(helper.Model, body, seeds);
        int callLine = callSite.GetLocation().GetLineSpan().StartLinePosition.Line + 1;
        string where = " in helper '" + helper.Method.Name + "' called at line " + callLine.ToString(CultureInfo.InvariantCulture);
        foreach (var (node, isBarrier) in helper.Sites)
        {
            string? condition = divergence.DivergentCondition(node, isBarrier) ?? divergence.DivergentReturnBefore(node, isBarrier);
            if (condition is not null)
            {
                Report(DiagnosticDescriptors.DivergentSync, node, node.ToString(), condition + where);
            }
            if (node is InvocationExpressionSyntax call && helper.Model.GetSymbolInfo(call).Symbol is IMethodSymbol callee && SyncOf(callee) is { } inner)
            {
                var levels = call.ArgumentList.Arguments.Select(a => divergence.Level(a.Expression)).ToList();
                CheckHelperConvergence(inner, levels, call, depth + 1);
            }
        }
    }

    public CancellationToken Cancellation => _cancellation;

    private readonly Dictionary<(IMethodSymbol, int), bool> _writes = new();

    /// <summary>
    /// Whether source helper <paramref name="method"/> may store into the view passed as parameter
    /// <paramref name="ordinal"/> (element assignment, ++/--, an atomic, or passing it to a helper that does).
    /// </summary>
    public bool HelperWritesParameter(IMethodSymbol method, int ordinal)
    {
        method = method.OriginalDefinition;
        if (ordinal >= method.Parameters.Length
            || (TypeFacts.ViewElement(method.Parameters[ordinal].Type) is null && TypeFacts.SpanElement(method.Parameters[ordinal].Type) is null)
            || method.DeclaringSyntaxReferences.Length == 0
            || method.DeclaringSyntaxReferences[0].GetSyntax(_cancellation) is not MethodDeclarationSyntax syntax)
        {
            return false;
        }
        if (_writes.TryGetValue((method, ordinal), out bool known))
        {
            return known;
        }
        _writes[(method, ordinal)] = false; // a cycle (rejected elsewhere as recursion) adds nothing
        var model = _compilation.GetSemanticModel(syntax.SyntaxTree);
        var parameter = method.Parameters[ordinal];
        bool IsParameter(ExpressionSyntax e) =>
            e is ElementAccessExpressionSyntax { Expression: IdentifierNameSyntax id }
            && SymbolEqualityComparer.Default.Equals(model.GetSymbolInfo(id).Symbol, parameter);
        bool writes = syntax.DescendantNodes().Any(n => n switch
        {
            AssignmentExpressionSyntax a => IsParameter(a.Left),
            PrefixUnaryExpressionSyntax pre => (pre.IsKind(SyntaxKind.PreIncrementExpression) || pre.IsKind(SyntaxKind.PreDecrementExpression)) && IsParameter(pre.Operand),
            PostfixUnaryExpressionSyntax post => IsParameter(post.Operand),
            ArgumentSyntax arg when arg.RefKindKeyword.IsKind(SyntaxKind.RefKeyword) => IsParameter(arg.Expression),
            InvocationExpressionSyntax inv => model.GetSymbolInfo(inv).Symbol is IMethodSymbol callee
                && inv.ArgumentList.Arguments.Select((arg, i) => (arg, i)).Any(x =>
                    x.arg.Expression is IdentifierNameSyntax id && SymbolEqualityComparer.Default.Equals(model.GetSymbolInfo(id).Symbol, parameter)
                    && HelperWritesParameter(callee, x.i)),
            _ => false,
        });
        _writes[(method, ordinal)] = writes;
        return writes;
    }

    /// <summary>
    /// Generated names never end with '_' (user names that do are escaped, see <see cref="Names"/>) and two
    /// helpers whose joined names coincide (A_B.C and A.B_C) get distinct ones.
    /// </summary>
    private string UniqueFunctionName(string name)
    {
        if (name.EndsWith("_", StringComparison.Ordinal))
        {
            name += "f";
        }
        string unique = name;
        for (int i = 2; !_functionNames.Add(unique); i++)
        {
            unique = name + "_" + i.ToString(CultureInfo.InvariantCulture);
        }
        return unique;
    }
}
