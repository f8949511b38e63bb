using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using System.Security.Cryptography;
using System.Text;
using System.Threading;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace IlgpuOct.Kernels.Generator;

/// <summary>
/// For every static [Kernel] method: translates the body (and its static helpers) to CUDA C, and emits
/// the nested <c>{Method}Kernel</c> class with the definition, the typed launcher and, for kernels with
/// barriers or shuffles, the iterator copy the CPU accelerator steps. One module initializer per
/// assembly registers every definition.
/// </summary>
[Generator(LanguageNames.CSharp)]
public sealed class KernelGenerator : IIncrementalGenerator
{
    public const string Version = "1.0.0";

    public void Initialize(IncrementalGeneratorInitializationContext context)
    {
        var kernels = context.SyntaxProvider.ForAttributeWithMetadataName(
            "IlgpuOct.Kernels.KernelAttribute",
            static (node, _) => node is MethodDeclarationSyntax,
            static (ctx, ct) => KernelEmitter.Build(ctx, ct))
            .SelectMany(static (outputs, _) => outputs);

        context.RegisterSourceOutput(kernels, static (spc, output) =>
        {
            foreach (var d in output.Diagnostics)
            {
                spc.ReportDiagnostic(d.ToDiagnostic());
            }
            if (output.Source is not null)
            {
                spc.AddSource(output.HintName, output.Source);
            }
        });

        // [Kernel] on a local function would otherwise be ignored without a word (IOCT0033).
        var localKernels = context.SyntaxProvider.ForAttributeWithMetadataName(
            "IlgpuOct.Kernels.KernelAttribute",
            static (node, _) => node is LocalFunctionStatementSyntax,
            static (ctx, _) => new DiagnosticInfo(DiagnosticDescriptors.LocalFunctionKernel, ((LocalFunctionStatementSyntax)ctx.TargetNode).Identifier.GetLocation(), ctx.TargetSymbol.Name));
        context.RegisterSourceOutput(localKernels, static (spc, d) => spc.ReportDiagnostic(d.ToDiagnostic()));

        var registrations = kernels
            .Select(static (k, _) => k.Registration ?? "")
            .Where(static r => r.Length > 0)
            .Collect()
            .Combine(context.CompilationProvider.Select(static (c, _) => c.AssemblyName ?? "Assembly"));

        context.RegisterSourceOutput(registrations, static (spc, pair) =>
        {
            var (items, assembly) = pair;
            if (items.IsDefaultOrEmpty)
            {
                return;
            }
            spc.AddSource("IlgpuOctKernelRegistration.g.cs", KernelEmitter.Registration(items.OrderBy(s => s, System.StringComparer.Ordinal), assembly));
        });
    }
}

internal static class KernelEmitter
{
    private const string K = "global::IlgpuOct.Kernels.";

    // CUDA's limit on statically declared __shared__ memory per block (every architecture since sm_20).
    private const int MaxStaticSharedBytes = 48 * 1024;

