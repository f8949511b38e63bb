using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace IlgpuOct.Kernels.Generator;

/// <summary>
/// Evaluation order. C# evaluates operands left to right and each side effect when it is reached; C++
/// leaves many orders unspecified (<c>o[i++] = i;</c>, <c>f(i++, i)</c>) or sequences them differently
/// (the right side of <c>=</c> first). A statement whose expression writes a variable or view that it also
/// reads elsewhere is lowered to temporaries in C# order; every other statement translates one to one.
/// </summary>
internal sealed partial class FunctionTranslator
{
    /// <summary>Sub-expressions already evaluated into a temporary (read by <see cref="Expr"/>).</summary>
    private readonly Dictionary<ExpressionSyntax, string> _evaluated = new();
    private int _temporaries;

    /// <summary>
    /// True when <paramref name="e"/> has a side effect (other than being itself an assignment) on a local,
    /// parameter or view that the expression mentions more than once, so C++'s order could differ from C#'s.
    /// </summary>
    private bool NeedsSequencing(ExpressionSyntax e)
    {
        var written = new HashSet<ISymbol>(SymbolEqualityComparer.Default);
        foreach (var node in e.DescendantNodesAndSelf())
        {
            switch (node)
            {
                case AssignmentExpressionSyntax a when a != e:
                    AddTarget(written, a.Left);
                    break;
                case PrefixUnaryExpressionSyntax pre when pre.IsKind(SyntaxKind.PreIncrementExpression) || pre.IsKind(SyntaxKind.PreDecrementExpression):
                    AddTarget(written, pre.Operand);
                    break;
                case PostfixUnaryExpressionSyntax post:
                    AddTarget(written, post.Operand);
                    break;
                case InvocationExpressionSyntax inv when _model.GetSymbolInfo(inv).Symbol is IMethodSymbol m && !TypeFacts.IsKernelContext(m.ContainingType):
                    // Atomics write their target; a helper writes the views it stores into.
                    var args = inv.ArgumentList.Arguments;
                    for (int i = 0; i < args.Count; i++)
                    {
                        if (args[i].RefKindKeyword.IsKind(SyntaxKind.RefKeyword) || _unit.HelperWritesParameter(m, i))
                        {
                            AddTarget(written, args[i].Expression);
                        }
                    }
                    break;
            }
        }
        if (written.Count == 0)
        {
            return false;
        }
        return e.DescendantNodesAndSelf().OfType<IdentifierNameSyntax>()
            .Select(id => _model.GetSymbolInfo(id).Symbol)
            .Where(s => s is not null && written.Contains(s))
            .GroupBy(s => s!, SymbolEqualityComparer.Default)
            .Any(g => g.Count() > 1);
    }

    private void AddTarget(HashSet<ISymbol> written, ExpressionSyntax target)
    {
        while (target is ParenthesizedExpressionSyntax p)
        {
            target = p.Expression;
        }
        if (target is ElementAccessExpressionSyntax ea)
        {
            target = ea.Expression;
        }
        if (target is IdentifierNameSyntax id && _model.GetSymbolInfo(id).Symbol is { } s)
        {
            written.Add(s);
        }
    }

