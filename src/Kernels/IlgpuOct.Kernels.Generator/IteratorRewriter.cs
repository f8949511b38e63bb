using System.Collections.Generic;
using System.Linq;
using System.Text.RegularExpressions;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using static Microsoft.CodeAnalysis.CSharp.SyntaxFactory;

namespace IlgpuOct.Kernels.Generator;

/// <summary>
/// Rewrites a kernel body into the host copy that <c>cpu-kernels</c> runs. For a kernel with barriers
/// or shuffles the copy is a C# iterator the CPU accelerator steps thread by thread: a barrier statement
/// becomes <c>yield return KernelYield.BarrierAt(line);</c>, a shuffle is hoisted before its statement as
/// deposit / <c>yield return KernelYield.WarpSync;</c> / result, <c>return;</c> becomes <c>yield break;</c>,
/// and stackalloc spans become arrays (ref structs cannot live across a yield). Every copy (iterator or
/// plain method) also routes shared-memory element accesses through the sanitizer hooks
/// (<c>ctx.SharedIndex</c>, <c>ctx.SharedStore</c>) and signed int/long arithmetic through
/// <c>CheckedArithmetic</c>, which reports overflow (undefined behaviour in CUDA C) with the expression.
/// </summary>
internal sealed class IteratorRewriter
{
    private const string Yield = "global::IlgpuOct.Kernels.KernelYield";
    private readonly KernelFacts _facts;
    private readonly SemanticModel _model;
    private readonly string _ctx;
    private readonly bool _iterator;
    private readonly HashSet<ISymbol> _sharedLocals = new(SymbolEqualityComparer.Default);
    private readonly HelperCopies _helpers;
    private int _temp;

    public IteratorRewriter(KernelFacts facts, SemanticModel model, string contextName, bool iterator)
        : this(facts, model, contextName, iterator, new HelperCopies(model.Compilation))
    {
    }

    private IteratorRewriter(KernelFacts facts, SemanticModel model, string contextName, bool iterator, HelperCopies helpers)
    {
        _facts = facts;
        _model = model;
        _ctx = contextName;
        _iterator = iterator;
        _helpers = helpers;
    }

    /// <summary>The host copy's body; checked copies of the helpers it calls follow as local functions.</summary>
    public string Rewrite(BlockSyntax body)
    {
        _helpers.KernelType = _model.GetEnclosingSymbol(body.SpanStart)?.ContainingType;
        var statements = RewriteStatements(body).ToList();
        statements.AddRange(_helpers.Emitted);
        return Block(statements).NormalizeWhitespace("    ", "\n").ToFullString();
    }

    private IEnumerable<StatementSyntax> RewriteStatements(BlockSyntax body)
    {
        foreach (var v in body.Statements.OfType<LocalDeclarationStatementSyntax>().SelectMany(ld => ld.Declaration.Variables))
        {
            if (v.Initializer?.Value is InvocationExpressionSyntax call
                && _model.GetSymbolInfo(call).Symbol is IMethodSymbol { Name: "Shared" or "DynamicShared" } m
                && TypeFacts.IsKernelContext(m.ContainingType)
                && _model.GetDeclaredSymbol(v) is { } local)
            {
                _sharedLocals.Add(local);
            }
        }
        return body.Statements.SelectMany(Statement).ToList();
    }

