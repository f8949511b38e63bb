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

    public CudaTranslator(Compilation compilation, CancellationToken cancellation)
    {
        _compilation = compilation;
        _cancellation = cancellation;
    }

    public List<DiagnosticInfo> Diagnostics { get; } = new();

    public KernelFacts Facts { get; } = new();

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
        var model = _compilation.GetSemanticModel(syntax.SyntaxTree);
        var function = new FunctionTranslator(this, model, kernel, isKernel: true);
        string parameters = function.ParameterList(syntax, skipFirst: true);
        string body = function.Body(syntax);
        _callStack.RemoveAt(_callStack.Count - 1);

        var sb = new StringBuilder();
        sb.Append(CudaPrelude.For(PreludeUse));
        foreach (var helper in _helperBodies)
        {
            sb.Append(helper).Append('\n');
        }
        sb.Append("extern \"C\" __global__ void ").Append(entryPoint).Append('(').Append(parameters).Append(")\n");
        sb.Append(body);
        return (sb.ToString(), parameters);
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
        _helperNames[method] = name;

        _callStack.Add(method);
        var model = _compilation.GetSemanticModel(syntax.SyntaxTree);
        var function = new FunctionTranslator(this, model, method, isKernel: false);
        string returnType = method.ReturnsVoid ? "void" : function.ScalarType(method.ReturnType, syntax.ReturnType);
        string parameters = function.ParameterList(syntax, skipFirst: false);
        string body = function.Body(syntax);
        _callStack.RemoveAt(_callStack.Count - 1);
        _helperBodies.Add("static __device__ " + returnType + " " + name + "(" + parameters + ")\n" + body);
        return name;
    }

    public CancellationToken Cancellation => _cancellation;
}

/// <summary>Translation state of one function (kernel or helper).</summary>
internal sealed class FunctionTranslator
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

    // ---------------------------------------------------------------- statements

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

    // ---------------------------------------------------------------- expressions

    public string Expr(ExpressionSyntax e, bool statementLevel = false)
    {
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
                    return "((" + ct + ")" + Paren(Expr(cast.Expression)) + ")";
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
        return "(" + Expr(b.Left) + " " + op + " " + Expr(b.Right) + ")";
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
        string text = op == "%=" && FloatFunction(a.Left, "fmod") is { } fmod
            ? left + " = " + fmod + "(" + left + ", " + Expr(a.Right) + ")"
            : left + " " + op + " " + Expr(a.Right);
        return statementLevel ? text : "(" + text + ")";
    }

    // ---------------------------------------------------------------- calls

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
                if (paramType is not null && TypeFacts.ViewElement(paramType) is not null)
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
        if (!_isKernel)
        {
            Report(DiagnosticDescriptors.SyncInHelper, inv, inv.ToString(), _method.Name);
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
        _unit.Facts.UsesShuffles = true;
        string mode = m.Name switch { "ShuffleDown" => "Down", "ShuffleUp" => "Up", "ShuffleXor" => "Xor", _ => "Index" };
        _unit.Facts.Shuffles[inv] = (mode, elementType.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat));
        return shfl + "(0xffffffffu, " + Expr(args[0].Expression) + ", " + Expr(args[1].Expression) + ")";
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
                case InvocationExpressionSyntax outer when IsShuffle(outer):
                    return false;
                case ExpressionStatementSyntax es:
                    return !HasInnerSideEffects(es, es.Expression);
                case LocalDeclarationStatementSyntax ld:
                    return !HasInnerSideEffects(ld, null);
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
}

/// <summary>Names: C-safe identifiers and containing-type chains.</summary>
internal static class Names
{
    private static readonly HashSet<string> Reserved = new(StringComparer.Ordinal)
    {
        "auto", "register", "signed", "unsigned", "union", "typedef", "inline", "restrict", "template", "typename", "friend",
        "mutable", "export", "asm", "and", "or", "not", "xor", "bitand", "bitor", "compl", "not_eq", "or_eq", "xor_eq", "and_eq",
        "constexpr", "decltype", "noexcept", "nullptr", "static_assert", "thread_local", "alignas", "alignof", "wchar_t",
        "char16_t", "char32_t", "dynamic_cast", "reinterpret_cast", "static_cast", "const_cast", "typeid", "main",
        "threadIdx", "blockIdx", "blockDim", "gridDim", "warpSize", "min", "max", "abs", "signbit", "isnan", "isinf",
    };

    public static string Local(string name)
    {
        var s = Sanitize(name);
        return Reserved.Contains(s) || s.StartsWith("ioct_", StringComparison.Ordinal) || s.StartsWith("__", StringComparison.Ordinal) ? s + "_" : s;
    }

    public static string Sanitize(string name)
    {
        var sb = new StringBuilder(name.Length);
        foreach (char ch in name)
        {
            if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_')
            {
                sb.Append(ch);
            }
            else
            {
                sb.Append("_u").Append(((int)ch).ToString("x4", CultureInfo.InvariantCulture));
            }
        }
        return sb.ToString();
    }

    public static IEnumerable<string> ContainingTypes(INamedTypeSymbol type)
    {
        var chain = new List<string>();
        for (var t = type; t is not null; t = t.ContainingType)
        {
            chain.Insert(0, t.Name);
        }
        return chain;
    }
}

internal static class TypeFacts
{
    public static bool IsKernelContext(ITypeSymbol? t) => t?.ToDisplayString() == CudaTranslator.KernelsNamespace + ".KernelContext";