    /// <summary>Emits the temporaries of <paramref name="e"/> in C# order; returns the text of its value.</summary>
    private string Sequence(ExpressionSyntax e)
    {
        if (_evaluated.TryGetValue(e, out var done))
        {
            return done;
        }
        if (_model.GetConstantValue(e).HasValue)
        {
            return Expr(e);
        }
        switch (e)
        {
            case ParenthesizedExpressionSyntax p:
                Sequence(p.Expression);
                return Evaluate(e);
            case CheckedExpressionSyntax ch:
                Sequence(ch.Expression);
                return Evaluate(e);
            case IdentifierNameSyntax:
                // Capture the value now: a later operand may change the variable.
                return Evaluate(e);
            case MemberAccessExpressionSyntax:
                // Indices, dimensions and lengths: nothing in a kernel changes them.
                return Expr(e);
            case ElementAccessExpressionSyntax ea when ea.ArgumentList.Arguments.Count == 1:
                Sequence(ea.ArgumentList.Arguments[0].Expression);
                return Evaluate(e);
            case BinaryExpressionSyntax b when b.IsKind(SyntaxKind.LogicalAndExpression) || b.IsKind(SyntaxKind.LogicalOrExpression):
                {
                    string result = Temporary();
                    Line("bool " + result + " = " + Sequence(b.Left) + ";");
                    Line(b.IsKind(SyntaxKind.LogicalAndExpression) ? "if (" + result + ")" : "if (!" + result + ")");
                    Nested(() => Line(result + " = " + Sequence(b.Right) + ";"));
                    return Convert(e, result);
                }
            case BinaryExpressionSyntax b:
                Sequence(b.Left);
                Sequence(b.Right);
                return Evaluate(e);
            case ConditionalExpressionSyntax c:
                {
                    string result = Temporary();
                    var type = _model.GetTypeInfo(e).Type;
                    Line((type is null ? "int" : ScalarType(type, e)) + " " + result + ";");
                    Line("if (" + Sequence(c.Condition) + ")");
                    Nested(() => Line(result + " = " + Sequence(c.WhenTrue) + ";"));
                    Line("else");
                    Nested(() => Line(result + " = " + Sequence(c.WhenFalse) + ";"));
                    return Convert(e, result);
                }
            case CastExpressionSyntax cast:
                Sequence(cast.Expression);
                return Evaluate(e);
            case PrefixUnaryExpressionSyntax pre when pre.IsKind(SyntaxKind.PreIncrementExpression) || pre.IsKind(SyntaxKind.PreDecrementExpression):
                return IncrementDecrement(e, pre.Operand, pre.IsKind(SyntaxKind.PreIncrementExpression) ? "+" : "-", prefix: true);
            case PostfixUnaryExpressionSyntax post:
                return IncrementDecrement(e, post.Operand, post.IsKind(SyntaxKind.PostIncrementExpression) ? "+" : "-", prefix: false);
            case PrefixUnaryExpressionSyntax pre:
                Sequence(pre.Operand);
                return Evaluate(e);
            case AssignmentExpressionSyntax a:
                return SequencedAssignment(a);
            case InvocationExpressionSyntax inv:
                SequenceArguments(inv);
                return Evaluate(e);
            default:
                return Expr(e);
        }
    }

    /// <summary>Each argument in order; a view is a name, and an atomic's <c>ref v[i]</c> evaluates only its index.</summary>
    private void SequenceArguments(InvocationExpressionSyntax inv)
    {
        foreach (var arg in inv.ArgumentList.Arguments)
        {
            if (arg.RefKindKeyword.IsKind(SyntaxKind.RefKeyword) && arg.Expression is ElementAccessExpressionSyntax { ArgumentList.Arguments.Count: 1 } target)
            {
                Sequence(target.ArgumentList.Arguments[0].Expression);
            }
            else if (_model.GetTypeInfo(arg.Expression).Type is not { } t || (TypeFacts.ViewElement(t) is null && TypeFacts.SpanElement(t) is null))
            {
                Sequence(arg.Expression);
            }
        }
    }

    /// <summary>The translated (children already evaluated) value of <paramref name="e"/> in a new temporary.</summary>
    private string Evaluate(ExpressionSyntax e)
    {
        string text = Expr(e);
        var info = _model.GetTypeInfo(e);
        var type = info.ConvertedType ?? info.Type;
        string? ct = type is null ? null : TypeFacts.ScalarCType(type);
        if (ct is null)
        {
            return text;
        }
        string name = Temporary();
        Line(ct + " " + name + " = " + text + ";");
        _evaluated[e] = name;
        return name;
    }

    /// <summary>A temporary that holds <paramref name="e"/>'s own value, converted as <see cref="Expr"/> would.</summary>
    private string Convert(ExpressionSyntax e, string value)
    {
        var info = _model.GetTypeInfo(e);
        if (info.Type is { } from && info.ConvertedType is { } to && !SymbolEqualityComparer.Default.Equals(from, to)
            && TypeFacts.ScalarCType(to) is { } toC)
        {
            string name = Temporary();
            Line(toC + " " + name + " = ((" + toC + ")" + value + ");");
            value = name;
        }
        _evaluated[e] = value;
        return value;
    }