    /// <summary>The kernel's output and one per [KernelVariant] (see <see cref="KernelVariants"/>).</summary>
    public static EquatableArray<KernelOutput> Build(GeneratorAttributeSyntaxContext ctx, CancellationToken ct)
    {
        var syntax = (MethodDeclarationSyntax)ctx.TargetNode;
        var method = (IMethodSymbol)ctx.TargetSymbol;
        var types = Names.ContainingTypes(method.ContainingType).ToList();
        string hint = string.Join(".", types) + "." + method.Name + (method.ContainingNamespace.IsGlobalNamespace ? "" : "." + method.ContainingNamespace.ToDisplayString()) + ".g.cs";
        var diagnostics = new List<DiagnosticInfo>();
        var location = syntax.Identifier.GetLocation();

        // Declaration checks.
        for (var t = method.ContainingType; t is not null; t = t.ContainingType)
        {
            bool partial = t.DeclaringSyntaxReferences.Any(r => r.GetSyntax(ct) is TypeDeclarationSyntax td && td.Modifiers.Any(SyntaxKind.PartialKeyword));
            if (!partial)
            {
                diagnostics.Add(new DiagnosticInfo(DiagnosticDescriptors.NotPartial, location, t.Name, method.Name));
            }
            if (t.IsGenericType)
            {
                diagnostics.Add(new DiagnosticInfo(DiagnosticDescriptors.Generic, location, t.ToDisplayString()));
            }
            if (t.TypeKind is not (TypeKind.Class or TypeKind.Struct))
            {
                diagnostics.Add(new DiagnosticInfo(DiagnosticDescriptors.Unsupported, location, t.Name, "kernels live in classes or structs"));
            }
        }
        if (!method.IsStatic)
        {
            diagnostics.Add(new DiagnosticInfo(DiagnosticDescriptors.NotStatic, location, method.Name));
        }
        if (method.IsGenericMethod)
        {
            diagnostics.Add(new DiagnosticInfo(DiagnosticDescriptors.Generic, location, method.Name));
        }
        if (!method.ReturnsVoid)
        {
            diagnostics.Add(new DiagnosticInfo(DiagnosticDescriptors.ReturnType, location, method.Name, method.ReturnType.ToDisplayString()));
        }
        if (method.Parameters.Length == 0 || !TypeFacts.IsKernelContext(method.Parameters[0].Type) || method.Parameters[0].RefKind != RefKind.None)
        {
            diagnostics.Add(new DiagnosticInfo(DiagnosticDescriptors.FirstParameter, location, method.Name));
        }
        int sameName = method.ContainingType.GetMembers(method.Name).OfType<IMethodSymbol>()
            .Count(m => m.GetAttributes().Any(a => a.AttributeClass?.ToDisplayString() == CudaTranslator.KernelsNamespace + ".KernelAttribute"));
        if (sameName > 1)
        {
            diagnostics.Add(new DiagnosticInfo(DiagnosticDescriptors.Unsupported, location, method.Name, "overloaded [Kernel] methods share one launcher class and registry name; give each kernel its own name"));
        }
        if (syntax.Body is null)
        {
            diagnostics.Add(new DiagnosticInfo(DiagnosticDescriptors.ExpressionBody, location, method.Name));
        }
        if (diagnostics.Count > 0)
        {
            return new EquatableArray<KernelOutput>(new[] { new KernelOutput(hint, null, null, diagnostics) });
        }

        var outputs = new List<KernelOutput> { Translate(ctx.SemanticModel, syntax, method, types, method.Name, null, ct) };
        var variantDiagnostics = new List<DiagnosticInfo>();
        foreach (var variant in KernelVariants.Read(method, variantDiagnostics, ct))
        {
            if (KernelVariants.Specialise(ctx.SemanticModel, syntax, method, variant, variantDiagnostics, ct) is { } specialised)
            {
                outputs.Add(Translate(specialised.Model, specialised.Syntax, specialised.Method, types, variant.Name, variant.Bounds, ct));
            }
        }
        if (variantDiagnostics.Count > 0)
        {
            outputs.Add(new KernelOutput(hint, null, null, variantDiagnostics));
        }
        return new EquatableArray<KernelOutput>(outputs);
    }

