using System;
using System.Collections.Generic;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace IlgpuOct.Kernels.Generator;

/// <summary>
/// Conservative data flow over a kernel's locals: which values may differ between the threads of a warp
/// (lane-varying: thread and lane indices, shuffles, atomics) or between the warps of a block
/// (warp-varying: the warp index). A local takes the highest level of anything assigned to it, and of
/// every condition the assignment is under. A barrier must not be under a condition or loop that
/// varies at all; a shuffle (full mask) not under one that varies within a warp (IOCT0031). Kernel
/// parameters are uniform; a helper's parameters start at the level of the call's arguments (seeds).
/// </summary>
internal sealed class Divergence
{
    public const int Uniform = 0;
    public const int WarpVarying = 1;
    public const int LaneVarying = 2;

    private readonly SemanticModel _model;
    private readonly Dictionary<ISymbol, int> _locals = new(SymbolEqualityComparer.Default);

    public Divergence(SemanticModel model, SyntaxNode body, IReadOnlyDictionary<ISymbol, int>? seeds = null)
    {
        _model = model;
        foreach (var seed in seeds ?? new Dictionary<ISymbol, int>(SymbolEqualityComparer.Default))
        {
            if (seed.Value > Uniform)
            {
                _locals[seed.Key] = seed.Value;
            }
        }
        // Iterate to a fixed point: a level only rises, and there are at most two rises per local.
        for (bool changed = true; changed;)
        {
            changed = false;
            foreach (var node in body.DescendantNodes())
            {
                switch (node)
                {
                    case VariableDeclaratorSyntax { Initializer: { } init } v when model.GetDeclaredSymbol(v) is ILocalSymbol local:
                        changed |= Raise(local, Math.Max(Level(init.Value), ControlLevel(v)));
                        break;
                    case AssignmentExpressionSyntax a when Target(a.Left) is { } target:
                        changed |= Raise(target, Math.Max(Level(a.Right), ControlLevel(a)));
                        break;
                    case PrefixUnaryExpressionSyntax or PostfixUnaryExpressionSyntax when UnaryTarget(node) is { } target:
                        changed |= Raise(target, ControlLevel(node));
                        break;
                }
            }
        }
    }

    /// <summary>The text of the innermost condition that makes <paramref name="sync"/> divergent, or null.</summary>
    public string? DivergentCondition(SyntaxNode sync, bool isBarrier)
    {
        int threshold = isBarrier ? WarpVarying : LaneVarying;
        SyntaxNode child = sync;
        for (var node = sync.Parent; node is not null && node is not MethodDeclarationSyntax; child = node, node = node.Parent)
        {
            ExpressionSyntax? condition = node switch
            {
                IfStatementSyntax ifs when child != ifs.Condition => ifs.Condition,
                ElseClauseSyntax when node.Parent is IfStatementSyntax parentIf => parentIf.Condition,
                WhileStatementSyntax ws when child != ws.Condition => ws.Condition,
                DoStatementSyntax ds when child != ds.Condition => ds.Condition,
                ForStatementSyntax fs when child == fs.Statement => fs.Condition,
                _ => null,
            };
            if (condition is not null && Level(condition) >= threshold)
            {
                return condition.ToString();
            }
            // A loop that some threads leave early (break/return under a varying condition) is divergent too.
            if (node is ForStatementSyntax or WhileStatementSyntax or DoStatementSyntax
                && EarlyExit(node, threshold) is { } exit)
            {
                return exit;
            }
        }
        return null;
    }

    /// <summary>
    /// In a helper: a <c>return</c> before <paramref name="sync"/> under a condition that varies, so some
    /// threads leave the helper without reaching it (they would wait at the caller's next barrier instead).
    /// </summary>
    public string? DivergentReturnBefore(SyntaxNode sync, bool isBarrier)
    {
        int threshold = isBarrier ? WarpVarying : LaneVarying;
        var method = sync.Ancestors().OfType<MethodDeclarationSyntax>().FirstOrDefault();
        if (method is null)
        {
            return null;
        }
        foreach (var exit in method.DescendantNodes().OfType<ReturnStatementSyntax>().Where(r => r.SpanStart < sync.SpanStart))
        {
            if (ControlCondition(exit, method, threshold) is { } condition)
            {
                return condition + " (a return before it)";
            }
        }
        return null;
    }

    private string? EarlyExit(SyntaxNode loop, int threshold)
    {
        foreach (var exit in loop.DescendantNodes().Where(n => n is BreakStatementSyntax or ContinueStatementSyntax or ReturnStatementSyntax))
        {
            if (ControlCondition(exit, loop, threshold) is { } condition)
            {
                return condition;
            }
        }
        return null;
    }

    private bool Raise(ISymbol local, int level)
    {
        _locals.TryGetValue(local, out int old);
        if (level <= old)
        {
            return false;
        }
        _locals[local] = level;
        return true;
    }

