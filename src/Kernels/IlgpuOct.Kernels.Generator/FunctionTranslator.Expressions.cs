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

/// <summary>Expressions: names, member and element access, operators, assignments, conversions.</summary>
internal sealed partial class FunctionTranslator
{
    public string Expr(ExpressionSyntax e, bool statementLevel = false)
    {
        if (_evaluated.TryGetValue(e, out var temporary))
        {
            return temporary;
        }
        var info = _model.GetTypeInfo(e);
        var constant = _model.GetConstantValue(e);
        if (constant.HasValue)
        {
            var target = info.ConvertedType ?? info.Type;
            if (constant.Value is string or char || target?.SpecialType is SpecialType.System_String or SpecialType.System_Char)
            {
                Report(DiagnosticDescriptors.Strings, e, e.ToString());
                return "0";
            }
            if (constant.Value is null)
            {
                Report(DiagnosticDescriptors.Unsupported, e, e.ToString(), "null");
                return "0";
            }
            var literal = Literals.Format(constant.Value, target);
            if (literal is null)
            {
                Report(DiagnosticDescriptors.UnsupportedType, e, target?.ToDisplayString() ?? constant.Value.GetType().Name);
                return "0";
            }
            return literal;
        }
        string raw = RawExpr(e, statementLevel);
        if (info.Type is { } from && info.ConvertedType is { } to && !SymbolEqualityComparer.Default.Equals(from, to)
            && TypeFacts.ScalarCType(from) is not null && TypeFacts.ScalarCType(to) is { } toC)
        {
            return "((" + toC + ")" + Paren(raw) + ")";
        }
        return raw;
    }

    /// <summary>A condition without the redundant outer parentheses the binary translation adds.</summary>
    private string Cond(ExpressionSyntax e)
    {
        RejectUnsequenced(e);
        string s = Expr(e, statementLevel: true);
        return s.StartsWith("(", StringComparison.Ordinal) && s.EndsWith(")", StringComparison.Ordinal) && BalancedOuter(s) ? s.Substring(1, s.Length - 2) : s;
    }

    private static string Paren(string s) =>
        IsAtom(s) || (s.StartsWith("(", StringComparison.Ordinal) && BalancedOuter(s)) ? s : "(" + s + ")";

    private static bool IsAtom(string s) => s.Length > 0 && s.All(c => char.IsLetterOrDigit(c) || c is '_' or '.' or '[' or ']');

    private static bool BalancedOuter(string s)
    {
        int depth = 0;
        for (int i = 0; i < s.Length; i++)
        {
            if (s[i] == '(')
            {
                depth++;
            }
            else if (s[i] == ')')
            {
                depth--;
                if (depth == 0 && i != s.Length - 1)
                {
                    return false;
                }
            }
        }
        return depth == 0;
    }

