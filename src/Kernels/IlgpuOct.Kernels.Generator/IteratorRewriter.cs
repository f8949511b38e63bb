using System.Collections.Generic;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using static Microsoft.CodeAnalysis.CSharp.SyntaxFactory;

namespace IlgpuOct.Kernels.Generator;

/// <summary>
/// Rewrites a kernel body with barriers or shuffles into the body of a C# iterator the CPU
/// accelerator steps thread by thread: a barrier statement becomes <c>yield return KernelYield.Barrier;</c>,
/// a shuffle is hoisted before its statement as deposit / <c>yield return KernelYield.WarpSync;</c> / result,
/// <c>return;</c> becomes <c>yield break;</c>, and stackalloc spans become arrays (ref structs cannot
/// live across a yield).
/// </summary>
internal sealed class IteratorRewriter
{
    private const string Yield = "global::IlgpuOct.Kernels.KernelYield";
    private readonly KernelFacts _facts;
    private readonly SemanticModel _model;
    private readonly string _ctx;
    private int _temp;

    public IteratorRewriter(KernelFacts facts, SemanticModel model, string contextName)
    {
        _facts = facts;
        _model = model;
        _ctx = contextName;
    }

    public string Rewrite(BlockSyntax body)
    {
        var block = Block(body.Statements.SelectMany(Statement));
        return block.NormalizeWhitespace("    ", "\n").ToFullString();
    }

    private IEnumerable<StatementSyntax> Statement(StatementSyntax s)
    {
        switch (s)
        {
            case BlockSyntax b:
                return new[] { Block(b.Statements.SelectMany(Statement)) };
            case ExpressionStatementSyntax es when _facts.BarrierStatements.Contains(es):
                return new[] { YieldReturn("Barrier") };
            case ReturnStatementSyntax { Expression: null }:
                return new StatementSyntax[] { YieldStatement(SyntaxKind.YieldBreakStatement) };
            case IfStatementSyntax ifs:
                return new[] { ifs.WithStatement(Embedded(ifs.Statement)).WithElse(ifs.Else is null ? null : ifs.Else.WithStatement(Embedded(ifs.Else.Statement))) };
            case ForStatementSyntax fs:
                return new[] { fs.WithStatement(Embedded(fs.Statement)) };
            case WhileStatementSyntax ws:
                return new[] { ws.WithStatement(Embedded(ws.Statement)) };
            case DoStatementSyntax ds:
                return new[] { ds.WithStatement(Embedded(ds.Statement)) };
            case CheckedStatementSyntax cs:
                return new[] { cs.WithBlock(Block(cs.Block.Statements.SelectMany(Statement))) };
            case LocalDeclarationStatementSyntax ld when IsStackAllocSpan(ld):
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

    private static StatementSyntax YieldReturn(string what) =>
        YieldStatement(SyntaxKind.YieldReturnStatement, ParseExpression(Yield + "." + what));

    private IEnumerable<StatementSyntax> HoistShuffles(StatementSyntax s)
    {
        var shuffles = s.DescendantNodes().OfType<InvocationExpressionSyntax>().Where(_facts.Shuffles.ContainsKey).ToList();
        if (shuffles.Count == 0)
        {
            return new[] { s };
        }
        var result = new List<StatementSyntax>();
        var replacements = new Dictionary<SyntaxNode, SyntaxNode>();
        foreach (var call in shuffles)
        {
            var (mode, type) = _facts.Shuffles[call];
            var args = call.ArgumentList.Arguments;
            string temp = "__shfl" + _temp++;
            result.Add(ParseStatement($"{_ctx}.ShuffleDeposit<{type}>({args[0].Expression}, global::IlgpuOct.Kernels.ShuffleMode.{mode}, {args[1].Expression});"));
            result.Add(YieldReturn("WarpSync"));
            result.Add(ParseStatement($"{type} {temp} = {_ctx}.ShuffleResult<{type}>();"));
            replacements[call] = IdentifierName(temp);
        }
        result.Add(s.ReplaceNodes(replacements.Keys, (original, _) => replacements[original]));
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
        return ParseStatement($"{element}[] {v.Identifier.ValueText} = new {element}[{arrayType.RankSpecifiers[0].Sizes[0]}];");
    }
}
