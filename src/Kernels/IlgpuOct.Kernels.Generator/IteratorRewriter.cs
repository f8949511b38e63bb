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

    // In the copy of a synchronising helper that returns a value: the StrongBox parameter that receives it.
    private readonly string? _result;

    // A copy of a helper declared outside the kernel's type: names of that type are written fully qualified.
    private readonly bool _foreign;

    // A copy of a synchronising helper with a KernelContext: its view parameters may be shared memory.
    private bool _hookViews;

    public IteratorRewriter(KernelFacts facts, SemanticModel model, string contextName, bool iterator)
        : this(facts, model, contextName, iterator, new HelperCopies(model.Compilation), null, false)
    {
    }

    private IteratorRewriter(KernelFacts facts, SemanticModel model, string contextName, bool iterator, HelperCopies helpers, string? result, bool foreign)
    {
        _facts = facts;
        _model = model;
        _ctx = contextName;
        _iterator = iterator;
        _helpers = helpers;
        _result = result;
        _foreign = foreign;
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
            case ReturnStatementSyntax { Expression: { } value } when _result is not null:
                // A synchronising helper's copy is an iterator: the value goes to the caller's box.
                var hoisted = Hoist(s, out var returnTemps);
                hoisted.Add(ParseStatement($"{_result}.Value = {Checks(returnTemps).Visit(value)};"));
                hoisted.Add(YieldStatement(SyntaxKind.YieldBreakStatement));
                return new[] { Block(hoisted) };
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
        var result = Hoist(s, out var temps);
        // A call of a void synchronising helper, hoisted, leaves nothing of its statement.
        if (!(s is ExpressionStatementSyntax { Expression: InvocationExpressionSyntax call } && temps.TryGetValue(call, out string? temp) && temp.Length == 0))
        {
            result.Add((StatementSyntax)Checks(temps).Visit(s));
        }
        return result;
    }

    /// <summary>
    /// The statements that run the shuffles and synchronising helper calls of <paramref name="s"/> before
    /// it (their positions guarantee they are evaluated unconditionally, IOCT0018), and the temporaries
    /// that replace them ("" for a void helper). A helper's copy is an iterator whose yields pass through.
    /// </summary>
    private List<StatementSyntax> Hoist(SyntaxNode s, out Dictionary<SyntaxNode, string> temps)
    {
        var result = new List<StatementSyntax>();
        temps = new Dictionary<SyntaxNode, string>();
        foreach (var call in s.DescendantNodes().OfType<InvocationExpressionSyntax>())
        {
            var args = call.ArgumentList.Arguments;
            if (_facts.Shuffles.TryGetValue(call, out var shuffle))
            {
                var (mode, type) = shuffle;
                string temp = _helpers.Temporary("__shfl");
                result.Add(ParseStatement($"{_ctx}.ShuffleDeposit<{type}>({Expression(args[0].Expression)}, global::IlgpuOct.Kernels.ShuffleMode.{mode}, {Expression(args[1].Expression)});"));
                result.Add(YieldReturn("WarpSync"));
                result.Add(ParseStatement($"{type} {temp} = {_ctx}.ShuffleResult<{type}>();"));
                temps[call] = temp;
            }
            else if (_model.GetSymbolInfo(call).Symbol is IMethodSymbol method && _facts.SyncHelpers.ContainsKey(method.OriginalDefinition)
                && _helpers.CopyOf(method.OriginalDefinition, this) is { } copy)
            {
                var arguments = args.Select(a => Expression(a.Expression).ToString()).ToList();
                string temp = "";
                if (!method.ReturnsVoid)
                {
                    temp = _helpers.Temporary("__shfl");
                    string type = method.ReturnType.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat);
                    result.Add(ParseStatement($"var {temp} = new global::System.Runtime.CompilerServices.StrongBox<{type}>();"));
                    arguments.Add(temp);
                }
                string step = _helpers.Temporary("__step");
                result.Add(ParseStatement($"foreach (int {step} in {copy}({string.Join(", ", arguments)})) {{ yield return {step}; }}"));
                temps[call] = temp.Length == 0 ? "" : temp + ".Value";
            }
        }
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
                return ParseExpression(temp);
            }
            var visited = (InvocationExpressionSyntax)base.VisitInvocationExpression(node)!;
            return Model.GetSymbolInfo(node).Symbol is IMethodSymbol method && _owner._helpers.CopyOf(method, _owner) is { } copy
                ? visited.WithExpression(IdentifierName(copy))
                : visited;
        }

        // In a copy of another type's helper, simple names of types, constants and static members are
        // written out (the copy is a local function of the kernel's type, under the kernel file's usings).
        public override SyntaxNode? VisitIdentifierName(IdentifierNameSyntax node)
        {
            if (!_owner._foreign || node.Parent is MemberAccessExpressionSyntax ma && ma.Name == node || node.Parent is QualifiedNameSyntax q && q.Right == node)
            {
                return base.VisitIdentifierName(node);
            }
            return Model.GetSymbolInfo(node).Symbol switch
            {
                INamedTypeSymbol type => ParseTypeName(type.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat)).WithTriviaFrom(node),
                IFieldSymbol { HasConstantValue: true } constant => ParseExpression(ConstantLiteral(constant.ConstantValue, constant.Type)).WithTriviaFrom(node),
                ISymbol { IsStatic: true, Kind: SymbolKind.Field or SymbolKind.Property } member =>
                    ParseExpression(member.ContainingType.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat) + "." + member.Name).WithTriviaFrom(node),
                _ => base.VisitIdentifierName(node),
            };
        }

        public override SyntaxNode? VisitGenericName(GenericNameSyntax node) =>
            _owner._foreign && Model.GetSymbolInfo(node).Symbol is INamedTypeSymbol type && !(node.Parent is MemberAccessExpressionSyntax ma && ma.Name == node)
                ? ParseTypeName(type.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat)).WithTriviaFrom(node)
                : base.VisitGenericName(node);

        /// <summary>A constant's value as a C# expression of its type (floats through their bits, so exactly).</summary>
        private static string ConstantLiteral(object? value, ITypeSymbol type) => value switch
        {
            float f => $"global::System.BitConverter.Int32BitsToSingle({System.BitConverter.ToInt32(System.BitConverter.GetBytes(f), 0)})",
            double d => $"global::System.BitConverter.Int64BitsToDouble({System.BitConverter.DoubleToInt64Bits(d)}L)",
            bool b => b ? "true" : "false",
            null => "default",
            _ => $"unchecked(({type.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat)})({System.Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture)}))",
        };

        public override SyntaxNode? VisitElementAccessExpression(ElementAccessExpressionSyntax node)
        {
            var visited = (ElementAccessExpressionSyntax)base.VisitElementAccessExpression(node)!;
            string? hook = Hook(node, "SharedIndex", "ViewIndex");
            if (hook is null)
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
                ParseExpression($"{_owner._ctx}.{hook}({view}, {index}, {Access}.{access}, {Literal(view)})")))));
        }

        public override SyntaxNode? VisitAssignmentExpression(AssignmentExpressionSyntax node)
        {
            if (node.IsKind(SyntaxKind.SimpleAssignmentExpression) && node.Left is ElementAccessExpressionSyntax left && Hook(left, "SharedStore", "ViewStore") is { } store)
            {
                string view = left.Expression.ToString();
                string element = Model.GetTypeInfo(left).Type!.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat);
                var index = (ExpressionSyntax)Visit(left.ArgumentList.Arguments[0].Expression);
                var value = (ExpressionSyntax)Visit(node.Right);
                return ParseExpression($"{_owner._ctx}.{store}<{element}>({view}, {index}, {value}, {Literal(view)})");
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

        /// <summary>
        /// The sanitizer hook of an element access: <paramref name="shared"/> on the kernel's shared locals,
        /// <paramref name="view"/> on a view parameter of a synchronising helper (the caller may pass shared memory).
        /// </summary>
        private string? Hook(ElementAccessExpressionSyntax node, string shared, string view) => Model.GetSymbolInfo(node.Expression).Symbol switch
        {
            ILocalSymbol local when _owner._sharedLocals.Contains(local) => shared,
            IParameterSymbol parameter when _owner._hookViews && TypeFacts.ViewElement(parameter.Type) is not null => view,
            _ => null,
        };

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
    /// Checked copies of the static helpers a kernel calls, with the same rewriting, as local functions of
    /// the host copy: those declared in the kernel's own type (so the copy sees the same members), every
    /// synchronising helper (an iterator whose yields the caller passes on; a value comes back in a
    /// StrongBox), and, inside a copy of another type's helper, the helpers that one calls.
    /// </summary>
    private sealed class HelperCopies
    {
        private readonly Compilation _compilation;
        private readonly Dictionary<IMethodSymbol, string> _names = new(SymbolEqualityComparer.Default);
        private int _temporaries;

        public HelperCopies(Compilation compilation) => _compilation = compilation;

        public INamedTypeSymbol? KernelType { get; set; }

        public List<StatementSyntax> Emitted { get; } = new();

        /// <summary>A fresh name for a generated local (unique across the host copy and its local functions).</summary>
        public string Temporary(string prefix) => prefix + (_temporaries++).ToString(System.Globalization.CultureInfo.InvariantCulture);

        public string? CopyOf(IMethodSymbol method, IteratorRewriter caller)
        {
            method = method.OriginalDefinition;
            if (_names.TryGetValue(method, out string? name))
            {
                return name;
            }
            bool sync = caller._facts.SyncHelpers.ContainsKey(method);
            bool foreign = !SymbolEqualityComparer.Default.Equals(method.ContainingType, KernelType);
            if (!method.IsStatic || (foreign && !sync && !caller._foreign)
                || method.DeclaringSyntaxReferences.Length != 1
                || method.DeclaringSyntaxReferences[0].GetSyntax() is not MethodDeclarationSyntax declaration
                || method.GetAttributes().Any(a => a.AttributeClass?.Name == "KernelAttribute"))
            {
                return null;
            }
            name = (sync ? "__sync_" : "__checked_") + method.Name + "_" + _names.Count.ToString(System.Globalization.CultureInfo.InvariantCulture);
            _names[method] = name;
            string? result = sync && !method.ReturnsVoid ? "__result" : null;
            string context = method.Parameters.FirstOrDefault(p => TypeFacts.IsKernelContext(p.Type))?.Name ?? caller._ctx;
            var rewriter = new IteratorRewriter(caller._facts, _compilation.GetSemanticModel(declaration.SyntaxTree), context, iterator: sync, this, result, foreign)
            {
                _hookViews = sync && method.Parameters.Any(p => TypeFacts.IsKernelContext(p.Type)),
            };
            BlockSyntax body;
            if (declaration.Body is not null)
            {
                body = Block(rewriter.RewriteStatements(declaration.Body));
            }
            else if (sync)
            {
                // An expression-bodied synchronising helper: hoist what it synchronises, then hand the value over.
                var expression = declaration.ExpressionBody!.Expression;
                var statements = rewriter.Hoist(declaration.ExpressionBody!, out var temps);
                var value = (ExpressionSyntax)rewriter.Checks(temps).Visit(expression);
                if (result is not null)
                {
                    statements.Add(ParseStatement($"{result}.Value = {value};"));
                }
                else if (!(expression is InvocationExpressionSyntax call && temps.TryGetValue(call, out var temp) && temp.Length == 0))
                {
                    statements.Add(ExpressionStatement(value));
                }
                statements.Add(YieldStatement(SyntaxKind.YieldBreakStatement));
                body = Block(statements);
            }
            else
            {
                body = Block(method.ReturnsVoid
                    ? ExpressionStatement(rewriter.Expression(declaration.ExpressionBody!.Expression))
                    : ReturnStatement(rewriter.Expression(declaration.ExpressionBody!.Expression)));
            }
            // An iterator cannot take ref structs: register arrays are arrays in the iterator copies that call it.
            string ParameterType(IParameterSymbol p) => sync && TypeFacts.SpanElement(p.Type) is { } element
                ? element.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat) + "[]"
                : p.Type.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat);
            var parameters = method.Parameters.Select(p => ParameterType(p) + " " + p.Name).ToList();
            if (result is not null)
            {
                parameters.Add("global::System.Runtime.CompilerServices.StrongBox<" + method.ReturnType.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat) + "> " + result);
            }
            string returns = sync ? "global::System.Collections.Generic.IEnumerable<int>"
                : method.ReturnsVoid ? "void" : method.ReturnType.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat);
            Emitted.Add(LocalFunctionStatement(ParseTypeName(returns), name)
                .WithModifiers(TokenList(Token(SyntaxKind.StaticKeyword)))
                .WithParameterList(ParseParameterList("(" + string.Join(", ", parameters) + ")"))
                .WithBody(body));
            return name;
        }
    }
}
