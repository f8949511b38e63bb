using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Threading;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace IlgpuOct.Kernels.Generator;

/// <summary>One [KernelVariant] of a kernel: its name, the const fields it overrides in the body, its launch bounds (0: the kernel's).</summary>
internal sealed class KernelVariant(string name, List<(IFieldSymbol Field, object Value)> overrides, int maxThreads, int minBlocks, Location location)
{
    public string Name => name;

    public List<(IFieldSymbol Field, object Value)> Overrides => overrides;

    public (int Threads, int Blocks) Bounds => (maxThreads, minBlocks);

    public Location Location => location;
}

/// <summary>
/// [KernelVariant]: the same kernel body with const fields replaced by literals inside the body only. The
/// body is rewritten in a copy of the compilation, so the CUDA translation (shared and register array sizes,
/// unrolled loops, launch bounds) and the cpu-kernels copy both see the variant's values; helpers are
/// shared, which is why a helper may not read an overridden constant (IOCT0050).
/// </summary>
internal static class KernelVariants
{
    public const string AttributeName = CudaTranslator.KernelsNamespace + ".KernelVariantAttribute";

    /// <summary>The kernel's variants; malformed ones become IOCT0050 in <paramref name="diagnostics"/>.</summary>
    public static List<KernelVariant> Read(IMethodSymbol kernel, List<DiagnosticInfo> diagnostics, CancellationToken ct)
    {
        var variants = new List<KernelVariant>();
        var names = new HashSet<string>(System.StringComparer.Ordinal);
        foreach (var attribute in kernel.GetAttributes().Where(a => a.AttributeClass?.ToDisplayString() == AttributeName))
        {
            var location = attribute.ApplicationSyntaxReference?.GetSyntax(ct).GetLocation() ?? Location.None;
            if (attribute.ConstructorArguments.Length != 2 || attribute.ConstructorArguments[0].Value is not string name)
            {
                diagnostics.Add(new DiagnosticInfo(DiagnosticDescriptors.BadVariant, location, "?", kernel.Name, "give it a name and const/value pairs"));
                continue;
            }
            void Bad(string why) => diagnostics.Add(new DiagnosticInfo(DiagnosticDescriptors.BadVariant, location, name, kernel.Name, why));
            if (!SyntaxFacts.IsValidIdentifier(name) || name == kernel.Name || !names.Add(name)
                || kernel.ContainingType.GetMembers(name).Any(m => m is IMethodSymbol && m.GetAttributes().Any(a => a.AttributeClass?.ToDisplayString() == CudaTranslator.KernelsNamespace + ".KernelAttribute")))
            {
                Bad("its name must be an identifier that no other kernel or variant of the class uses");
                continue;
            }
            var pairs = attribute.ConstructorArguments[1].Values;
            if (pairs.Length % 2 != 0)
            {
                Bad($"it lists {pairs.Length} values; pass pairs of a const field name (nameof) and its value");
                continue;
            }
            var overrides = new List<(IFieldSymbol, object)>();
            bool ok = true;
            for (int i = 0; i < pairs.Length && ok; i += 2)
            {
                var field = pairs[i].Value is string fieldName ? FindConst(kernel.ContainingType, fieldName) : null;
                object? value = pairs[i + 1].Value;
                if (field is null)
                {
                    Bad($"'{pairs[i].Value}' is not a const field of {kernel.ContainingType.Name} or a type that contains it; name one with nameof");
                    ok = false;
                }
                else if (!(field.Type.SpecialType == SpecialType.System_Int32 && value is int) && !(field.Type.SpecialType == SpecialType.System_Boolean && value is bool))
                {
                    Bad($"'{field.Name}' is {field.Type.ToDisplayString()} and the value is {value?.GetType().Name ?? "null"}; only int and bool constants can be overridden, each with a value of its type");
                    ok = false;
                }
                else if (overrides.Any(o => SymbolEqualityComparer.Default.Equals(o.Item1, field)))
                {
                    Bad($"it overrides '{field.Name}' twice");
                    ok = false;
                }
                else
                {
                    overrides.Add((field, value!));
                }
            }
            if (!ok)
            {
                continue;
            }
            var (threads, blocks) = CudaTranslator.NamedLaunchBounds(attribute);
            variants.Add(new KernelVariant(name, overrides, threads, blocks, location));
        }
        return variants;
    }

    private static IFieldSymbol? FindConst(INamedTypeSymbol type, string name)
    {
        for (var t = type; t is not null; t = t.ContainingType)
        {
            if (t.GetMembers(name).OfType<IFieldSymbol>().FirstOrDefault(f => f.IsConst) is { } field)
            {
                return field;
            }
        }
        return null;
    }