    private IEnumerable<StatementSyntax> Statement(StatementSyntax s)
    {
        switch (s)
        {
            case BlockSyntax b:
                return new[] { Block(b.Statements.SelectMany(Statement)) };
            case ExpressionStatementSyntax es when _facts.BarrierStatements.Contains(es):
                int line = es.GetLocation().GetLineSpan().StartLinePosition.Line + 1;
                return new[] { YieldStatement(SyntaxKind.YieldReturnStatement, ParseExpression($"{Yield}.BarrierAt({line})")) };
            case ExpressionStatementSyntax es when _facts.MmaStatements.TryGetValue(es, out string? deposit):
                // The lane's register arrays (arrays in the iterator copy) are handed over; the warp sync computes D into acc.
                var mma = (InvocationExpressionSyntax)es.Expression;
                return new[]
                {
                    ParseStatement($"{_ctx}.{deposit}({string.Join(", ", mma.ArgumentList.Arguments.Select(a => a.Expression.ToString()))});"),
                    YieldReturn("WarpSync"),
                };
            case ReturnStatementSyntax { Expression: null } when _iterator:
                return new StatementSyntax[] { YieldStatement(SyntaxKind.YieldBreakStatement) };
            case IfStatementSyntax ifs:
                return new[] { ifs.WithCondition(Expression(ifs.Condition)).WithStatement(Embedded(ifs.Statement)).WithElse(ifs.Else is null ? null : ifs.Else.WithStatement(Embedded(ifs.Else.Statement))) };
            case ForStatementSyntax fs:
                return new[]
                {
                    fs.WithDeclaration(fs.Declaration is null ? null : (VariableDeclarationSyntax)Checks().Visit(fs.Declaration))
                        .WithInitializers(SeparatedList(fs.Initializers.Select(Expression)))
                        .WithCondition(fs.Condition is null ? null : Expression(fs.Condition))
                        .WithIncrementors(SeparatedList(fs.Incrementors.Select(Expression)))
                        .WithStatement(Embedded(fs.Statement)),
                };
            case WhileStatementSyntax ws:
                return new[] { ws.WithCondition(Expression(ws.Condition)).WithStatement(Embedded(ws.Statement)) };
            case DoStatementSyntax ds:
                return new[] { ds.WithStatement(Embedded(ds.Statement)).WithCondition(Expression(ds.Condition)) };
            case CheckedStatementSyntax cs:
                return new[] { cs.WithBlock(Block(cs.Block.Statements.SelectMany(Statement))) };
            case LocalDeclarationStatementSyntax ld when _iterator && IsStackAllocSpan(ld):
                return new[] { StackAllocToArray(ld) };
            default:
                return HoistShuffles(s);
        }
    }

    private StatementSyntax Embedded(StatementSyntax s)
    {
        var list = Statement(s).ToList();
        return list.Count == 1 ? list[0] : Block(list);
    }

    private ChecksRewriter Checks(Dictionary<SyntaxNode, string>? shuffleTemps = null) => new(this, shuffleTemps);

    private ExpressionSyntax Expression(ExpressionSyntax e) => (ExpressionSyntax)Checks().Visit(e);

    private static StatementSyntax YieldReturn(string what) =>
        YieldStatement(SyntaxKind.YieldReturnStatement, ParseExpression(Yield + "." + what));

    private IEnumerable<StatementSyntax> HoistShuffles(StatementSyntax s)
    {
        var shuffles = s.DescendantNodes().OfType<InvocationExpressionSyntax>().Where(_facts.Shuffles.ContainsKey).ToList();
        var result = new List<StatementSyntax>();
        var temps = new Dictionary<SyntaxNode, string>();
        foreach (var call in shuffles)
        {
            var (mode, type) = _facts.Shuffles[call];
            var args = call.ArgumentList.Arguments;
            string temp = "__shfl" + _temp++;
            result.Add(ParseStatement($"{_ctx}.ShuffleDeposit<{type}>({Expression(args[0].Expression)}, global::IlgpuOct.Kernels.ShuffleMode.{mode}, {Expression(args[1].Expression)});"));
            result.Add(YieldReturn("WarpSync"));
            result.Add(ParseStatement($"{type} {temp} = {_ctx}.ShuffleResult<{type}>();"));
            temps[call] = temp;
        }
        result.Add((StatementSyntax)Checks(temps).Visit(s));
        return result;
    }

    private bool IsStackAllocSpan(LocalDeclarationStatementSyntax ld) =>
        ld.Declaration.Variables.Any(v => v.Initializer?.Value is StackAllocArrayCreationExpressionSyntax);