    /// <summary>Kernel <paramref name="kernelName"/> from <paramref name="method"/>'s body: CUDA C, launcher, cpu-kernels copy, registration.</summary>
    private static KernelOutput Translate(SemanticModel model, MethodDeclarationSyntax syntax, IMethodSymbol method, List<string> types, string kernelName,
        (int Threads, int Blocks)? launchBounds, CancellationToken ct)
    {
        string hint = string.Join(".", types) + "." + kernelName + (method.ContainingNamespace.IsGlobalNamespace ? "" : "." + method.ContainingNamespace.ToDisplayString()) + ".g.cs";
        var location = syntax.Identifier.GetLocation();
        string entryPoint = Names.EntryPoint(method.ContainingNamespace, types, kernelName);
        var translator = new CudaTranslator(model.Compilation, ct);
        var (cuda, cudaParameters) = translator.TranslateKernel(method, syntax, entryPoint, launchBounds);
        if (translator.HasErrors)
        {
            return new KernelOutput(hint, null, null, translator.Diagnostics);
        }
        var facts = translator.Facts;
        if (facts.StaticSharedBytes > MaxStaticSharedBytes)
        {
            return new KernelOutput(hint, null, null, new[] { new DiagnosticInfo(DiagnosticDescriptors.SharedTooLarge, location, kernelName, facts.StaticSharedBytes.ToString(System.Globalization.CultureInfo.InvariantCulture)) });
        }
        bool asIterator = facts.UsesBarriers || facts.UsesShuffles;
        string iterator = new IteratorRewriter(facts, model, method.Parameters[0].Name, asIterator).Rewrite(syntax.Body!);

        string source = CSharp(syntax, method, types, kernelName, entryPoint, cuda, cudaParameters, facts, iterator, asIterator);
        string? registration = IsReachableFromModule(method)
            ? "global::" + (method.ContainingNamespace.IsGlobalNamespace ? "" : method.ContainingNamespace.ToDisplayString() + ".") + string.Join(".", types) + "." + kernelName + "Kernel.Definition"
            : null;
        return new KernelOutput(hint, source, registration, System.Array.Empty<DiagnosticInfo>());
    }

    private static bool IsReachableFromModule(IMethodSymbol method)
    {
        for (var t = method.ContainingType; t is not null; t = t.ContainingType)
        {
            if (t.DeclaredAccessibility is not (Accessibility.Public or Accessibility.Internal or Accessibility.ProtectedOrInternal))
            {
                return false;
            }
        }
        return true;
    }

    public static string Sha256Hex(string text)
    {
        using var sha = SHA256.Create();
        var hash = sha.ComputeHash(Encoding.UTF8.GetBytes(text));
        var sb = new StringBuilder(64);
        foreach (var b in hash)
        {
            sb.Append(b.ToString("x2", System.Globalization.CultureInfo.InvariantCulture));
        }
        return sb.ToString();
    }

    private static string Literal(string s) => SymbolDisplay.FormatLiteral(s, quote: true);

    private static string CSharp(MethodDeclarationSyntax syntax, IMethodSymbol method, List<string> types, string kernelName, string entryPoint,
        string cuda, string cudaParameters, KernelFacts facts, string hostCopy, bool asIterator)
    {
        var sb = new StringBuilder();
        sb.Append("// <auto-generated/>\n#nullable enable\n");
        bool hasNamespace = !method.ContainingNamespace.IsGlobalNamespace;
        // The iterator copy is the kernel's own C#, so it needs the usings of the kernel's file.
        var root = (CompilationUnitSyntax)syntax.SyntaxTree.GetRoot();
        foreach (var u in root.Usings.Where(u => u.GlobalKeyword.IsKind(SyntaxKind.None)))
        {
            sb.Append(u.WithoutTrivia().ToString()).Append('\n');
        }
        if (hasNamespace)
        {
            sb.Append("namespace ").Append(method.ContainingNamespace.ToDisplayString()).Append("\n{\n");
            foreach (var ns in syntax.Ancestors().OfType<BaseNamespaceDeclarationSyntax>().Reverse())
            {
                foreach (var u in ns.Usings)
                {
                    sb.Append(u.WithoutTrivia().ToString()).Append('\n');
                }
            }
        }
        var chain = new List<INamedTypeSymbol>();
        for (var t = method.ContainingType; t is not null; t = t.ContainingType)
        {
            chain.Insert(0, t);
        }
        foreach (var t in chain)
        {
            string kind = t.IsRecord ? (t.TypeKind == TypeKind.Struct ? "record struct" : "record") : t.TypeKind == TypeKind.Struct ? "struct" : "class";
            sb.Append(t.IsStatic ? "static " : "").Append("partial ").Append(kind).Append(' ').Append(t.Name).Append("\n{\n");
        }

        bool isPublic = method.DeclaredAccessibility is Accessibility.Public or Accessibility.Protected or Accessibility.ProtectedOrInternal;
        string access = isPublic ? "public" : "internal";
        // Namespace-qualified, so kernels of equal class names in two namespaces stay apart in the registry.
        string name = (hasNamespace ? method.ContainingNamespace.ToDisplayString() + "." : "") + string.Join(".", types) + "." + kernelName;
        string sha = Sha256Hex(cuda);
        string ctxName = method.Parameters[0].Name;
        var kernelParams = method.Parameters.Skip(1).ToList();
        string paramDecl = string.Join("", kernelParams.Select(p => ", " + p.Type.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat) + " " + Escape(p.Name)));
        string argList = string.Join("", kernelParams.Select(p => ", " + Escape(p.Name)));
        int slots = kernelParams.Sum(p => TypeFacts.ViewElement(p.Type) is null ? 1 : 2);
        // The launcher's own parameters step aside when a kernel parameter has their name.
        string acc = Unused("accelerator", kernelParams), cfg = Unused("config", kernelParams);

