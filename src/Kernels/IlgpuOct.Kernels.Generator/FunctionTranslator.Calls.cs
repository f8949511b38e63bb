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

/// <summary>Calls: helpers, intrinsics, KernelContext (barriers, shuffles) and atomics.</summary>
internal sealed partial class FunctionTranslator
{
    private bool IsContextCall(ExpressionSyntax e, string name) =>
        e is InvocationExpressionSyntax inv && _model.GetSymbolInfo(inv).Symbol is IMethodSymbol m
        && TypeFacts.IsKernelContext(m.ContainingType) && m.Name == name;

    private string Invocation(InvocationExpressionSyntax inv)
    {
        var symbol = _model.GetSymbolInfo(inv).Symbol as IMethodSymbol;
        if (symbol is null)
        {
            Report(DiagnosticDescriptors.UnsupportedCall, inv, inv.Expression.ToString(), "the call does not resolve to one method");
            return "0";
        }
        var args = inv.ArgumentList.Arguments;
        var type = symbol.ContainingType;
        string typeName = type.ToDisplayString();

        if (TypeFacts.IsKernelContext(type))
        {
            return ContextCall(inv, symbol);
        }
        if (typeName == CudaTranslator.KernelsNamespace + ".Atomic")
        {
            return AtomicCall(inv, symbol);
        }
        if (TypeFacts.IsFloat4(type))
        {
            return Float4Call(inv, symbol);
        }
        if (IntrinsicMap.Lookup(symbol) is { } intrinsic)
        {
            foreach (var a in args)
            {
                if (!a.RefKindKeyword.IsKind(SyntaxKind.None))
                {
                    Report(DiagnosticDescriptors.RefLocal, a, a.ToString());
                }
            }
            if (CudaPrelude.KeyOf(intrinsic) is { } key)
            {
                _unit.PreludeUse.Add(key);
            }
            return intrinsic + "(" + string.Join(", ", args.Select(a => Expr(a.Expression))) + ")";
        }
        if (symbol.DeclaringSyntaxReferences.Length > 0 && symbol.IsStatic && !symbol.IsExtensionMethod)
        {
            // Validate arguments before translating the callee so messages point at this call.
            var helper = _unit.Helper(symbol, inv);
            if (helper is null)
            {
                return "0";
            }
            var parts = new List<string>();
            for (int i = 0; i < args.Count; i++)
            {
                var a = args[i];
                if (a.NameColon is not null)
                {
                    Report(DiagnosticDescriptors.Unsupported, a, a.ToString(), "named argument");
                    continue;
                }
                if (!a.RefKindKeyword.IsKind(SyntaxKind.None))
                {
                    Report(DiagnosticDescriptors.RefLocal, a, a.ToString());
                    continue;
                }
                var paramType = i < symbol.Parameters.Length ? symbol.Parameters[i].Type : null;
                if (TypeFacts.IsKernelContext(paramType))
                {
                    // The caller's own context, passed on: nothing to pass in CUDA C.
                    if (a.Expression is not IdentifierNameSyntax ctxName || _model.GetSymbolInfo(ctxName).Symbol is not IParameterSymbol ctxParameter
                        || !TypeFacts.IsKernelContext(ctxParameter.Type))
                    {
                        Report(DiagnosticDescriptors.ContextMisuse, a, a.ToString());
                    }
                    continue;
                }
                if (paramType is not null && (TypeFacts.ViewElement(paramType) is not null || TypeFacts.SpanElement(paramType) is not null))
                {
                    var arrayName = ArrayName(a.Expression, out var length);
                    if (arrayName is null)
                    {
                        Report(DiagnosticDescriptors.ViewMisuse, a, a.ToString());
                        continue;
                    }
                    parts.Add(arrayName);
                    parts.Add(length!);
                }
                else
                {
                    parts.Add(Expr(a.Expression));
                }
            }
            if (args.Count < symbol.Parameters.Length)
            {
                Report(DiagnosticDescriptors.Unsupported, inv, inv.ToString(), "optional parameters left out; pass every argument");
            }
            if (_unit.SyncOf(symbol) is { } sync)
            {
                SynchronisingCall(inv, sync);
            }
            return helper + "(" + string.Join(", ", parts) + ")";
        }
        string why = !symbol.IsStatic ? "it is an instance method" : symbol.IsExtensionMethod ? "it is an extension method" : "it is neither a mapped intrinsic nor declared in this assembly's source";
        Report(DiagnosticDescriptors.UnsupportedCall, inv, symbol.ToDisplayString(), why);
        return "0";
    }