    private string RawExpr(ExpressionSyntax e, bool statementLevel)
    {
        switch (e)
        {
            case ParenthesizedExpressionSyntax p:
                return Paren(Expr(p.Expression));
            case IdentifierNameSyntax id:
                return Identifier(id);
            case MemberAccessExpressionSyntax ma:
                return MemberAccess(ma);
            case ElementAccessExpressionSyntax ea:
                return ElementAccess(ea);
            case BinaryExpressionSyntax b:
                return Binary(b);
            case AssignmentExpressionSyntax a:
                return Assignment(a, statementLevel);
            case PrefixUnaryExpressionSyntax pre:
                {
                    string op = pre.Kind() switch
                    {
                        SyntaxKind.UnaryMinusExpression => "-",
                        SyntaxKind.UnaryPlusExpression => "+",
                        SyntaxKind.LogicalNotExpression => "!",
                        SyntaxKind.BitwiseNotExpression => "~",
                        SyntaxKind.PreIncrementExpression => "++",
                        SyntaxKind.PreDecrementExpression => "--",
                        _ => "",
                    };
                    if (op.Length == 0)
                    {
                        return Unsupported(e);
                    }
                    string operand = Expr(pre.Operand);
                    return statementLevel ? op + operand : "(" + op + operand + ")";
                }
            case PostfixUnaryExpressionSyntax post:
                {
                    string op = post.Kind() switch
                    {
                        SyntaxKind.PostIncrementExpression => "++",
                        SyntaxKind.PostDecrementExpression => "--",
                        _ => "",
                    };
                    if (op.Length == 0)
                    {
                        return Unsupported(e);
                    }
                    string operand = Expr(post.Operand);
                    return statementLevel ? operand + op : "(" + operand + op + ")";
                }
            case ConditionalExpressionSyntax c:
                return "(" + Expr(c.Condition) + " ? " + Expr(c.WhenTrue) + " : " + Expr(c.WhenFalse) + ")";
            case CastExpressionSyntax cast:
                {
                    var type = _model.GetTypeInfo(cast.Type).Type;
                    string ct = type is null ? "int" : ScalarType(type, cast.Type);
                    string operand = Expr(cast.Expression);
                    var operandInfo = _model.GetTypeInfo(cast.Expression);
                    var from = operandInfo.ConvertedType ?? operandInfo.Type;
                    if (type is not null && from is not null && FloatToInteger(from, type, operand) is { } converted)
                    {
                        return converted;
                    }
                    return "((" + ct + ")" + Paren(operand) + ")";
                }
            case CheckedExpressionSyntax ch:
                if (ch.IsKind(SyntaxKind.CheckedExpression))
                {
                    Report(DiagnosticDescriptors.Exceptions, e, e.ToString());
                    return "0";
                }
                return Paren(Expr(ch.Expression));
            case InvocationExpressionSyntax inv:
                return Invocation(inv);
            case RefExpressionSyntax:
                Report(DiagnosticDescriptors.RefLocal, e, e.ToString());
                return "0";
            case ObjectCreationExpressionSyntax or ImplicitObjectCreationExpressionSyntax or ArrayCreationExpressionSyntax
                or ImplicitArrayCreationExpressionSyntax or CollectionExpressionSyntax or AnonymousObjectCreationExpressionSyntax
                or InitializerExpressionSyntax:
                Report(DiagnosticDescriptors.Allocation, e, FirstLine(e));
                return "0";
            case StackAllocArrayCreationExpressionSyntax or ImplicitStackAllocArrayCreationExpressionSyntax:
                Report(DiagnosticDescriptors.StackAlloc, e, e.ToString());
                return "0";
            case InterpolatedStringExpressionSyntax or LiteralExpressionSyntax { RawKind: (int)SyntaxKind.StringLiteralExpression }:
                Report(DiagnosticDescriptors.Strings, e, e.ToString());
                return "0";
            case LambdaExpressionSyntax or AnonymousMethodExpressionSyntax or QueryExpressionSyntax:
                Report(DiagnosticDescriptors.Lambdas, e, FirstLine(e));
                return "0";
            case ThrowExpressionSyntax:
                Report(DiagnosticDescriptors.Exceptions, e, e.ToString());
                return "0";
            case SwitchExpressionSyntax:
                Report(DiagnosticDescriptors.Switch, e);
                return "0";
            default:
                return Unsupported(e);
        }
    }

    private string Unsupported(ExpressionSyntax e)
    {
        Report(DiagnosticDescriptors.Unsupported, e, FirstLine(e), e.Kind().ToString());
        return "0";
    }

    private string Identifier(IdentifierNameSyntax id)
    {
        var symbol = _model.GetSymbolInfo(id).Symbol;
        switch (symbol)
        {
            case ILocalSymbol local:
                if (local.IsRef)
                {
                    Report(DiagnosticDescriptors.RefLocal, id, id.ToString());
                }
                return CheckedValueName(id, local.Type, local.Name);
            case IParameterSymbol p:
                return CheckedValueName(id, p.Type, p.Name);
            case IFieldSymbol or IPropertySymbol:
                Report(DiagnosticDescriptors.FieldAccess, id, id.ToString());
                return "0";
            default:
                Report(DiagnosticDescriptors.Unsupported, id, id.ToString(), symbol?.Kind.ToString() ?? "unresolved name");
                return "0";
        }
    }

    private string CheckedValueName(ExpressionSyntax at, ITypeSymbol type, string name)
    {
        if (TypeFacts.IsKernelContext(type))
        {
            Report(DiagnosticDescriptors.ContextMisuse, at, at.Parent?.ToString() ?? at.ToString());
            return "0";
        }
        if (TypeFacts.ViewElement(type) is not null || TypeFacts.SpanElement(type) is not null)
        {
            // A bare view name is only legal as an indexed target or a helper argument, both handled by callers.
            Report(DiagnosticDescriptors.ViewMisuse, at, at.Parent?.ToString() ?? at.ToString());
            return "0";
        }
        return Names.Local(name);
    }

    /// <summary>The name of an array-like local/parameter (view, shared view, stackalloc span), or null.</summary>
    private string? ArrayName(ExpressionSyntax e, out string? length)
    {
        length = null;
        if (e is IdentifierNameSyntax id && _model.GetSymbolInfo(id).Symbol is { } s && (s is ILocalSymbol or IParameterSymbol)
            && _arrayLengths.TryGetValue(s, out var len))
        {
            length = len;
            return Names.Local(s.Name);
        }
        return null;
    }

