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
        if (_singleLine)
        {
            _out.Append(text).Append(' ');
            return;
        }
        StartLine(brace: text is "{" or "}");
        _out.Append(text).Append('\n');
        _presumedLine++;
    }

    /// <summary>
    /// Indentation, after a #line directive when NVRTC would otherwise attribute the line to another C#
    /// line, so its messages (and -lineinfo) name the C# source. Braces need no mapping of their own.
    /// </summary>
    private void StartLine(bool brace = false)
    {
        if (_file.Length > 0 && _statementLine > 0 && _presumedLine != _statementLine && !brace)
        {
            _out.Append("#line ").Append(_statementLine.ToString(CultureInfo.InvariantCulture)).Append(" \"").Append(_file).Append("\"\n");
            _presumedLine = _statementLine;
        }
        _out.Append(' ', _indent * 4);
    }

    /// <summary>Emits everything <paramref name="body"/> writes on one line, so all of it maps to the statement's C# line.</summary>
    private void OneLine(Action body)
    {
        StartLine();
        _singleLine = true;
        body();
        _singleLine = false;
        _out.Length--;
        _out.Append('\n');
        _presumedLine++;
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
        int outer = _statementLine;
        _statementLine = LineOf(s);
        StatementBody(s, topLevel);
        _statementLine = outer;
    }

    /// <summary>
    /// A loop with a compile-time trip count (<c>for (int i = A; i &lt; B; i++)</c>, A and B constant) whose body
    /// indexes a register array: fully unrolled, so every index is a constant and the array stays in registers.
    /// </summary>
    private bool UnrollsRegisterArray(ForStatementSyntax fs)
    {
        if (fs.Declaration is not { Variables.Count: 1 } decl || decl.Variables[0].Initializer is not { } init
            || !_model.GetConstantValue(init.Value).HasValue
            || fs.Condition is not BinaryExpressionSyntax cond || !(cond.IsKind(SyntaxKind.LessThanExpression) || cond.IsKind(SyntaxKind.LessThanOrEqualExpression))
            || cond.Left is not IdentifierNameSyntax counter || counter.Identifier.ValueText != decl.Variables[0].Identifier.ValueText
            || !_model.GetConstantValue(cond.Right).HasValue
            || fs.Incrementors.Count != 1 || !(fs.Incrementors[0].IsKind(SyntaxKind.PostIncrementExpression) || fs.Incrementors[0].IsKind(SyntaxKind.PreIncrementExpression)))
        {
            return false;
        }
        return fs.Statement.DescendantNodesAndSelf().OfType<ElementAccessExpressionSyntax>()
            .Any(ea => ea.Expression is IdentifierNameSyntax id && _model.GetSymbolInfo(id).Symbol is { } s && _registerArrays.Contains(s));
    }

    private static int LineOf(SyntaxNode node) => node.GetLocation().GetLineSpan().StartLinePosition.Line + 1;

    private void StatementBody(StatementSyntax s, bool topLevel)
    {
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
                    CheckConvergent(es, isBarrier: true);
                    _unit.Facts.UsesBarriers = true;
                    _unit.Facts.BarrierStatements.Add(es);
                    Line("__syncthreads();");
                }
                else
                {
                    ExpressionStatement(es.Expression);
                }
                break;
            case IfStatementSyntax ifs:
                Line("if (" + Cond(ifs.Condition) + ")");
                Embedded(ifs.Statement);
                var elseClause = ifs.Else;
                while (elseClause is not null)
                {
                    _statementLine = LineOf(elseClause);
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
                        foreach (var v in decl.Variables)
                        {
                            CheckReservedName(v.Identifier.ValueText, v);
                            RejectUnsequenced(v.Initializer?.Value);
                        }
                        init = ct + " " + string.Join(", ", decl.Variables.Select(v =>
                            Names.Local(v.Identifier.ValueText) + (v.Initializer is null ? "" : " = " + Expr(v.Initializer.Value))));
                    }
                    else
                    {
                        init = string.Join(", ", fs.Initializers.Select(e => { RejectUnsequenced(e); return Expr(e, statementLevel: true); }));
                    }
                    string cond = fs.Condition is null ? "" : Cond(fs.Condition);
                    string inc = string.Join(", ", fs.Incrementors.Select(e => { RejectUnsequenced(e); return Expr(e, statementLevel: true); }));
                    // _Pragma on the loop's own line keeps the #line mapping exact.
                    Line((UnrollsRegisterArray(fs) ? "_Pragma(\"unroll\") " : "") + "for (" + init + "; " + cond + "; " + inc + ")");
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
                _statementLine = LineOf(ds.Condition);
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
                else if (NeedsSequencing(rs.Expression))
                {
                    OneLine(() => Nested(() => Line("return " + Sequence(rs.Expression) + ";")));
                    _evaluated.Clear();
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
                // An unchecked block at the top of the kernel is still its top level (shared memory may be declared there).
                Block(cs.Block, topLevel);
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
            CheckReservedName(local.Name, v);
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
            if (v.Initializer is { } init && NeedsSequencing(init.Value))
            {
                OneLine(() =>
                {
                    Line(ct + " " + name + ";");
                    Nested(() => Line(name + " = " + Sequence(init.Value) + ";"));
                });
                _evaluated.Clear();
                continue;
            }
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
            // Every DynamicShared<T>() is the same bytes on the GPU; the CPU gives each element type its own array.
            string elementName = element.ToDisplayString();
            if (_unit.DynamicSharedElement is { } first && first != elementName)
            {
                Report(DiagnosticDescriptors.DynamicSharedTypes, v, v.ToString(), elementName, first);
                return;
            }
            _unit.DynamicSharedElement = elementName;
            _unit.PreludeUse.Add("dynamic_shared");
            Line(ct + "* " + name + " = (" + ct + "*)ioct_dynamic_shared;");
            Line("const int " + Names.Length(name) + " = (int)(ioct_dynamic_shared_bytes() / sizeof(" + ct + "));");
            _arrayLengths[local] = Names.Length(name);
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
        _registerArrays.Add(local);
    }
}