    private StatementSyntax StackAllocToArray(LocalDeclarationStatementSyntax ld)
    {
        var v = ld.Declaration.Variables[0];
        var creation = (StackAllocArrayCreationExpressionSyntax)v.Initializer!.Value;
        var arrayType = (ArrayTypeSyntax)creation.Type;
        string element = _model.GetTypeInfo(arrayType.ElementType).Type?.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat) ?? arrayType.ElementType.ToString();
        return ParseStatement($"{element}[] {v.Identifier.ValueText} = new {element}[{Expression(arrayType.RankSpecifiers[0].Sizes[0])}];");
    }

    /// <summary>
    /// Rewrites the expressions of one statement of the original syntax (the semantic model answers
    /// for original nodes only): shared-memory accesses through the sanitizer hooks, signed arithmetic
    /// through CheckedArithmetic, hoisted shuffles by their temporaries.
    /// </summary>
    private sealed class ChecksRewriter : CSharpSyntaxRewriter
    {
        private const string Checked = "global::IlgpuOct.Kernels.CheckedArithmetic";
        private const string Access = "global::IlgpuOct.Kernels.SharedAccess";
        private readonly IteratorRewriter _owner;
        private readonly Dictionary<SyntaxNode, string>? _shuffleTemps;

        public ChecksRewriter(IteratorRewriter owner, Dictionary<SyntaxNode, string>? shuffleTemps)
        {
            _owner = owner;
            _shuffleTemps = shuffleTemps;
        }

        private SemanticModel Model => _owner._model;

        public override SyntaxNode? VisitInvocationExpression(InvocationExpressionSyntax node)
        {
            if (_shuffleTemps is not null && _shuffleTemps.TryGetValue(node, out string? temp))
            {
                return IdentifierName(temp);
            }
            var visited = (InvocationExpressionSyntax)base.VisitInvocationExpression(node)!;
            return Model.GetSymbolInfo(node).Symbol is IMethodSymbol method && _owner._helpers.CopyOf(method, _owner) is { } copy
                ? visited.WithExpression(IdentifierName(copy))
                : visited;
        }

        public override SyntaxNode? VisitElementAccessExpression(ElementAccessExpressionSyntax node)
        {
            var visited = (ElementAccessExpressionSyntax)base.VisitElementAccessExpression(node)!;
            if (!IsShared(node))
            {
                return visited;
            }
            string access = node.Parent switch
            {
                AssignmentExpressionSyntax a when a.Left == node => "ReadWrite", // compound (simple = is a SharedStore)
                PrefixUnaryExpressionSyntax or PostfixUnaryExpressionSyntax => "ReadWrite",
                ArgumentSyntax arg when arg.RefKindKeyword.IsKind(SyntaxKind.RefKeyword) => "Atomic",
                _ => "Read",
            };
            string view = node.Expression.ToString();
            var index = visited.ArgumentList.Arguments[0].Expression;
            return visited.WithArgumentList(BracketedArgumentList(SingletonSeparatedList(Argument(
                ParseExpression($"{_owner._ctx}.SharedIndex({view}, {index}, {Access}.{access}, {Literal(view)})")))));
        }

        public override SyntaxNode? VisitAssignmentExpression(AssignmentExpressionSyntax node)
        {
            if (node.IsKind(SyntaxKind.SimpleAssignmentExpression) && node.Left is ElementAccessExpressionSyntax left && IsShared(left))
            {
                string view = left.Expression.ToString();
                string element = Model.GetTypeInfo(left).Type!.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat);
                var index = (ExpressionSyntax)Visit(left.ArgumentList.Arguments[0].Expression);
                var value = (ExpressionSyntax)Visit(node.Right);
                return ParseExpression($"{_owner._ctx}.SharedStore<{element}>({view}, {index}, {value}, {Literal(view)})");
            }
            string? op = node.Kind() switch
            {
                SyntaxKind.AddAssignmentExpression => "Add",
                SyntaxKind.SubtractAssignmentExpression => "Subtract",
                SyntaxKind.MultiplyAssignmentExpression => "Multiply",
                SyntaxKind.DivideAssignmentExpression => "Divide",
                SyntaxKind.ModuloAssignmentExpression => "Remainder",
                _ => null,
            };
            var visited = (AssignmentExpressionSyntax)base.VisitAssignmentExpression(node)!;
            var target = Model.GetTypeInfo(node.Left).Type;
            var operand = Model.GetTypeInfo(node.Right).Type;
            if (op is null || !IsSigned(target) || operand is null)
            {
                return visited;
            }
            // C#'s operator type of target op value for an int or long target.
            SpecialType operatorType = target!.SpecialType == SpecialType.System_Int64 ? SpecialType.System_Int64
                : operand.SpecialType switch
                {
                    SpecialType.System_Int32 or SpecialType.System_Byte or SpecialType.System_SByte or SpecialType.System_Int16 or SpecialType.System_UInt16 => SpecialType.System_Int32,
                    SpecialType.System_UInt32 or SpecialType.System_Int64 => SpecialType.System_Int64,
                    _ => SpecialType.None,
                };
            if (operatorType == SpecialType.None)
            {
                return visited;
            }
            string text = Text(node);
            if (node.Left is IdentifierNameSyntax)
            {
                string call = $"{Checked}.{op}({visited.Left}, {visited.Right}, {text})";
                return AssignmentExpression(SyntaxKind.SimpleAssignmentExpression, visited.Left,
                    ParseExpression(operatorType == target.SpecialType ? call : $"({Keyword(target)}){call}"));
            }
            return operatorType == target.SpecialType
                ? ParseExpression($"{Checked}.Compound(ref {visited.Left}, global::IlgpuOct.Kernels.ArithmeticOp.{op}, {visited.Right}, {text})")
                : visited;
        }

        public override SyntaxNode? VisitBinaryExpression(BinaryExpressionSyntax node)
        {
            var visited = (BinaryExpressionSyntax)base.VisitBinaryExpression(node)!;
            string? op = node.Kind() switch
            {
                SyntaxKind.AddExpression => "Add",
                SyntaxKind.SubtractExpression => "Subtract",
                SyntaxKind.MultiplyExpression => "Multiply",
                SyntaxKind.DivideExpression => "Divide",
                SyntaxKind.ModuloExpression => "Remainder",
                _ => null,
            };
            if (op is null || !IsSigned(Model.GetTypeInfo(node).Type) || Model.GetConstantValue(node).HasValue)
            {
                return visited;
            }
            return ParseExpression($"{Checked}.{op}({visited.Left}, {visited.Right}, {Text(node)})");
        }

        public override SyntaxNode? VisitPrefixUnaryExpression(PrefixUnaryExpressionSyntax node)
        {
            var visited = (PrefixUnaryExpressionSyntax)base.VisitPrefixUnaryExpression(node)!;
            if (!IsSigned(Model.GetTypeInfo(node).Type) || Model.GetConstantValue(node).HasValue)
            {
                return visited;
            }
            string text = Text(node);
            switch (node.Kind())
            {
                case SyntaxKind.UnaryMinusExpression:
                    return ParseExpression($"{Checked}.Negate({visited.Operand}, {text})");
                case SyntaxKind.PreIncrementExpression:
                case SyntaxKind.PreDecrementExpression:
                    if (IsBoundedLoopStep(node, node.Operand, node.IsKind(SyntaxKind.PreIncrementExpression)))
                    {
                        return visited;
                    }
                    string delta = node.IsKind(SyntaxKind.PreIncrementExpression) ? "1" : "-1";
                    if (node.Operand is not IdentifierNameSyntax)
                    {
                        return ParseExpression($"{Checked}.PreStep(ref {visited.Operand}, {delta}, {text})");
                    }
                    string assign = $"{visited.Operand} = {Checked}.Add({visited.Operand}, {delta}, {text})";
                    return ParseExpression(ValueUnused(node) ? assign : "(" + assign + ")");
                default:
                    return visited;
            }
        }

        public override SyntaxNode? VisitPostfixUnaryExpression(PostfixUnaryExpressionSyntax node)
        {
            var visited = (PostfixUnaryExpressionSyntax)base.VisitPostfixUnaryExpression(node)!;
            if (!IsSigned(Model.GetTypeInfo(node).Type) || node.Kind() is not (SyntaxKind.PostIncrementExpression or SyntaxKind.PostDecrementExpression)
                || IsBoundedLoopStep(node, node.Operand, node.IsKind(SyntaxKind.PostIncrementExpression)))
            {
                return visited;
            }
            string text = Text(node);
            string delta = node.IsKind(SyntaxKind.PostIncrementExpression) ? "1" : "-1";
            return ValueUnused(node) && node.Operand is IdentifierNameSyntax
                ? ParseExpression($"{visited.Operand} = {Checked}.Add({visited.Operand}, {delta}, {text})")
                : ParseExpression($"{Checked}.PostStep(ref {visited.Operand}, {delta}, {text})");
        }

        // `for (...; i < bound; i++)` (or `i > bound; i--`) compared in i's own type, i not written in the
        // body: i stays below bound before the step, so the step cannot overflow and needs no check (hot loops).
        private bool IsBoundedLoopStep(ExpressionSyntax node, ExpressionSyntax operand, bool increment)
        {
            if (node.Parent is not ForStatementSyntax f || !f.Incrementors.Contains(node) || operand is not IdentifierNameSyntax
                || Model.GetSymbolInfo(operand).Symbol is not ILocalSymbol variable || f.Condition is not BinaryExpressionSyntax c)
            {
                return false;
            }
            bool Is(ExpressionSyntax e) => e is IdentifierNameSyntax && SymbolEqualityComparer.Default.Equals(Model.GetSymbolInfo(e).Symbol, variable)
                && SymbolEqualityComparer.Default.Equals(Model.GetTypeInfo(e).ConvertedType, variable.Type);
            bool bounded = increment
                ? c.IsKind(SyntaxKind.LessThanExpression) && Is(c.Left) || c.IsKind(SyntaxKind.GreaterThanExpression) && Is(c.Right)
                : c.IsKind(SyntaxKind.GreaterThanExpression) && Is(c.Left) || c.IsKind(SyntaxKind.LessThanExpression) && Is(c.Right);
            return bounded && Model.AnalyzeDataFlow(f.Statement) is { Succeeded: true } flow && !flow.WrittenInside.Contains(variable, SymbolEqualityComparer.Default);
        }

        // A statement of its own (or a for incrementor): the expression's value is not used.
        private static bool ValueUnused(ExpressionSyntax node) =>
            node.Parent is ExpressionStatementSyntax || node.Parent is ForStatementSyntax f && f.Incrementors.Contains(node);

        private bool IsShared(ElementAccessExpressionSyntax node) =>
            Model.GetSymbolInfo(node.Expression).Symbol is ILocalSymbol local && _owner._sharedLocals.Contains(local);

        private static bool IsSigned(ITypeSymbol? type) => type?.SpecialType is SpecialType.System_Int32 or SpecialType.System_Int64;

        private static string Keyword(ITypeSymbol type) => type.SpecialType == SpecialType.System_Int64 ? "long" : "int";

        // The expression as written, on one line, with its source line, as a C# string literal.
        private static string Text(SyntaxNode node)
        {
            int line = node.GetLocation().GetLineSpan().StartLinePosition.Line + 1;
            return Literal(Regex.Replace(node.ToString(), @"\s+", " ") + " (line " + line.ToString(System.Globalization.CultureInfo.InvariantCulture) + ")");
        }

        private static string Literal(string s) => SymbolDisplay.FormatLiteral(s, quote: true);
    }

    /// <summary>
    /// Checked copies of the static helpers a kernel calls (declared in the kernel's own type, so the
    /// copy, a local function of the host copy, sees the same members), with the same rewriting.
    /// </summary>
    private sealed class HelperCopies
    {
        private readonly Compilation _compilation;
        private readonly Dictionary<IMethodSymbol, string> _names = new(SymbolEqualityComparer.Default);

        public HelperCopies(Compilation compilation) => _compilation = compilation;

        public INamedTypeSymbol? KernelType { get; set; }

        public List<StatementSyntax> Emitted { get; } = new();

        public string? CopyOf(IMethodSymbol method, IteratorRewriter caller)
        {
            if (_names.TryGetValue(method, out string? name))
            {
                return name;
            }
            if (!method.IsStatic || !SymbolEqualityComparer.Default.Equals(method.ContainingType, KernelType)
                || method.DeclaringSyntaxReferences.Length != 1
                || method.DeclaringSyntaxReferences[0].GetSyntax() is not MethodDeclarationSyntax declaration
                || method.GetAttributes().Any(a => a.AttributeClass?.Name == "KernelAttribute"))
            {
                return null;
            }
            name = "__checked_" + method.Name + "_" + _names.Count.ToString(System.Globalization.CultureInfo.InvariantCulture);
            _names[method] = name;
            var rewriter = new IteratorRewriter(caller._facts, _compilation.GetSemanticModel(declaration.SyntaxTree), caller._ctx, iterator: false, this);
            BlockSyntax body = declaration.Body is not null
                ? Block(rewriter.RewriteStatements(declaration.Body))
                : Block(method.ReturnsVoid
                    ? ExpressionStatement(rewriter.Expression(declaration.ExpressionBody!.Expression))
                    : ReturnStatement(rewriter.Expression(declaration.ExpressionBody!.Expression)));
            string parameters = string.Join(", ", method.Parameters.Select(p => p.Type.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat) + " " + p.Name));
            string returns = method.ReturnsVoid ? "void" : method.ReturnType.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat);
            Emitted.Add(LocalFunctionStatement(ParseTypeName(returns), name)
                .WithModifiers(TokenList(Token(SyntaxKind.StaticKeyword)))
                .WithParameterList(ParseParameterList("(" + parameters + ")"))
                .WithBody(body));
            return name;
        }
    }
}