    /// <summary>
    /// The variant's kernel: the compilation with the body's reads of overridden constants replaced by their
    /// values, and the rewritten method in it; null (with IOCT0050) when the variant misuses a constant.
    /// </summary>
    public static (SemanticModel Model, MethodDeclarationSyntax Syntax, IMethodSymbol Method)? Specialise(
        SemanticModel model, MethodDeclarationSyntax syntax, IMethodSymbol kernel, KernelVariant variant, List<DiagnosticInfo> diagnostics, CancellationToken ct)
    {
        var overridden = new Dictionary<IFieldSymbol, object>(SymbolEqualityComparer.Default);
        foreach (var (field, value) in variant.Overrides)
        {
            overridden[field] = value;
        }
        int before = diagnostics.Count;
        void Bad(string why) => diagnostics.Add(new DiagnosticInfo(DiagnosticDescriptors.BadVariant, variant.Location, variant.Name, kernel.Name, why));

        // Reads in the body: overridden ones become literals; a constant derived from one would keep its default.
        var replace = new Dictionary<ExpressionSyntax, object>();
        var read = new HashSet<IFieldSymbol>(SymbolEqualityComparer.Default);
        foreach (var id in syntax.Body!.DescendantNodes().OfType<IdentifierNameSyntax>())
        {
            if (model.GetSymbolInfo(id, ct).Symbol is not IFieldSymbol { IsConst: true } field || InsideNameof(id))
            {
                continue;
            }
            if (overridden.TryGetValue(field, out var value))
            {
                read.Add(field);
                replace[id.Parent is MemberAccessExpressionSyntax access && access.Name == id ? access : id] = value;
            }
            else if (DependsOn(field, overridden, new HashSet<IFieldSymbol>(SymbolEqualityComparer.Default), model.Compilation, ct) is { } source)
            {
                Bad($"the body reads '{field.Name}', which is derived from overridden '{source.Name}' and would keep its default value; compute it in the body from '{source.Name}' (e.g. a local const)");
            }
        }
        foreach (var (field, _) in variant.Overrides.Where(o => !read.Contains(o.Field)))
        {
            Bad($"the kernel body never reads '{field.Name}', so overriding it changes nothing (helpers keep the default)");
        }
        // Helpers are shared by every variant: they must not read what a variant changes.
        var seen = new HashSet<IMethodSymbol>(SymbolEqualityComparer.Default);
        var pending = new Stack<SyntaxNode>();
        pending.Push(syntax.Body);
        while (pending.Count > 0)
        {
            var node = pending.Pop();
            var nodeModel = model.Compilation.GetSemanticModel(node.SyntaxTree);
            foreach (var call in node.DescendantNodes().OfType<InvocationExpressionSyntax>())
            {
                if (nodeModel.GetSymbolInfo(call, ct).Symbol is not IMethodSymbol callee || !seen.Add(callee.OriginalDefinition)
                    || callee.DeclaringSyntaxReferences.FirstOrDefault()?.GetSyntax(ct) is not MethodDeclarationSyntax helper)
                {
                    continue;
                }
                var helperModel = model.Compilation.GetSemanticModel(helper.SyntaxTree);
                foreach (var id in helper.DescendantNodes().OfType<IdentifierNameSyntax>())
                {
                    if (helperModel.GetSymbolInfo(id, ct).Symbol is IFieldSymbol { IsConst: true } field && !InsideNameof(id)
                        && (overridden.ContainsKey(field) ? field : DependsOn(field, overridden, new HashSet<IFieldSymbol>(SymbolEqualityComparer.Default), model.Compilation, ct)) is { } source)
                    {
                        Bad($"helper '{callee.Name}' reads '{field.Name}'{(source.Name == field.Name ? "" : $" (derived from '{source.Name}')")}, which the variant overrides only in the kernel body; pass it to the helper as an argument");
                    }
                }
                pending.Push(helper);
            }
        }
        if (diagnostics.Count > before)
        {
            return null;
        }

        var annotation = new SyntaxAnnotation("ioct-kernel-variant");
        var body = syntax.Body.ReplaceNodes(replace.Keys, (original, _) => Literal(replace[original]).WithTriviaFrom(original));
        var root = syntax.SyntaxTree.GetRoot(ct).ReplaceNode(syntax, syntax.WithBody(body).WithAdditionalAnnotations(annotation));
        var tree = syntax.SyntaxTree.WithRootAndOptions(root, syntax.SyntaxTree.Options);
        var compilation = model.Compilation.ReplaceSyntaxTree(syntax.SyntaxTree, tree);
        var rewritten = tree.GetRoot(ct).GetAnnotatedNodes(annotation).OfType<MethodDeclarationSyntax>().Single();
        var rewrittenModel = compilation.GetSemanticModel(tree);
        return rewrittenModel.GetDeclaredSymbol(rewritten, ct) is IMethodSymbol method ? (rewrittenModel, rewritten, method) : null;
    }

    private static ExpressionSyntax Literal(object value) => value switch
    {
        bool b => SyntaxFactory.LiteralExpression(b ? SyntaxKind.TrueLiteralExpression : SyntaxKind.FalseLiteralExpression),
        int i when i < 0 => SyntaxFactory.ParseExpression("(" + i.ToString(CultureInfo.InvariantCulture) + ")"),
        _ => SyntaxFactory.LiteralExpression(SyntaxKind.NumericLiteralExpression, SyntaxFactory.Literal((int)value)),
    };

    private static bool InsideNameof(SyntaxNode node) =>
        node.Ancestors().OfType<InvocationExpressionSyntax>().Any(i => i.Expression is IdentifierNameSyntax { Identifier.ValueText: "nameof" });

    /// <summary>The overridden constant that <paramref name="field"/>'s initializer reads, directly or through other constants; null if none.</summary>
    private static IFieldSymbol? DependsOn(IFieldSymbol field, Dictionary<IFieldSymbol, object> overridden, HashSet<IFieldSymbol> visiting, Compilation compilation, CancellationToken ct)
    {
        if (!visiting.Add(field) || field.DeclaringSyntaxReferences.FirstOrDefault()?.GetSyntax(ct) is not VariableDeclaratorSyntax { Initializer: { } initializer })
        {
            return null;
        }
        var model = compilation.GetSemanticModel(initializer.SyntaxTree);
        foreach (var id in initializer.DescendantNodes().OfType<IdentifierNameSyntax>())
        {
            if (model.GetSymbolInfo(id, ct).Symbol is IFieldSymbol { IsConst: true } used)
            {
                if (overridden.ContainsKey(used))
                {
                    return used;
                }
                if (DependsOn(used, overridden, visiting, compilation, ct) is { } deeper)
                {
                    return deeper;
                }
            }
        }
        return null;
    }
}