    public static ITypeSymbol? ViewElement(ITypeSymbol t) =>
        t is INamedTypeSymbol { IsGenericType: true, Name: "View", TypeArguments.Length: 1 } n && n.ContainingNamespace.ToDisplayString() == CudaTranslator.KernelsNamespace
            ? n.TypeArguments[0] : null;

    public static ITypeSymbol? SpanElement(ITypeSymbol t) =>
        t is INamedTypeSymbol { IsGenericType: true, Name: "Span", TypeArguments.Length: 1 } n && n.ContainingNamespace.ToDisplayString() == "System"
            ? n.TypeArguments[0] : null;

    public static string? ScalarCType(ITypeSymbol t) => t.SpecialType switch
    {
        SpecialType.System_Single => "float",
        SpecialType.System_Double => "double",
        SpecialType.System_Int32 => "int",
        SpecialType.System_UInt32 => "unsigned int",
        SpecialType.System_Int64 => "long long",
        SpecialType.System_UInt64 => "unsigned long long",
        SpecialType.System_Byte => "unsigned char",
        SpecialType.System_Boolean => "bool",
        _ => null,
    };

    /// <summary>Kernel scalar parameters (what the launcher can pack).</summary>
    public static string? ParameterCType(ITypeSymbol t) => t.SpecialType switch
    {
        SpecialType.System_Single or SpecialType.System_Double or SpecialType.System_Int32 or SpecialType.System_UInt32
            or SpecialType.System_Int64 or SpecialType.System_Boolean => ScalarCType(t),
        _ => null,
    };

    public static string? ViewElementCType(ITypeSymbol t) => t.SpecialType switch
    {
        SpecialType.System_Single or SpecialType.System_Double or SpecialType.System_Int32 or SpecialType.System_UInt32
            or SpecialType.System_Int64 or SpecialType.System_Byte => ScalarCType(t),
        _ => null,
    };

    public static int SizeOf(ITypeSymbol t) => t.SpecialType switch
    {
        SpecialType.System_Double or SpecialType.System_Int64 or SpecialType.System_UInt64 => 8,
        SpecialType.System_Byte or SpecialType.System_Boolean => 1,
        _ => 4,
    };
}

/// <summary>Constant values as CUDA C literals of the target type (exact round-trip text).</summary>
internal static class Literals
{
    public static string? Format(object value, ITypeSymbol? target)
    {
        var special = target?.SpecialType ?? SpecialType.None;
        try
        {
            switch (special)
            {
                case SpecialType.System_Single:
                    return Float(Convert.ToSingle(value, CultureInfo.InvariantCulture));
                case SpecialType.System_Double:
                    return Double(Convert.ToDouble(value, CultureInfo.InvariantCulture));
                case SpecialType.System_Int32:
                    {
                        int v = Convert.ToInt32(value, CultureInfo.InvariantCulture);
                        return v == int.MinValue ? "(-2147483647 - 1)" : v < 0 ? "(" + v.ToString(CultureInfo.InvariantCulture) + ")" : v.ToString(CultureInfo.InvariantCulture);
                    }
                case SpecialType.System_UInt32:
                    return Convert.ToUInt32(value, CultureInfo.InvariantCulture).ToString(CultureInfo.InvariantCulture) + "u";
                case SpecialType.System_Int64:
                    {
                        long v = Convert.ToInt64(value, CultureInfo.InvariantCulture);
                        return v == long.MinValue ? "(-9223372036854775807LL - 1LL)" : v < 0 ? "(" + v.ToString(CultureInfo.InvariantCulture) + "LL)" : v.ToString(CultureInfo.InvariantCulture) + "LL";
                    }
                case SpecialType.System_UInt64:
                    return Convert.ToUInt64(value, CultureInfo.InvariantCulture).ToString(CultureInfo.InvariantCulture) + "ULL";
                case SpecialType.System_Byte:
                    return "((unsigned char)" + Convert.ToByte(value, CultureInfo.InvariantCulture).ToString(CultureInfo.InvariantCulture) + ")";
                case SpecialType.System_Boolean:
                    return (bool)value ? "true" : "false";
                default:
                    return null;
            }
        }
        catch (InvalidCastException)
        {
            return null;
        }
        catch (OverflowException)
        {
            return null;
        }
    }

    public static string Float(float v)
    {
        if (float.IsNaN(v))
        {
            return "__int_as_float(0x7fffffff)";
        }
        if (float.IsPositiveInfinity(v))
        {
            return "__int_as_float(0x7f800000)";
        }
        if (float.IsNegativeInfinity(v))
        {
            return "__int_as_float((int)0xff800000)";
        }
        string s = v.ToString("R", CultureInfo.InvariantCulture);
        if (s.IndexOfAny(new[] { '.', 'E', 'e' }) < 0)
        {
            s += ".0";
        }
        s += "f";
        return v < 0 || s.StartsWith("-", StringComparison.Ordinal) ? "(" + s + ")" : s;
    }

    public static string Double(double v)
    {
        if (double.IsNaN(v))
        {
            return "__longlong_as_double(0x7ff8000000000000LL)";
        }
        if (double.IsPositiveInfinity(v))
        {
            return "__longlong_as_double(0x7ff0000000000000LL)";
        }
        if (double.IsNegativeInfinity(v))
        {
            return "__longlong_as_double((long long)0xfff0000000000000ULL)";
        }
        string s = v.ToString("R", CultureInfo.InvariantCulture);
        if (s.IndexOfAny(new[] { '.', 'E', 'e' }) < 0)
        {
            s += ".0";
        }
        return v < 0 || s.StartsWith("-", StringComparison.Ordinal) ? "(" + s + ")" : s;
    }
}
