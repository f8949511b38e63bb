using System.Collections.Immutable;
using System.Reflection;
using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Fuzzing;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace IlgpuOct.Tests.Generator;

/// <summary>Runs the kernel generator in memory over C# source strings and exposes what it produced.</summary>
internal static class GeneratorHarness
{
    public static GeneratorRun Run(string source)
    {
        var build = KernelSourceBuild.Run(source);
        return new GeneratorRun(build.Compilation, build.Result, build.GeneratorDiagnostics);
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