        sb.Append("/// <summary>Generated launcher of kernel <see cref=\"").Append(method.Name).Append("\"/>").Append(kernelName == method.Name ? "" : " (variant " + kernelName + ")").Append(": CUDA C entry point <c>").Append(entryPoint).Append("</c>.</summary>\n");
        sb.Append("[global::System.CodeDom.Compiler.GeneratedCode(\"IlgpuOct.Kernels.Generator\", \"").Append(KernelGenerator.Version).Append("\")]\n");
        sb.Append(access).Append(" static class ").Append(kernelName).Append("Kernel\n{\n");
        sb.Append("    /// <summary>SHA-256 (UTF-8, lower-case hex) of <see cref=\"CudaSource\"/>, computed when the generator ran.</summary>\n");
        sb.Append("    public const string CudaSourceSha256 = ").Append(Literal(sha)).Append(";\n\n");
        sb.Append("    /// <summary>The CUDA C translation unit.</summary>\n");
        sb.Append("    public const string CudaSource = ").Append(Literal(cuda)).Append(";\n\n");
        sb.Append("    public static ").Append(K).Append("KernelDefinition Definition { get; } = new ").Append(K).Append("KernelDefinition(\n");
        sb.Append("        ").Append(Literal(name)).Append(",\n");
        sb.Append("        ").Append(Literal(entryPoint)).Append(",\n");
        sb.Append("        CudaSource,\n        CudaSourceSha256,\n");
        sb.Append("        ").Append(Literal(cudaParameters)).Append(",\n");
        sb.Append("        usesBarriers: ").Append(facts.UsesBarriers ? "true" : "false").Append(",\n");
        sb.Append("        usesWarpShuffles: ").Append(facts.UsesShuffles ? "true" : "false").Append(",\n");
        sb.Append("        staticSharedBytes: ").Append(facts.StaticSharedBytes).Append(",\n");
        sb.Append("        generatorVersion: ").Append(Literal(KernelGenerator.Version)).Append(");\n\n");

