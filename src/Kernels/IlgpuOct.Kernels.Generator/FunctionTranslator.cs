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

    /// <summary>stackalloc spans and Span parameters: per-thread arrays that must stay in registers.</summary>
    private readonly HashSet<ISymbol> _registerArrays = new(SymbolEqualityComparer.Default);
    private readonly StringBuilder _out = new();
    private int _indent;

    // #line bookkeeping: the C# file name (empty: no directives), the C# line of the statement being
    // emitted, and the line NVRTC will attribute to the next emitted line.
    private readonly string _file;
    private int _statementLine;
    private int _presumedLine;
    private bool _singleLine;

    // The kernel's body and, once a barrier or shuffle needs it, its divergence analysis.
    private BlockSyntax? _body;
    private Divergence? _divergence;

    // A helper's synchronisation facts (null for the kernel), filled while its body is translated.
    private readonly HelperSync? _sync;

    public FunctionTranslator(CudaTranslator unit, SemanticModel model, IMethodSymbol method, bool isKernel, HelperSync? sync = null)
    {
        _unit = unit;
        _sync = sync;
        _model = model;
        _method = method;
        _isKernel = isKernel;
        _file = LineDirectiveFile(model.SyntaxTree.FilePath);
    }

    /// <summary>The file name as a #line string literal: the name alone, so the text does not depend on the checkout's path.</summary>
    private static string LineDirectiveFile(string path)
    {
        string name = path.Substring(path.LastIndexOfAny(new[] { '/', '\\' }) + 1);
        return name.Replace("\\", "\\\\").Replace("\"", "\\\"");
    }

    /// <summary>The #line directive that maps a function's signature line to its C# declaration ("" without a file).</summary>
    public string SignatureDirective(MethodDeclarationSyntax syntax)
    {
        if (_file.Length == 0)
        {
            return "";
        }
        int line = syntax.Identifier.GetLocation().GetLineSpan().StartLinePosition.Line + 1;
        _statementLine = line;
        _presumedLine = line + 1;
        return "#line " + line.ToString(CultureInfo.InvariantCulture) + " \"" + _file + "\"\n";
    }

    private void Report(DiagnosticDescriptor d, SyntaxNode node, params string[] args) => _unit.Report(d, node, args);

    /// <summary>True for a helper with a Span parameter (emitted __forceinline__).</summary>
    public bool TakesRegisterArrays { get; private set; }

    // ---------------------------------------------------------------- signature

    public string ParameterList(MethodDeclarationSyntax syntax, bool skipFirst)
    {
        var parts = new List<string>();
        if (skipFirst && _method.Parameters.Length > 0 && syntax.ParameterList.Parameters.Count > 0)
        {
            CheckReservedName(_method.Parameters[0].Name, syntax.ParameterList.Parameters[0], parameter: true);
        }
        for (int i = skipFirst ? 1 : 0; i < _method.Parameters.Length; i++)
        {
            var p = _method.Parameters[i];
            SyntaxNode at = i < syntax.ParameterList.Parameters.Count ? syntax.ParameterList.Parameters[i] : syntax;
            string name = Names.Local(p.Name);
            CheckReservedName(p.Name, at, parameter: _isKernel);
            if (p.RefKind != RefKind.None || p.IsParams)
            {
                Report(DiagnosticDescriptors.ParameterType, at, p.Name, p.Type.ToDisplayString());
                continue;
            }
            if (!_isKernel && TypeFacts.IsKernelContext(p.Type))
            {
                // The helper reads the same built-ins (threadIdx, ...) as the kernel: no CUDA parameter.
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
                parts.Add(c + "* " + name + ", int " + Names.Length(name));
                _arrayLengths[p] = Names.Length(name);
            }
            else if (!_isKernel && TypeFacts.SpanElement(p.Type) is { } spanElement && TypeFacts.ScalarCType(spanElement) is { } spanC)
            {
                // A per-thread register array passed to a helper: a pointer to the caller's array (the helper is
                // force-inlined, so the array stays in registers) and its length.
                parts.Add(spanC + "* " + name + ", int " + Names.Length(name));
                _arrayLengths[p] = Names.Length(name);
                _registerArrays.Add(p);
                TakesRegisterArrays = true;
            }
            else if (!skipFirst && TypeFacts.IsFloat4(p.Type))
            {
                parts.Add(_unit.Use("float4", TypeFacts.Float4CType) + " " + name);
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

    /// <summary>
    /// The generated C#'s own names (IOCT0030): the launcher's __ctx and __slots (next to the kernel's
    /// parameters) and the CPU copy's shuffle temporaries __shfl0, __shfl1, ... (in a kernel with shuffles).
    /// </summary>
    private void CheckReservedName(string name, SyntaxNode at, bool parameter = false)
    {
        if (parameter && name is "__ctx" or "__slots")
        {
            Report(DiagnosticDescriptors.ReservedName, at, name);
        }
        if (name.StartsWith("__shfl", StringComparison.Ordinal) && name.Length > 6 && name.Skip(6).All(char.IsDigit))
        {
            _unit.ShuffleTemporaryNames.Add((name, at));
        }
    }

    public string ScalarType(ITypeSymbol type, SyntaxNode at)
    {
        if (TypeFacts.IsFloat4(type))
        {
            return _unit.Use("float4", TypeFacts.Float4CType);
        }
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
            _body = block;
            Block(block, topLevel: true);
        }
        else if (syntax.ExpressionBody is { } arrow)
        {
            Line("{");
            _indent++;
            _statementLine = LineOf(arrow.Expression);
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
