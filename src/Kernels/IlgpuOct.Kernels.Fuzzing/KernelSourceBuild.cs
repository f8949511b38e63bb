using System.Collections.Immutable;
using System.Reflection;
using System.Runtime.Loader;
using IlgpuOct.Kernels.Generator;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace IlgpuOct.Kernels.Fuzzing;

/// <summary>
/// Compiles C# kernel source in memory with the kernel generator, as the build would: the
/// compilation including generated code, the generator's diagnostics, and a loader for the result.
/// </summary>
public sealed class KernelSourceBuild
{
    private const string GlobalUsings = "global using System; global using System.Collections.Generic; global using IlgpuOct.Kernels;";

    private static readonly Lazy<MetadataReference[]> References = new(() =>
    {
        var paths = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator)
            .Where(p => Path.GetFileName(p) is "System.Private.CoreLib.dll" or "System.Runtime.dll" or "System.Collections.dll"
                or "System.Memory.dll" or "System.Runtime.InteropServices.dll" or "System.Linq.dll" or "netstandard.dll")
            .ToList();
        paths.Add(typeof(KernelContext).Assembly.Location);
        return paths.Distinct().Select(p => (MetadataReference)MetadataReference.CreateFromFile(p)).ToArray();
    });

    private KernelSourceBuild(CSharpCompilation compilation, GeneratorDriverRunResult result, ImmutableArray<Diagnostic> generatorDiagnostics)
    {
        Compilation = compilation;
        Result = result;
        GeneratorDiagnostics = generatorDiagnostics;
    }

    /// <summary>The compilation with the generated files added.</summary>
    public CSharpCompilation Compilation { get; }

    public GeneratorDriverRunResult Result { get; }

    public ImmutableArray<Diagnostic> GeneratorDiagnostics { get; }

    /// <summary>Runs the generator over <paramref name="source"/> (file name Kernels.cs).</summary>
    public static KernelSourceBuild Run(string source, string assemblyName = "GeneratorTestKernels")
    {
        var parse = new CSharpParseOptions(LanguageVersion.Latest);
        var trees = new[]
        {
            CSharpSyntaxTree.ParseText(source, parse, path: "Kernels.cs"),
            CSharpSyntaxTree.ParseText(GlobalUsings, parse, path: "Usings.cs"),
        };
        var options = new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable, allowUnsafe: true);
        var compilation = CSharpCompilation.Create(assemblyName, trees, References.Value, options);
        GeneratorDriver driver = CSharpGeneratorDriver.Create(new[] { new KernelGenerator().AsSourceGenerator() }, parseOptions: parse);
        driver = driver.RunGeneratorsAndUpdateCompilation(compilation, out var output, out var generatorDiagnostics);
        return new KernelSourceBuild((CSharpCompilation)output, driver.GetRunResult(), generatorDiagnostics);
    }

    /// <summary>Errors of the compilation including generated code.</summary>
    public IReadOnlyList<Diagnostic> Errors =>
        Compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).ToList();

    /// <summary>Emits the compilation into bytes; throws with the errors when it does not compile.</summary>
    public byte[] Emit()
    {
        using var stream = new MemoryStream();
        var emit = Compilation.Emit(stream);
        if (!emit.Success)
        {
            throw new InvalidOperationException("Emit failed: " + string.Join("\n", emit.Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error)));
        }
        return stream.ToArray();
    }

    /// <summary>Loads the compiled assembly into the default context (for tests that keep it).</summary>
    public Assembly Load() => Assembly.Load(Emit());

    /// <summary>Loads the compiled assembly into a collectible context (unload it when done).</summary>
    public Assembly LoadCollectible(out AssemblyLoadContext context)
    {
        context = new AssemblyLoadContext("fuzz-" + Compilation.AssemblyName, isCollectible: true);
        using var stream = new MemoryStream(Emit());
        return context.LoadFromStream(stream);
    }
}
