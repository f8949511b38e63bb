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

/// <summary>Statements: blocks, control flow, local, shared and stackalloc declarations.</summary>
internal sealed partial class FunctionTranslator
{
    private void Line(string text)
    {
        _out.Append(' ', _indent * 4).Append(text).Append('\n');
    }

    private void Block(BlockSyntax block, bool topLevel = false)
    {
        Line("{");
        _indent++;
        foreach (var s in block.Statements)
        {
            Statement(s, topLevel);
        }
        _indent--;
        Line("}");
    }

    private void Embedded(StatementSyntax s)
    {
        if (s is BlockSyntax b)
        {
            Block(b);
        }
        else
        {
            Line("{");
            _indent++;
            Statement(s, topLevel: false);
            _indent--;
            Line("}");
        }
    }

    private void Statement(StatementSyntax s, bool topLevel)
    {
        _unit.Cancellation.ThrowIfCancellationRequested();
        switch (s)
        {
            case BlockSyntax b:
                Block(b);
                break;
            case LocalDeclarationStatementSyntax ld:
                LocalDeclaration(ld, topLevel);
                break;
            case ExpressionStatementSyntax es:
                if (IsContextCall(es.Expression, "Barrier"))
                {
                    if (!_isKernel)
                    {
                        Report(DiagnosticDescriptors.SyncInHelper, es, es.ToString(), _method.Name);
                    }
                    _unit.Facts.UsesBarriers = true;
                    _unit.Facts.BarrierStatements.Add(es);
                    Line("__syncthreads();");
                }
                else
                {
                    Line(Expr(es.Expression, statementLevel: true) + ";");
                }
                break;
            case IfStatementSyntax ifs:
                Line("if (" + Cond(ifs.Condition) + ")");
                Embedded(ifs.Statement);
                var elseClause = ifs.Else;
                while (elseClause is not null)
                {
                    if (elseClause.Statement is IfStatementSyntax elseIf)
                    {
                        Line("else if (" + Cond(elseIf.Condition) + ")");
                        Embedded(elseIf.Statement);
                        elseClause = elseIf.Else;
                    }
                    else
                    {
                        Line("else");
                        Embedded(elseClause.Statement);
                        elseClause = null;
                    }
                }
                break;
            case ForStatementSyntax fs:
                {
                    string init = "";
                    if (fs.Declaration is { } decl)
                    {
                        var type = _model.GetTypeInfo(decl.Type).Type;
                        string ct = type is null ? "int" : ScalarType(type, decl.Type);
                        init = ct + " " + string.Join(", ", decl.Variables.Select(v =>
                            Names.Local(v.Identifier.ValueText) + (v.Initializer is null ? "" : " = " + Expr(v.Initializer.Value))));
                    }
                    else
                    {
                        init = string.Join(", ", fs.Initializers.Select(e => Expr(e, statementLevel: true)));
                    }
                    string cond = fs.Condition is null ? "" : Cond(fs.Condition);
                    string inc = string.Join(", ", fs.Incrementors.Select(e => Expr(e, statementLevel: true)));
                    Line("for (" + init + "; " + cond + "; " + inc + ")");
                    Embedded(fs.Statement);
                    break;
                }
            case WhileStatementSyntax ws:
                Line("while (" + Cond(ws.Condition) + ")");
                Embedded(ws.Statement);
                break;
            case DoStatementSyntax ds:
                Line("do");
                Embedded(ds.Statement);
                Line("while (" + Cond(ds.Condition) + ");");
                break;
            case BreakStatementSyntax:
                Line("break;");
                break;
            case ContinueStatementSyntax:
                Line("continue;");
                break;
            case ReturnStatementSyntax rs:
                if (rs.Expression is null)
                {
                    Line("return;");
                }
                else if (_isKernel)
                {
                    Report(DiagnosticDescriptors.ReturnValueInKernel, rs, _method.Name);
                }
                else
                {
                    Line("return " + Expr(rs.Expression) + ";");
                }
                break;
            case EmptyStatementSyntax:
                Line(";");
                break;
            case CheckedStatementSyntax cs when cs.Keyword.IsKind(SyntaxKind.UncheckedKeyword):
                Block(cs.Block);
                break;
            case ForEachStatementSyntax or ForEachVariableStatementSyntax:
                Report(DiagnosticDescriptors.ForEach, s);
                break;
            case SwitchStatementSyntax:
                Report(DiagnosticDescriptors.Switch, s);
                break;
            case GotoStatementSyntax or LabeledStatementSyntax:
                Report(DiagnosticDescriptors.Goto, s, FirstLine(s));
                break;
            case ThrowStatementSyntax or TryStatementSyntax:
                Report(DiagnosticDescriptors.Exceptions, s, FirstLine(s));
                break;
            case LocalFunctionStatementSyntax:
                Report(DiagnosticDescriptors.Lambdas, s, FirstLine(s));
                break;
            default:
                Report(DiagnosticDescriptors.Unsupported, s, FirstLine(s), s.Kind().ToString());
                break;
        }
    }