    private string ContextCall(InvocationExpressionSyntax inv, IMethodSymbol m)
    {
        var args = inv.ArgumentList.Arguments;
        string? shfl = m.Name switch
        {
            "ShuffleDown" => "__shfl_down_sync",
            "ShuffleUp" => "__shfl_up_sync",
            "ShuffleXor" => "__shfl_xor_sync",
            "Shuffle" => "__shfl_sync",
            _ => null,
        };
        if (m.Name is "MmaTf32" or "MmaBf16")
        {
            return MmaCall(inv, m);
        }
        if (shfl is null)
        {
            if (m.Name is "Shared" or "DynamicShared")
            {
                Report(DiagnosticDescriptors.SharedDeclaration, inv, inv.ToString());
            }
            else if (m.Name == "Barrier")
            {
                Report(DiagnosticDescriptors.Unsupported, inv, inv.ToString(), "a barrier must be a statement of its own: 'ctx.Barrier();'");
            }
            else
            {
                Report(DiagnosticDescriptors.UnsupportedCall, inv, m.ToDisplayString(), "it is not for kernel code");
            }
            return "0";
        }
        var elementType = m.TypeArguments.Length == 1 ? m.TypeArguments[0] : m.ReturnType;
        if (TypeFacts.ScalarCType(elementType) is null || elementType.SpecialType is SpecialType.System_Boolean or SpecialType.System_Byte)
        {
            Report(DiagnosticDescriptors.UnsupportedType, inv, elementType.ToDisplayString());
            return "0";
        }
        if (!ShufflePositionOk(inv))
        {
            Report(DiagnosticDescriptors.ShufflePosition, inv, inv.ToString());
        }
        CheckConvergent(inv, isBarrier: false);
        _unit.Facts.UsesShuffles = true;
        string mode = m.Name switch { "ShuffleDown" => "Down", "ShuffleUp" => "Up", "ShuffleXor" => "Xor", _ => "Index" };
        _unit.Facts.Shuffles[inv] = (mode, elementType.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat));
        return shfl + "(0xffffffffu, " + Expr(args[0].Expression) + ", " + Expr(args[1].Expression) + ")";
    }

    /// <summary>
    /// ctx.MmaTf32 / ctx.MmaBf16: a statement of the kernel body whose arguments are this lane's register
    /// arrays of the fragment sizes (IOCT0040), reached by every lane of the warp (IOCT0031).
    /// </summary>
    private string MmaCall(InvocationExpressionSyntax inv, IMethodSymbol m)
    {
        if (inv.Parent is not ExpressionStatementSyntax statement)
        {
            Report(DiagnosticDescriptors.Unsupported, inv, inv.ToString(), "an mma must be a statement of its own: 'ctx.MmaTf32(acc, a, b);'");
            return "0";
        }
        bool tf32 = m.Name == "MmaTf32";
        var args = inv.ArgumentList.Arguments;
        var want = new[] { ("acc", "float", 4), ("a", tf32 ? "float" : "uint", 4), ("b", tf32 ? "float" : "uint", 2) };
        var names = new List<string>();
        for (int i = 0; i < args.Count && i < want.Length; i++)
        {
            var (role, element, length) = want[i];
            var arg = args[i].Expression;
            string? name = ArrayName(arg, out var lengthText);
            var symbol = arg is IdentifierNameSyntax id ? _model.GetSymbolInfo(id).Symbol : null;
            bool isRegisterArray = name is not null && symbol is ILocalSymbol local
                && _registerArrays.Contains(local) && TypeFacts.SpanElement(local.Type)?.ToDisplayString() == element;
            // In a helper, a Span parameter may carry the fragment; every call site must pass a register array of the size.
            if (name is not null && _sync is not null && args[i].NameColon is null && symbol is IParameterSymbol parameter
                && _registerArrays.Contains(parameter) && TypeFacts.SpanElement(parameter.Type)?.ToDisplayString() == element)
            {
                _sync.Fragments[parameter.Ordinal] = (element, length, m.Name, role);
                names.Add(name);
                continue;
            }
            if (!isRegisterArray || lengthText != length.ToString(CultureInfo.InvariantCulture) || args[i].NameColon is not null)
            {
                Report(DiagnosticDescriptors.MmaFragment, args[i], args[i].ToString(), m.Name, role, $"Span<{element}> {role} = stackalloc {element}[{length}];");
                continue;
            }
            names.Add(name!);
        }
        if (names.Count != want.Length)
        {
            return "0";
        }
        CheckConvergent(inv, isBarrier: false);
        _unit.Facts.UsesShuffles = true;
        _unit.Facts.MmaStatements[statement] = tf32 ? "MmaTf32Deposit" : "MmaBf16Deposit";
        string function = tf32 ? "ioct_mma_m16n8k8_tf32" : "ioct_mma_m16n8k16_bf16";
        return _unit.Use(tf32 ? "mma_tf32" : "mma_bf16", function) + "(" + string.Join(", ", names) + ")";
    }

    /// <summary>
    /// A call of a helper that synchronises: it counts as a barrier (or shuffle) at the call site
    /// (IOCT0017 under a varying condition), is hoisted by the iterator copy like a shuffle (IOCT0018),
    /// its own sites are checked with this call's argument levels (IOCT0031), and mma fragments it takes
    /// must be register arrays of the fragment's size here (IOCT0040).
    /// </summary>
    private void SynchronisingCall(InvocationExpressionSyntax inv, HelperSync callee)
    {
        if (!ShufflePositionOk(inv))
        {
            Report(DiagnosticDescriptors.ShufflePosition, inv, inv.ToString());
        }
        var args = inv.ArgumentList.Arguments;
        foreach (var pair in callee.Fragments)
        {
            int ordinal = pair.Key;
            var (element, length, mma, role) = pair.Value;
            if (ordinal >= args.Count)
            {
                continue;
            }
            var arg = args[ordinal].Expression;
            string? name = ArrayName(arg, out var lengthText);
            var symbol = arg is IdentifierNameSyntax id ? _model.GetSymbolInfo(id).Symbol : null;
            if (name is not null && _sync is not null && symbol is IParameterSymbol parameter && _registerArrays.Contains(parameter)
                && TypeFacts.SpanElement(parameter.Type)?.ToDisplayString() == element)
            {
                _sync.Fragments[parameter.Ordinal] = (element, length, mma, role);
                continue;
            }
            if (name is null || symbol is not ILocalSymbol local || !_registerArrays.Contains(local)
                || TypeFacts.SpanElement(local.Type)?.ToDisplayString() != element || lengthText != length.ToString(CultureInfo.InvariantCulture))
            {
                Report(DiagnosticDescriptors.MmaFragment, args[ordinal], args[ordinal].ToString(), mma + " (through " + callee.Method.Name + ")", role,
                    $"Span<{element}> {role} = stackalloc {element}[{length}];");
            }
        }
        if (_sync is not null)
        {
            _sync.Warp |= callee.Warp;
            CheckConvergent(inv, callee.Barrier);
            return;
        }
        if (callee.Barrier)
        {
            _unit.Facts.UsesBarriers = true;
        }
        if (callee.Warp)
        {
            _unit.Facts.UsesShuffles = true;
        }
        if (_isKernel && _body is not null)
        {
            _divergence ??= new Divergence(_model, _body);
            if (_divergence.DivergentCondition(inv, callee.Barrier) is { } condition)
            {
                Report(DiagnosticDescriptors.SyncInHelper, inv, inv.ToString(), callee.Method.Name, callee.Barrier ? "a barrier" : "a warp shuffle or mma", condition);
            }
            _unit.CheckHelperConvergence(callee, args.Select(a => _divergence.Level(a.Expression)).ToList(), inv);
        }
    }

    /// <summary>The iterator copy hoists a shuffle before its statement, so the statement must evaluate it unconditionally.</summary>
    private bool ShufflePositionOk(InvocationExpressionSyntax inv)
    {
        SyntaxNode child = inv;
        for (var node = inv.Parent; node is not null; child = node, node = node.Parent)
        {
            switch (node)
            {
                case ConditionalExpressionSyntax c when child != c.Condition:
                    return false;
                case BinaryExpressionSyntax b when (b.IsKind(SyntaxKind.LogicalAndExpression) || b.IsKind(SyntaxKind.LogicalOrExpression)) && child == b.Right:
                    return false;
                case InvocationExpressionSyntax outer when IsShuffle(outer) || (_model.GetSymbolInfo(outer).Symbol is IMethodSymbol callee && _unit.SyncOf(callee) is not null):
                    return false;
                case ExpressionStatementSyntax es:
                    return !HasInnerSideEffects(es, es.Expression);
                case ArrowExpressionClauseSyntax arrow:
                    // An expression-bodied helper: its copy hoists the call before handing the value back.
                    return !arrow.DescendantNodes().Any(n => n is AssignmentExpressionSyntax || n.IsKind(SyntaxKind.PreIncrementExpression) || n.IsKind(SyntaxKind.PreDecrementExpression)
                        || n.IsKind(SyntaxKind.PostIncrementExpression) || n.IsKind(SyntaxKind.PostDecrementExpression));
                case LocalDeclarationStatementSyntax ld:
                    // The CPU copy evaluates the shuffle before the whole declaration, where its own locals do not exist yet.
                    return !HasInnerSideEffects(ld, null) && !UsesLocalDeclaredIn(inv, ld);
                case StatementSyntax:
                    return false;
            }
        }
        return false;
    }

    /// <summary>
    /// ++, -- or an assignment other than the statement's own: the iterator copy evaluates the shuffle
    /// before the whole statement, so such side effects would be ordered differently on the CPU.
    /// </summary>
    private static bool HasInnerSideEffects(StatementSyntax statement, ExpressionSyntax? own) =>
        statement.DescendantNodes().Any(n => n != own && (n is AssignmentExpressionSyntax
            || n.IsKind(SyntaxKind.PreIncrementExpression) || n.IsKind(SyntaxKind.PreDecrementExpression)
            || n.IsKind(SyntaxKind.PostIncrementExpression) || n.IsKind(SyntaxKind.PostDecrementExpression)));

    /// <summary>
    /// IOCT0031: every thread of the block (barrier) or warp (shuffle) must reach it. In a helper the site
    /// is recorded instead and checked at each call, with the divergence of that call's arguments.
    /// </summary>
    private void CheckConvergent(SyntaxNode sync, bool isBarrier)
    {
        if (_sync is not null)
        {
            _sync.Sites.Add((sync, isBarrier));
            _sync.Barrier |= isBarrier;
            _sync.Warp |= !isBarrier;
            return;
        }
        if (!_isKernel || _body is null)
        {
            return;
        }
        _divergence ??= new Divergence(_model, _body);
        if (_divergence.DivergentCondition(sync, isBarrier) is { } condition)
        {
            Report(DiagnosticDescriptors.DivergentSync, sync, sync.ToString(), condition);
        }
    }

    private bool UsesLocalDeclaredIn(InvocationExpressionSyntax inv, LocalDeclarationStatementSyntax ld)
    {
        var declared = new HashSet<ISymbol>(ld.Declaration.Variables.Select(v => _model.GetDeclaredSymbol(v)).OfType<ISymbol>(), SymbolEqualityComparer.Default);
        return inv.ArgumentList.DescendantNodes().OfType<IdentifierNameSyntax>().Any(id => _model.GetSymbolInfo(id).Symbol is { } s && declared.Contains(s));
    }

    private bool IsShuffle(InvocationExpressionSyntax inv) =>
        _model.GetSymbolInfo(inv).Symbol is IMethodSymbol m && TypeFacts.IsKernelContext(m.ContainingType) && m.Name.StartsWith("Shuffle", StringComparison.Ordinal);

    private string AtomicCall(InvocationExpressionSyntax inv, IMethodSymbol m)
    {
        var args = inv.ArgumentList.Arguments;
        if (args.Count < 2 || args[0].Expression is not ElementAccessExpressionSyntax target || !args[0].RefKindKeyword.IsKind(SyntaxKind.RefKeyword))
        {
            Report(DiagnosticDescriptors.RefLocal, inv, inv.ToString());
            return "0";
        }
        string address = "&" + ElementAccess(target);
        var t = m.Parameters[0].Type.SpecialType;
        string rest = string.Join(", ", args.Skip(1).Select(a => Expr(a.Expression)));
        switch (m.Name)
        {
            case "Add" when t == SpecialType.System_Int64:
                return "((long long)atomicAdd((unsigned long long*)" + address + ", (unsigned long long)" + Paren(rest) + "))";
            case "Add":
                return "atomicAdd(" + address + ", " + rest + ")";
            case "Min" when t == SpecialType.System_Single:
                return _unit.Use("atomic_min_f32", "ioct_atomic_min_f32(") + address + ", " + rest + ")";
            case "Max" when t == SpecialType.System_Single:
                return _unit.Use("atomic_max_f32", "ioct_atomic_max_f32(") + address + ", " + rest + ")";
            case "Min":
                return "atomicMin(" + address + ", " + rest + ")";
            case "Max":
                return "atomicMax(" + address + ", " + rest + ")";
            case "CompareExchange" when t == SpecialType.System_Single:
                return _unit.Use("atomic_cas_f32", "ioct_atomic_cas_f32(") + address + ", " + rest + ")";
            case "CompareExchange":
                return "atomicCAS(" + address + ", " + rest + ")";
            case "Exchange":
                return "atomicExch(" + address + ", " + rest + ")";
            default:
                Report(DiagnosticDescriptors.UnsupportedCall, inv, m.ToDisplayString(), "no CUDA mapping");
                return "0";
        }
    }

    /// <summary>Float4.LoadAligned(v, i) / StoreAligned(v, i, x, y, z, w): one 128-bit access through the prelude's ioct_float4.</summary>
    private string Float4Call(InvocationExpressionSyntax inv, IMethodSymbol m)
    {
        var args = inv.ArgumentList.Arguments;
        if (m.Name is not ("LoadAligned" or "StoreAligned") || args.Count < 2 || args.Any(a => a.NameColon is not null || !a.RefKindKeyword.IsKind(SyntaxKind.None)))
        {
            Report(DiagnosticDescriptors.UnsupportedCall, inv, m.ToDisplayString(), "kernels call Float4.LoadAligned(view, index) and Float4.StoreAligned(view, index, x, y, z, w) with positional arguments");
            return "0";
        }
        var view = ArrayName(args[0].Expression, out _);
        if (view is null)
        {
            Report(DiagnosticDescriptors.ViewMisuse, args[0], args[0].ToString());
            return "0";
        }
        string rest = string.Join(", ", args.Skip(1).Select(a => Expr(a.Expression)));
        return _unit.Use("float4", m.Name == "LoadAligned" ? "ioct_load_float4(" : "ioct_store_float4(") + view + ", " + rest + ")";
    }
}