    private string MemberAccess(MemberAccessExpressionSyntax ma)
    {
        var symbol = _model.GetSymbolInfo(ma).Symbol;
        // ctx.ThreadIdx.X and friends
        if (symbol is IPropertySymbol { ContainingType.Name: "Dim3" } axis && ma.Expression is MemberAccessExpressionSyntax inner
            && _model.GetSymbolInfo(inner).Symbol is IPropertySymbol dim && TypeFacts.IsKernelContext(dim.ContainingType))
        {
            string? builtin = dim.Name switch
            {
                "ThreadIdx" => "threadIdx",
                "BlockIdx" => "blockIdx",
                "BlockDim" => "blockDim",
                "GridDim" => "gridDim",
                _ => null,
            };
            if (builtin is not null && axis.Name is "X" or "Y" or "Z")
            {
                return "((int)" + builtin + "." + axis.Name.ToLowerInvariant() + ")";
            }
        }
        if (symbol is IPropertySymbol ctxProp && TypeFacts.IsKernelContext(ctxProp.ContainingType))
        {
            string? mapped = ctxProp.Name switch
            {
                "GlobalX" => _unit.Use("global_x", "ioct_global_x()"),
                "GlobalY" => _unit.Use("global_y", "ioct_global_y()"),
                "GlobalZ" => _unit.Use("global_z", "ioct_global_z()"),
                "GridStrideX" => _unit.Use("grid_stride", "ioct_grid_stride_x()"),
                "LinearThreadIdx" => _unit.Use("linear", "ioct_linear_thread_idx()"),
                "LaneIdx" => _unit.Use("linear", "(ioct_linear_thread_idx() & 31)"),
                "WarpIdx" => _unit.Use("linear", "(ioct_linear_thread_idx() >> 5)"),
                _ => null,
            };
            if (mapped is not null)
            {
                return mapped;
            }
            Report(DiagnosticDescriptors.UnsupportedType, ma, "Dim3");
            return "0";
        }
        if (symbol is IPropertySymbol { Name: "Length" } && ArrayName(ma.Expression, out var length) is not null)
        {
            return length!;
        }
        if (symbol is IFieldSymbol { Name: "X" or "Y" or "Z" or "W" } lane && TypeFacts.IsFloat4(lane.ContainingType))
        {
            return "(" + Expr(ma.Expression) + ")." + lane.Name.ToLowerInvariant();
        }
        if (symbol is IFieldSymbol or IPropertySymbol)
        {
            Report(DiagnosticDescriptors.FieldAccess, ma, ma.ToString());
            return "0";
        }
        Report(DiagnosticDescriptors.Unsupported, ma, ma.ToString(), symbol?.Kind.ToString() ?? "member access");
        return "0";
    }

    private string ElementAccess(ElementAccessExpressionSyntax ea)
    {
        var name = ArrayName(ea.Expression, out _);
        if (name is null || ea.ArgumentList.Arguments.Count != 1)
        {
            Report(DiagnosticDescriptors.ViewMisuse, ea, ea.ToString());
            return "0";
        }
        var arg = ea.ArgumentList.Arguments[0].Expression;
        if (arg is RangeExpressionSyntax || (arg is PrefixUnaryExpressionSyntax pu && pu.IsKind(SyntaxKind.IndexExpression)))
        {
            Report(DiagnosticDescriptors.ViewMisuse, ea, ea.ToString());
            return "0";
        }
        return name + "[" + Expr(arg) + "]";
    }

    private string Binary(BinaryExpressionSyntax b)
    {
        string? op = b.Kind() switch
        {
            SyntaxKind.AddExpression => "+",
            SyntaxKind.SubtractExpression => "-",
            SyntaxKind.MultiplyExpression => "*",
            SyntaxKind.DivideExpression => "/",
            SyntaxKind.ModuloExpression => "%",
            SyntaxKind.LeftShiftExpression => "<<",
            SyntaxKind.RightShiftExpression => ">>",
            SyntaxKind.LogicalAndExpression => "&&",
            SyntaxKind.LogicalOrExpression => "||",
            SyntaxKind.BitwiseAndExpression => "&",
            SyntaxKind.BitwiseOrExpression => "|",
            SyntaxKind.ExclusiveOrExpression => "^",
            SyntaxKind.EqualsExpression => "==",
            SyntaxKind.NotEqualsExpression => "!=",
            SyntaxKind.LessThanExpression => "<",
            SyntaxKind.LessThanOrEqualExpression => "<=",
            SyntaxKind.GreaterThanExpression => ">",
            SyntaxKind.GreaterThanOrEqualExpression => ">=",
            _ => null,
        };
        if (op is null)
        {
            return Unsupported(b);
        }
        if (_model.GetSymbolInfo(b).Symbol is IMethodSymbol { MethodKind: MethodKind.UserDefinedOperator } user)
        {
            Report(DiagnosticDescriptors.UnsupportedCall, b, user.ToDisplayString(), "user-defined operators are not translated");
            return "0";
        }
        if (op == "%" && FloatFunction(b, "fmod") is { } fmod)
        {
            // C has no % on floating point; C#'s % is fmod (the result takes the dividend's sign).
            return fmod + "(" + Expr(b.Left) + ", " + Expr(b.Right) + ")";
        }
        if (op is "<<" or ">>")
        {
            return "(" + Expr(b.Left) + " " + op + " " + ShiftCount(b.Right, _model.GetTypeInfo(b).Type) + ")";
        }
        return "(" + Expr(b.Left) + " " + op + " " + Expr(b.Right) + ")";
    }

