using System.Collections.Immutable;
using System.Reflection;
using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Generator;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace IlgpuOct.Tests.Generator;

/// <summary>Runs the kernel generator in memory over C# source strings and exposes what it produced.</summary>
internal static class GeneratorHarness
{
    private static readonly Lazy<MetadataReference[]> References = new(() =>
    {
        var paths = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator)
            .Where(p => Path.GetFileName(p) is "System.Private.CoreLib.dll" or "System.Runtime.dll" or "System.Collections.dll"
                or "System.Memory.dll" or "System.Runtime.InteropServices.dll" or "System.Linq.dll" or "netstandard.dll")
            .ToList();
        paths.Add(typeof(KernelContext).Assembly.Location);
        return paths.Distinct().Select(p => (MetadataReference)MetadataReference.CreateFromFile(p)).ToArray();
    });

    private const string GlobalUsings = "global using System; global using System.Collections.Generic; global using IlgpuOct.Kernels;";

    public static GeneratorRun Run(string source)
    {
        var parse = new CSharpParseOptions(LanguageVersion.Latest);
        var trees = new[]
        {
            CSharpSyntaxTree.ParseText(source, parse, path: "Kernels.cs"),
            CSharpSyntaxTree.ParseText(GlobalUsings, parse, path: "Usings.cs"),
        };
        var options = new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable, allowUnsafe: true);
        var compilation = CSharpCompilation.Create("GeneratorTestKernels", trees, References.Value, options);
        GeneratorDriver driver = CSharpGeneratorDriver.Create(new[] { new KernelGenerator().AsSourceGenerator() }, parseOptions: parse);
        driver = driver.RunGeneratorsAndUpdateCompilation(compilation, out var output, out var generatorDiagnostics);
        return new GeneratorRun((CSharpCompilation)output, driver.GetRunResult(), generatorDiagnostics);
    }
}

internal sealed class GeneratorRun
{
    public GeneratorRun(CSharpCompilation compilation, GeneratorDriverRunResult result, ImmutableArray<Diagnostic> generatorDiagnostics)
    {
        Compilation = compilation;
        Result = result;
        GeneratorDiagnostics = generatorDiagnostics;
    }

    public CSharpCompilation Compilation { get; }

    public GeneratorDriverRunResult Result { get; }

    public ImmutableArray<Diagnostic> GeneratorDiagnostics { get; }

    /// <summary>Errors and warnings of the compilation including generated code (the build treats warnings as errors).</summary>
    public IReadOnlyList<Diagnostic> CompilationProblems =>
        Compilation.GetDiagnostics().Where(d => d.Severity >= DiagnosticSeverity.Warning).ToList();

    public string GeneratedText(string hintPrefix) =>
        Result.GeneratedTrees.Single(t => Path.GetFileName(t.FilePath).StartsWith(hintPrefix, StringComparison.Ordinal)).ToString();

    /// <summary>The CudaSource constant of the generated <c>{method}Kernel</c> class nested in <paramref name="type"/>.</summary>
    public string Cuda(string type, string method) => (string)Field(type, method, "CudaSource");

    public object Field(string type, string method, string field)
    {
        var t = Compilation.GetTypeByMetadataName(type + "+" + method + "Kernel")
            ?? throw new InvalidOperationException($"No generated {type}.{method}Kernel; generator diagnostics: {string.Join("; ", GeneratorDiagnostics)}");
        var f = t.GetMembers(field).OfType<IFieldSymbol>().Single();
        return f.ConstantValue!;
    }

    /// <summary>Emits the compilation and loads it, for running generated launchers.</summary>
    public Assembly Load()
    {
        using var stream = new MemoryStream();
        var emit = Compilation.Emit(stream);
        if (!emit.Success)
        {
            throw new InvalidOperationException("Emit failed: " + string.Join("\n", emit.Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error)));
        }
        return Assembly.Load(stream.ToArray());
    }
}