    private static string FirstLine(SyntaxNode node)
    {
        var text = node.ToString();
        int nl = text.IndexOfAny(new[] { '\r', '\n' });
        return nl < 0 ? text : text.Substring(0, nl);
    }

    private void LocalDeclaration(LocalDeclarationStatementSyntax ld, bool topLevel)
    {
        if (ld.IsConst)
        {
            // Constants are inlined at every use through the semantic model.
            return;
        }
        if (ld.UsingKeyword.IsKind(SyntaxKind.UsingKeyword) || ld.Declaration.Type is RefTypeSyntax)
        {
            Report(DiagnosticDescriptors.RefLocal, ld, FirstLine(ld));
            return;
        }
        foreach (var v in ld.Declaration.Variables)
        {
            if (_model.GetDeclaredSymbol(v) is not ILocalSymbol local)
            {
                continue;
            }
            string name = Names.Local(local.Name);
            var type = local.Type;
            if (TypeFacts.ViewElement(type) is { } element)
            {
                SharedDeclaration(ld, v, local, element, topLevel);
                continue;
            }
            if (TypeFacts.SpanElement(type) is { } spanElement)
            {
                StackAllocDeclaration(v, local, spanElement);
                continue;
            }
            if (v.Initializer?.Value is StackAllocArrayCreationExpressionSyntax or ImplicitStackAllocArrayCreationExpressionSyntax)
            {
                Report(DiagnosticDescriptors.StackAlloc, v, v.ToString());
                continue;
            }
            string ct = ScalarType(type, ld.Declaration.Type);
            Line(ct + " " + name + (v.Initializer is null ? "" : " = " + Expr(v.Initializer.Value)) + ";");
        }
    }

    private void SharedDeclaration(LocalDeclarationStatementSyntax ld, VariableDeclaratorSyntax v, ILocalSymbol local, ITypeSymbol element, bool topLevel)
    {
        string name = Names.Local(local.Name);
        if (v.Initializer?.Value is not InvocationExpressionSyntax call || _model.GetSymbolInfo(call).Symbol is not IMethodSymbol m
            || !TypeFacts.IsKernelContext(m.ContainingType) || (m.Name != "Shared" && m.Name != "DynamicShared"))
        {
            Report(DiagnosticDescriptors.ViewMisuse, v, v.ToString());
            return;
        }
        if (!_isKernel || !topLevel)
        {
            Report(DiagnosticDescriptors.SharedDeclaration, v, v.ToString());
            return;
        }
        string? ct = TypeFacts.ViewElementCType(element);
        if (ct is null)
        {
            Report(DiagnosticDescriptors.UnsupportedType, v, element.ToDisplayString());
            return;
        }
        if (m.Name == "Shared")
        {
            var lengthArg = call.ArgumentList.Arguments.FirstOrDefault()?.Expression;
            var constant = lengthArg is null ? default : _model.GetConstantValue(lengthArg);
            if (!constant.HasValue || constant.Value is not int length || length <= 0)
            {
                Report(DiagnosticDescriptors.SharedDeclaration, v, v.ToString());
                return;
            }
            Line("__shared__ " + ct + " " + name + "[" + length.ToString(CultureInfo.InvariantCulture) + "];");
            _arrayLengths[local] = length.ToString(CultureInfo.InvariantCulture);
            _unit.Facts.StaticSharedBytes += length * TypeFacts.SizeOf(element);
        }
        else
        {
            _unit.PreludeUse.Add("dynamic_shared");
            Line(ct + "* " + name + " = (" + ct + "*)ioct_dynamic_shared;");
            Line("const int " + name + "_length = (int)(ioct_dynamic_shared_bytes() / sizeof(" + ct + "));");
            _arrayLengths[local] = name + "_length";
        }
    }

    private void StackAllocDeclaration(VariableDeclaratorSyntax v, ILocalSymbol local, ITypeSymbol element)
    {
        string name = Names.Local(local.Name);
        ExpressionSyntax? size = v.Initializer?.Value switch
        {
            StackAllocArrayCreationExpressionSyntax { Initializer: null, Type: ArrayTypeSyntax at } when at.RankSpecifiers.Count == 1 && at.RankSpecifiers[0].Sizes.Count == 1 => at.RankSpecifiers[0].Sizes[0],
            _ => null,
        };
        var constant = size is null ? default : _model.GetConstantValue(size);
        string? ct = TypeFacts.ScalarCType(element);
        if (!constant.HasValue || constant.Value is not int length || length <= 0 || ct is null)
        {
            Report(DiagnosticDescriptors.StackAlloc, v, v.ToString());
            return;
        }
        string n = length.ToString(CultureInfo.InvariantCulture);
        // stackalloc zero-initialises (no SkipLocalsInit in this project), so the CUDA array does too.
        Line(ct + " " + name + "[" + n + "] = {0};");
        _arrayLengths[local] = n;
    }
}