    /// <summary>C# masks a shift count to the width of the shifted type (1 &lt;&lt; 33 == 2); C leaves it undefined.</summary>
    private string ShiftCount(ExpressionSyntax count, ITypeSymbol? shifted)
    {
        int mask = shifted?.SpecialType is SpecialType.System_Int64 or SpecialType.System_UInt64 ? 63 : 31;
        var constant = _model.GetConstantValue(count);
        if (constant.HasValue && constant.Value is int c)
        {
            return (c & mask).ToString(CultureInfo.InvariantCulture);
        }
        return "(" + Expr(count) + " & " + mask.ToString(CultureInfo.InvariantCulture) + ")";
    }

    /// <summary>
    /// float/double to an integer type as .NET (9 and later) computes it: saturating, NaN to 0, and to byte
    /// through int. CUDA's __float2int_rz family is defined that way (PTX cvt.rzi saturates); a plain C cast
    /// of an out-of-range value is undefined.
    /// </summary>
    private static string? FloatToInteger(ITypeSymbol from, ITypeSymbol to, string operand)
    {
        string? source = from.SpecialType switch
        {
            SpecialType.System_Single => "float",
            SpecialType.System_Double => "double",
            _ => null,
        };
        if (source is null)
        {
            return null;
        }
        return to.SpecialType switch
        {
            SpecialType.System_Int32 => "__" + source + "2int_rz(" + operand + ")",
            SpecialType.System_UInt32 => "__" + source + "2uint_rz(" + operand + ")",
            SpecialType.System_Int64 => "__" + source + "2ll_rz(" + operand + ")",
            SpecialType.System_UInt64 => "__" + source + "2ull_rz(" + operand + ")",
            SpecialType.System_Byte => "((unsigned char)__" + source + "2int_rz(" + operand + "))",
            _ => null,
        };
    }

    /// <summary>fmodf/fmod when the expression's type is float/double, else null.</summary>
    private string? FloatFunction(ExpressionSyntax e, string name) => _model.GetTypeInfo(e).Type?.SpecialType switch
    {
        SpecialType.System_Single => name + "f",
        SpecialType.System_Double => name,
        _ => null,
    };

    private string Assignment(AssignmentExpressionSyntax a, bool statementLevel)
    {
        string? op = a.Kind() switch
        {
            SyntaxKind.SimpleAssignmentExpression => "=",
            SyntaxKind.AddAssignmentExpression => "+=",
            SyntaxKind.SubtractAssignmentExpression => "-=",
            SyntaxKind.MultiplyAssignmentExpression => "*=",
            SyntaxKind.DivideAssignmentExpression => "/=",
            SyntaxKind.ModuloAssignmentExpression => "%=",
            SyntaxKind.AndAssignmentExpression => "&=",
            SyntaxKind.OrAssignmentExpression => "|=",
            SyntaxKind.ExclusiveOrAssignmentExpression => "^=",
            SyntaxKind.LeftShiftAssignmentExpression => "<<=",
            SyntaxKind.RightShiftAssignmentExpression => ">>=",
            _ => null,
        };
        if (op is null)
        {
            return Unsupported(a);
        }
        if (a.Left is not (IdentifierNameSyntax or ElementAccessExpressionSyntax))
        {
            return Unsupported(a.Left);
        }
        string left = Expr(a.Left);
        if (op == "%=" && FloatFunction(a.Left, "fmod") is not null)
        {
            // One evaluation of the target, as in C# (y[k++] %= 2f must not increment k twice).
            return _unit.Use("fmod_assign", "ioct_fmod_assign(") + left + ", " + Expr(a.Right) + ")";
        }
        string right = op is "<<=" or ">>=" ? ShiftCount(a.Right, _model.GetTypeInfo(a.Left).Type) : Expr(a.Right);
        string text = left + " " + op + " " + right;
        return statementLevel ? text : "(" + text + ")";
    }
}