        sb.Append("    /// <summary>Launches ").Append(kernelName).Append(" on <paramref name=\"").Append(acc).Append("\"/>: C# body on host accelerators, compiled CUDA otherwise.</summary>\n");
        sb.Append("    public static void Launch(").Append(K).Append("Accelerator ").Append(acc).Append(", ").Append(K).Append("LaunchConfig ").Append(cfg).Append(paramDecl).Append(")\n    {\n");
        sb.Append("        global::System.ArgumentNullException.ThrowIfNull(").Append(acc).Append(");\n");
        foreach (var p in kernelParams.Where(p => TypeFacts.ViewElement(p.Type) is not null))
        {
            sb.Append("        ").Append(acc).Append(".CheckLaunchView(").Append(Escape(p.Name)).Append(", Definition, ").Append(Literal(p.Name)).Append(");\n");
        }
        sb.Append("        if (").Append(acc).Append(".RunsKernelsOnHost)\n        {\n");
        string hostCopyName = kernelName + (asIterator ? "Iterator" : "Checked");
        sb.Append("            ").Append(acc).Append(".LaunchOnHost(Definition, ").Append(cfg).Append(", (").Append(K).Append("KernelContext __ctx) => ").Append(hostCopyName).Append("(__ctx").Append(argList).Append("));\n");
        sb.Append("            return;\n        }\n");
        sb.Append("        global::System.Span<ulong> __slots = stackalloc ulong[").Append(System.Math.Max(1, slots)).Append("];\n");
        int slot = 0;
        foreach (var p in kernelParams)
        {
            string n = Escape(p.Name);
            if (TypeFacts.ViewElement(p.Type) is not null)
            {
                sb.Append("        __slots[").Append(slot++).Append("] = ").Append(n).Append(".DevicePointer;\n");
                sb.Append("        __slots[").Append(slot++).Append("] = (ulong)(uint)").Append(n).Append(".Length;\n");
            }
            else
            {
                sb.Append("        __slots[").Append(slot++).Append("] = ").Append(K).Append("KernelArgs.Pack(").Append(n).Append(");\n");
            }
        }
        sb.Append("        ").Append(acc).Append(".LaunchCompiled(Definition, ").Append(cfg).Append(", __slots.Slice(0, ").Append(slots).Append("));\n    }\n");

        sb.Append("\n    /// <summary>The kernel body as cpu-kernels runs it: sanitizer hooks on shared memory, checked signed arithmetic")
            .Append(asIterator ? ", a yield at every barrier and warp shuffle" : "").Append(".</summary>\n");
        sb.Append("    private static ").Append(asIterator ? "global::System.Collections.Generic.IEnumerator<int> " : "void ").Append(hostCopyName).Append('(')
            .Append(K).Append("KernelContext ").Append(Escape(ctxName)).Append(paramDecl).Append(")\n");
        foreach (var line in hostCopy.Split('\n'))
        {
            sb.Append("    ").Append(line).Append('\n');
        }
        sb.Append("}\n");
        foreach (var _ in chain)
        {
            sb.Append("}\n");
        }
        if (hasNamespace)
        {
            sb.Append("}\n");
        }
        return sb.ToString();
    }

    private static string Unused(string name, IReadOnlyList<IParameterSymbol> kernelParams)
    {
        while (kernelParams.Any(p => p.Name == name))
        {
            name += "_";
        }
        return name;
    }

    private static string Escape(string identifier) =>
        SyntaxFacts.GetKeywordKind(identifier) != SyntaxKind.None ? "@" + identifier : identifier;

    public static string Registration(IEnumerable<string> definitions, string assembly)
    {
        var sb = new StringBuilder();
        sb.Append("// <auto-generated/>\n#nullable enable\n#pragma warning disable CA2255 // module initializers are how generated kernels register themselves\n");
        sb.Append("namespace IlgpuOct.Generated\n{\n");
        sb.Append("    /// <summary>Registers the kernels of assembly ").Append(assembly).Append(" with KernelRegistry when the module loads.</summary>\n");
        sb.Append("    [global::System.CodeDom.Compiler.GeneratedCode(\"IlgpuOct.Kernels.Generator\", \"").Append(KernelGenerator.Version).Append("\")]\n");
        sb.Append("    internal static class KernelRegistration_").Append(Names.Sanitize(assembly)).Append("\n    {\n");
        sb.Append("        [global::System.Runtime.CompilerServices.ModuleInitializer]\n");
        sb.Append("        internal static void Register() => ").Append(K).Append("KernelRegistry.Register(\n");
        sb.Append(string.Join(",\n", definitions.Select(d => "            " + d)));
        sb.Append(");\n    }\n}\n");
        return sb.ToString();
    }
}
