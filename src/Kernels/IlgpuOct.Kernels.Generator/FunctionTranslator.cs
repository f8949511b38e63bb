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

/// <summary>Translation state of one function (kernel or helper).</summary>
internal sealed partial class FunctionTranslator
{
    private readonly CudaTranslator _unit;
    private readonly SemanticModel _model;
    private readonly IMethodSymbol _method;
    private readonly bool _isKernel;
    private readonly Dictionary<ISymbol, string> _arrayLengths = new(SymbolEqualityComparer.Default);
    private readonly StringBuilder _out = new();
    private int _indent;

    public FunctionTranslator(CudaTranslator unit, SemanticModel model, IMethodSymbol method, bool isKernel)
    {
        _unit = unit;
        _model = model;
        _method = method;
        _isKernel = isKernel;
    }

    private void Report(DiagnosticDescriptor d, SyntaxNode node, params string[] args) => _unit.Report(d, node, args);

    // ---------------------------------------------------------------- signature

    public string ParameterList(MethodDeclarationSyntax syntax, bool skipFirst)
    {
        var parts = new List<string>();
        for (int i = skipFirst ? 1 : 0; i < _method.Parameters.Length; i++)
        {
            var p = _method.Parameters[i];
            SyntaxNode at = i < syntax.ParameterList.Parameters.Count ? syntax.ParameterList.Parameters[i] : syntax;
            string name = Names.Local(p.Name);
            if (p.RefKind != RefKind.None || p.IsParams)
            {
                Report(DiagnosticDescriptors.ParameterType, at, p.Name, p.Type.ToDisplayString());
                continue;
            }
            if (TypeFacts.ViewElement(p.Type) is { } element)
            {
                string? c = TypeFacts.ViewElementCType(element);
                if (c is null)
                {
                    Report(DiagnosticDescriptors.ParameterType, at, p.Name, p.Type.ToDisplayString());
                    continue;
                }
                parts.Add(c + "* " + name + ", int " + name + "_length");
                _arrayLengths[p] = name + "_length";
            }
            else if ((skipFirst ? TypeFacts.ParameterCType(p.Type) : TypeFacts.ScalarCType(p.Type)) is { } scalar)
            {
                parts.Add(scalar + " " + name);
            }
            else
            {
                Report(DiagnosticDescriptors.ParameterType, at, p.Name, p.Type.ToDisplayString());
            }
        }
        return string.Join(", ", parts);
    }

    public string ScalarType(ITypeSymbol type, SyntaxNode at)
    {
        var c = TypeFacts.ScalarCType(type);
        if (c is null)
        {
            Report(DiagnosticDescriptors.UnsupportedType, at, type.ToDisplayString());
            return "int";
        }
        return c;
    }

    public string Body(MethodDeclarationSyntax syntax)
    {
        if (syntax.Body is { } block)
        {
            Block(block, topLevel: true);
        }
        else if (syntax.ExpressionBody is { } arrow)
        {
            Line("{");
            _indent++;
            if (_method.ReturnsVoid)
            {
                Line(Expr(arrow.Expression, statementLevel: true) + ";");
            }
            else
            {
                Line("return " + Expr(arrow.Expression) + ";");
            }
            _indent--;
            Line("}");
        }
        else
        {
            Line("{");
            Line("}");
        }
        return _out.ToString();
    }

}