    private ISymbol? Target(ExpressionSyntax left) => left switch
    {
        IdentifierNameSyntax id when _model.GetSymbolInfo(id).Symbol is ILocalSymbol or IParameterSymbol => _model.GetSymbolInfo(id).Symbol,
        _ => null,
    };

    private ISymbol? UnaryTarget(SyntaxNode node) => node switch
    {
        PrefixUnaryExpressionSyntax pre when pre.IsKind(SyntaxKind.PreIncrementExpression) || pre.IsKind(SyntaxKind.PreDecrementExpression) => Target(pre.Operand),
        PostfixUnaryExpressionSyntax post => Target(post.Operand),
        _ => null,
    };

    /// <summary>The highest level of the conditions <paramref name="node"/> runs under.</summary>
    private int ControlLevel(SyntaxNode node) =>
        Conditions(node, null).Select(Level).DefaultIfEmpty(Uniform).Max();

    /// <summary>The innermost condition between <paramref name="node"/> and <paramref name="stopAt"/> that varies at least at <paramref name="threshold"/>.</summary>
    private string? ControlCondition(SyntaxNode node, SyntaxNode stopAt, int threshold) =>
        Conditions(node, stopAt).FirstOrDefault(c => Level(c) >= threshold)?.ToString();

    private static IEnumerable<ExpressionSyntax> Conditions(SyntaxNode node, SyntaxNode? stopAt)
    {
        SyntaxNode child = node;
        for (var n = node.Parent; n is not null && n != stopAt && n is not MethodDeclarationSyntax; child = n, n = n.Parent)
        {
            ExpressionSyntax? condition = n switch
            {
                IfStatementSyntax ifs when child != ifs.Condition => ifs.Condition,
                ElseClauseSyntax when n.Parent is IfStatementSyntax parentIf => parentIf.Condition,
                WhileStatementSyntax ws => ws.Condition,
                DoStatementSyntax ds => ds.Condition,
                ForStatementSyntax fs when child == fs.Statement || child is ExpressionSyntax inc && fs.Incrementors.Contains(inc) => fs.Condition,
                ConditionalExpressionSyntax c when child != c.Condition => c.Condition,
                BinaryExpressionSyntax b when (b.IsKind(SyntaxKind.LogicalAndExpression) || b.IsKind(SyntaxKind.LogicalOrExpression)) && child == b.Right => b.Left,
                _ => null,
            };
            if (condition is not null)
            {
                yield return condition;
            }
        }
    }

    /// <summary>How much the value of <paramref name="e"/> may vary between threads.</summary>
    public int Level(ExpressionSyntax e)
    {
        int level = Uniform;
        foreach (var node in e.DescendantNodesAndSelf())
        {
            switch (node)
            {
                case IdentifierNameSyntax id when _model.GetSymbolInfo(id).Symbol is (ILocalSymbol or IParameterSymbol) and var local && _locals.TryGetValue(local, out int l):
                    level = Math.Max(level, l);
                    break;
                case MemberAccessExpressionSyntax ma when _model.GetSymbolInfo(ma).Symbol is IPropertySymbol p:
                    level = Math.Max(level, PropertyLevel(ma, p));
                    break;
                case InvocationExpressionSyntax inv when _model.GetSymbolInfo(inv).Symbol is IMethodSymbol m
                    && (m.ContainingType.ToDisplayString() == CudaTranslator.KernelsNamespace + ".Atomic"
                        || (TypeFacts.IsKernelContext(m.ContainingType) && m.Name.StartsWith("Shuffle", StringComparison.Ordinal))
                        || m.Parameters.Any(p => TypeFacts.IsKernelContext(p.Type))):
                    // A helper given the context may return anything that depends on the thread.
                    level = LaneVarying;
                    break;
            }
            if (level == LaneVarying)
            {
                break;
            }
        }
        return level;
    }

    private int PropertyLevel(MemberAccessExpressionSyntax ma, IPropertySymbol p)
    {
        if (TypeFacts.IsKernelContext(p.ContainingType))
        {
            return p.Name switch
            {
                "GlobalX" or "GlobalY" or "GlobalZ" or "LinearThreadIdx" or "LaneIdx" => LaneVarying,
                "WarpIdx" => WarpVarying,
                _ => Uniform,
            };
        }
        // ctx.ThreadIdx.X/Y/Z: Y and Z vary within a warp too when BlockDim.X < 32.
        if (p.ContainingType.Name == "Dim3" && ma.Expression is MemberAccessExpressionSyntax inner
            && _model.GetSymbolInfo(inner).Symbol is IPropertySymbol dim && TypeFacts.IsKernelContext(dim.ContainingType)
            && dim.Name == "ThreadIdx")
        {
            return LaneVarying;
        }
        return Uniform;
    }
}