    private string SequencedAssignment(AssignmentExpressionSyntax a)
    {
        string location = Location(a.Left);
        var targetType = _model.GetTypeInfo(a.Left).Type;
        string ct = targetType is null ? "int" : ScalarType(targetType, a.Left);
        string value;
        if (a.IsKind(SyntaxKind.SimpleAssignmentExpression))
        {
            value = Sequence(a.Right);
        }
        else
        {
            // C# reads the target before it evaluates the right-hand side.
            string old = Temporary();
            Line(ct + " " + old + " = " + location + ";");
            string right = Sequence(a.Right);
            value = Temporary();
            Line(ct + " " + value + " = " + CompoundValue(a, old, right) + ";");
        }
        Line(location + " = " + value + ";");
        return Convert(a, value);
    }

    private string CompoundValue(AssignmentExpressionSyntax a, string old, string right)
    {
        string op = a.Kind() switch
        {
            SyntaxKind.AddAssignmentExpression => "+",
            SyntaxKind.SubtractAssignmentExpression => "-",
            SyntaxKind.MultiplyAssignmentExpression => "*",
            SyntaxKind.DivideAssignmentExpression => "/",
            SyntaxKind.ModuloAssignmentExpression => "%",
            SyntaxKind.AndAssignmentExpression => "&",
            SyntaxKind.OrAssignmentExpression => "|",
            SyntaxKind.ExclusiveOrAssignmentExpression => "^",
            SyntaxKind.LeftShiftAssignmentExpression => "<<",
            SyntaxKind.RightShiftAssignmentExpression => ">>",
            _ => "",
        };
        if (op.Length == 0)
        {
            return Unsupported(a);
        }
        if (op == "%" && FloatFunction(a.Left, "fmod") is { } fmod)
        {
            return fmod + "(" + old + ", " + right + ")";
        }
        if (op is "<<" or ">>")
        {
            int mask = _model.GetTypeInfo(a.Left).Type?.SpecialType is SpecialType.System_Int64 or SpecialType.System_UInt64 ? 63 : 31;
            right = "(" + right + " & " + mask.ToString(CultureInfo.InvariantCulture) + ")";
        }
        return "(" + old + " " + op + " " + right + ")";
    }

    private string IncrementDecrement(ExpressionSyntax e, ExpressionSyntax operand, string op, bool prefix)
    {
        string location = Location(operand);
        var type = _model.GetTypeInfo(operand).Type;
        string ct = type is null ? "int" : ScalarType(type, operand);
        string old = Temporary();
        Line(ct + " " + old + " = " + location + ";");
        string updated = Temporary();
        Line(ct + " " + updated + " = " + old + " " + op + " 1;");
        Line(location + " = " + updated + ";");
        return Convert(e, prefix ? updated : old);
    }

    /// <summary>An assignable location with its index evaluated (C# evaluates the index before the right side).</summary>
    private string Location(ExpressionSyntax target)
    {
        while (target is ParenthesizedExpressionSyntax p)
        {
            target = p.Expression;
        }
        switch (target)
        {
            case IdentifierNameSyntax id:
                return Identifier(id);
            case ElementAccessExpressionSyntax { ArgumentList.Arguments.Count: 1 } ea:
                Sequence(ea.ArgumentList.Arguments[0].Expression);
                return ElementAccess(ea);
            default:
                return Unsupported(target);
        }
    }

    private string Temporary() => "ioct_t" + (_temporaries++).ToString(CultureInfo.InvariantCulture);

    private void Nested(System.Action body)
    {
        Line("{");
        _indent++;
        body();
        _indent--;
        Line("}");
    }

    /// <summary>An expression statement, sequenced when C++ could order its side effects differently.</summary>
    private void ExpressionStatement(ExpressionSyntax e)
    {
        if (!NeedsSequencing(e))
        {
            Line(Expr(e, statementLevel: true) + ";");
            return;
        }
        OneLine(() => Nested(() =>
        {
            if (e is InvocationExpressionSyntax call)
            {
                // Arguments in order, then the call itself as the statement (its value is unused).
                SequenceArguments(call);
                Line(Expr(e, statementLevel: true) + ";");
            }
            else
            {
                // An assignment, ++ or --: sequencing emits the store.
                Sequence(e);
            }
        }));
        _evaluated.Clear();
    }

    /// <summary>Reported where a condition or loop part would need sequencing: it cannot be hoisted out of the loop.</summary>
    private void RejectUnsequenced(ExpressionSyntax? e)
    {
        if (e is not null && NeedsSequencing(e))
        {
            Report(DiagnosticDescriptors.UnsequencedSideEffect, e, e.ToString());
        }
    }
}
