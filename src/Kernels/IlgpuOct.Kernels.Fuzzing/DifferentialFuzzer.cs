using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Text;
using IlgpuOct.Kernels.Cuda;
using IlgpuOct.Kernels.CudaHost;
using Microsoft.CodeAnalysis;

namespace IlgpuOct.Kernels.Fuzzing;

/// <summary>What became of one fuzz program.</summary>
public enum FuzzVerdict
{
    /// <summary>cpu-kernels and cuda-host wrote the same bits.</summary>
    Agree,

    /// <summary>The generator refused the kernel with a diagnostic (allowed).</summary>
    RejectedAtBuild,

    /// <summary>cpu-kernels stopped it with an error (a checked fault, e.g. signed overflow detection; allowed).</summary>
    RejectedAtRun,

    /// <summary>The fuzzer wrote C# that does not compile: a fuzzer bug, not a translator bug.</summary>
    InvalidProgram,

    /// <summary>The generated CUDA C did not compile on the host.</summary>
    CudaBuildFailure,

    /// <summary>NVRTC refused the generated CUDA C.</summary>
    NvrtcFailure,

    /// <summary>cuda-host stopped with an error cpu-kernels did not have.</summary>
    CudaRunFailure,

    /// <summary>The outputs differ.</summary>
    Mismatch,
}

/// <summary>One program's result: the verdict, a one-line detail and the CUDA C it was translated to.</summary>
public sealed record FuzzResult(FuzzProgram Program, FuzzVerdict Verdict, string Detail, string? CudaSource)
{
    /// <summary>True for the verdicts that are translator bugs.</summary>
    public bool IsDisagreement => Verdict is FuzzVerdict.CudaBuildFailure or FuzzVerdict.NvrtcFailure or FuzzVerdict.CudaRunFailure or FuzzVerdict.Mismatch;
}

/// <summary>Progress of a fuzz run: programs done, and the last result.</summary>
public readonly record struct FuzzProgress(int Done, int Total, FuzzResult Last);

/// <summary>Totals of a fuzz run.</summary>
public sealed record FuzzSummary(int Programs, IReadOnlyDictionary<FuzzVerdict, int> Counts, IReadOnlyList<FuzzResult> Disagreements, IReadOnlyList<string> ReproducerFiles, TimeSpan Elapsed, int NvrtcChecked)
{
    /// <summary>Why programs were refused or invalid: the first words of each reason, with counts.</summary>
    public IReadOnlyDictionary<string, int> Refusals { get; init; } = new Dictionary<string, int>();

    public double ProgramsPerMinute => Elapsed.TotalMinutes > 0 ? Programs / Elapsed.TotalMinutes : 0;
}

/// <summary>Options of a run.</summary>
public sealed record FuzzOptions(int Count, long Seed, FuzzFeatures Features = FuzzFeatures.All, string? OutputDirectory = null, int NvrtcEvery = 10, bool Minimise = true, int Parallelism = 0);

/// <summary>
/// Differential fuzzing of the kernel translator: each seeded program goes through the generator in
/// memory, runs on cpu-kernels (the C# iterator copy or body) and on cuda-host (the generated CUDA C,
/// compiled by the host C++ compiler); outputs must agree bit for bit unless the generator refused
/// the program. Every NvrtcEvery-th program is also compiled by NVRTC when it is installed.
/// Disagreements are minimised statement by statement and written as reproducers.
/// </summary>
public sealed class DifferentialFuzzer : IDisposable
{
    private readonly CudaHostAccelerator _cudaHost;
    private readonly HostAccelerator _cpuKernels;
    private readonly Nvrtc? _nvrtc;

    public DifferentialFuzzer()
    {
        // Fuzz kernels are short-lived: no disk cache, one thread per launch (programs run in parallel).
        _cudaHost = CudaHostAccelerator.Open(sanitize: false, cache: new KernelCache(enabled: false), maxParallelism: 1);
        _cpuKernels = new HostAccelerator(AcceleratorKind.CpuKernels, maxParallelism: 1);
        _nvrtc = Nvrtc.TryGet(out var nvrtc, out _) ? nvrtc : null;
    }

    public bool HasNvrtc => _nvrtc is not null;

    /// <summary>Runs <see cref="FuzzOptions.Count"/> programs from seed <see cref="FuzzOptions.Seed"/> on.</summary>
    public FuzzSummary Run(FuzzOptions options, IProgress<FuzzProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        var start = Stopwatch.GetTimestamp();
        var results = new FuzzResult[options.Count];
        int done = 0;
        int nvrtcChecked = 0;
        var parallel = new ParallelOptions
        {
            MaxDegreeOfParallelism = options.Parallelism > 0 ? options.Parallelism : Environment.ProcessorCount,
            CancellationToken = cancellationToken,
        };
        Parallel.For(0, options.Count, parallel, i =>
        {
            long seed = options.Seed + i;
            bool nvrtc = options.NvrtcEvery > 0 && i % options.NvrtcEvery == 0;
            var result = RunOne(FuzzProgramGenerator.Generate(seed, options.Features), nvrtc);
            if (nvrtc && _nvrtc is not null && result.Verdict is FuzzVerdict.Agree or FuzzVerdict.Mismatch or FuzzVerdict.CudaRunFailure)
            {
                Interlocked.Increment(ref nvrtcChecked);
            }
            if (result.IsDisagreement && options.Minimise)
            {
                result = Minimise(result, nvrtc, cancellationToken);
            }
            results[i] = result;
            progress?.Report(new FuzzProgress(Interlocked.Increment(ref done), options.Count, result));
        });
        var counts = Enum.GetValues<FuzzVerdict>().ToDictionary(v => v, v => results.Count(r => r.Verdict == v));
        var disagreements = results.Where(r => r.IsDisagreement).ToList();
        var files = new List<string>();
        if (options.OutputDirectory is not null)
        {
            foreach (var d in disagreements)
            {
                files.Add(WriteReproducer(options.OutputDirectory, d));
            }
        }
        var refusals = results.Where(r => r.Verdict is FuzzVerdict.RejectedAtBuild or FuzzVerdict.RejectedAtRun or FuzzVerdict.InvalidProgram)
            .GroupBy(r => r.Verdict + " " + (r.Verdict == FuzzVerdict.InvalidProgram ? r.Detail : new string(r.Detail.TakeWhile(c => c != ':').Take(80).ToArray())))
            .ToDictionary(g => g.Key, g => g.Count());
        return new FuzzSummary(options.Count, counts, disagreements, files, Stopwatch.GetElapsedTime(start), nvrtcChecked) { Refusals = refusals };
    }

    /// <summary>Builds and runs one program on both accelerators.</summary>
    public FuzzResult RunOne(FuzzProgram program, bool compileWithNvrtc = false)
    {
        KernelSourceBuild build;
        try
        {
            build = KernelSourceBuild.Run(program.Source, "Fuzz" + program.ClassName);
        }
        catch (Exception e)
        {
            return new FuzzResult(program, FuzzVerdict.InvalidProgram, "Roslyn failed: " + e.Message, null);
        }
        var generatorErrors = build.GeneratorDiagnostics.Where(d => d.Severity == DiagnosticSeverity.Error).ToList();
        if (generatorErrors.Count > 0)
        {
            return new FuzzResult(program, FuzzVerdict.RejectedAtBuild, generatorErrors[0].Id + ": " + generatorErrors[0].GetMessage(CultureInfo.InvariantCulture), null);
        }
        var errors = build.Errors;
        if (errors.Count > 0)
        {
            bool inGenerated = !errors.Any(e => e.Location.SourceTree?.FilePath == "Kernels.cs");
            // The generated launcher or iterator copy not compiling is the generator's fault; the program's own C# is ours.
            return new FuzzResult(program, inGenerated ? FuzzVerdict.CudaBuildFailure : FuzzVerdict.InvalidProgram,
                (inGenerated ? "generated C# does not compile: " : "") + errors[0].ToString(), null);
        }
        var assembly = build.LoadCollectible(out var context);
        try
        {
            var kernelClass = assembly.GetType("IlgpuOct.Fuzz." + program.ClassName + "+KKernel")
                ?? throw new InvalidOperationException("no generated KKernel class");
            var definition = (KernelDefinition)kernelClass.GetProperty("Definition")!.GetValue(null)!;
            var launch = kernelClass.GetMethod("Launch")!;
            if (compileWithNvrtc && _nvrtc is not null)
            {
                try
                {
                    _nvrtc.Compile(definition.CudaSource, definition.Name, new NvrtcTarget(80, NvrtcOutput.Ptx));
                }
                catch (NvrtcCompileException e)
                {
                    return new FuzzResult(program, FuzzVerdict.NvrtcFailure, FirstLines(e.Log, 3), definition.CudaSource);
                }
            }
            var inputs = FuzzInputs.For(program.Seed);
            Outputs expected;
            try
            {
                expected = Execute(_cpuKernels, launch, inputs);
            }
            catch (Exception e)
            {
                return new FuzzResult(program, FuzzVerdict.RejectedAtRun, "cpu-kernels: " + Innermost(e).Message, definition.CudaSource);
            }
            Outputs actual;
            try
            {
                actual = Execute(_cudaHost, launch, inputs);
            }
            catch (Exception e) when (Innermost(e) is HostCompileException h)
            {
                return new FuzzResult(program, FuzzVerdict.CudaBuildFailure, FirstLines(h.Log, 4), definition.CudaSource);
            }
            catch (Exception e)
            {
                return new FuzzResult(program, FuzzVerdict.CudaRunFailure, Innermost(e).Message, definition.CudaSource);
            }
            finally
            {
                _cudaHost.Release(definition);
            }
            string? difference = expected.FirstDifference(actual);
            return difference is null
                ? new FuzzResult(program, FuzzVerdict.Agree, "", definition.CudaSource)
                : new FuzzResult(program, FuzzVerdict.Mismatch, difference, definition.CudaSource);
        }
        finally
        {
            context.Unload();
        }
    }

    /// <summary>The CUDA C the generator makes of <paramref name="program"/>, or its diagnostics.</summary>
    public static string Translate(FuzzProgram program)
    {
        var build = KernelSourceBuild.Run(program.Source, "Fuzz" + program.ClassName);
        var cuda = build.Compilation.GetTypeByMetadataName("IlgpuOct.Fuzz." + program.ClassName + "+KKernel")?.GetMembers("CudaSource").OfType<IFieldSymbol>().FirstOrDefault()?.ConstantValue as string;
        return cuda ?? string.Join("\n", build.GeneratorDiagnostics.Concat(build.Errors).Select(d => d.ToString()));
    }

    /// <summary>Removes statements and helpers one at a time while the program keeps the same kind of disagreement.</summary>
    public FuzzResult Minimise(FuzzResult result, bool nvrtc, CancellationToken cancellationToken = default)
    {
        var best = result;
        bool shrunk = true;
        while (shrunk)
        {
            shrunk = false;
            for (int i = best.Program.StatementCount - 1; i >= 0; i--)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var candidate = RunOne(best.Program.Without(i), nvrtc);
                if (candidate.Verdict == result.Verdict)
                {
                    best = candidate;
                    shrunk = true;
                }
            }
            for (int h = best.Program.Helpers.Count - 1; h >= 0; h--)
            {
                var candidate = RunOne(best.Program.WithoutHelper(h), nvrtc);
                if (candidate.Verdict == result.Verdict)
                {
                    best = candidate;
                    shrunk = true;
                }
            }
        }
        return best;
    }

    private static Outputs Execute(Accelerator accelerator, MethodInfo launch, FuzzInputs inputs)
    {
        int threads = FuzzProgramGenerator.BlockSize * FuzzProgramGenerator.Blocks;
        int slots = threads * FuzzProgramGenerator.Slots;
        using var x = accelerator.Upload<int>(inputs.Ints);
        using var u = accelerator.Upload<uint>(inputs.UInts);
        using var l = accelerator.Upload<long>(inputs.Longs);
        using var f = accelerator.Upload<float>(inputs.Floats);
        using var d = accelerator.Upload<double>(inputs.Doubles);
        using var o = accelerator.Upload<long>(new long[slots]);
        using var of = accelerator.Upload<float>(new float[slots]);
        using var od = accelerator.Upload<double>(new double[slots]);
        using var acc = accelerator.Upload<int>(new int[4]);
        var config = new LaunchConfig(new Dim3(FuzzProgramGenerator.Blocks), new Dim3(FuzzProgramGenerator.BlockSize));
        launch.Invoke(null, [accelerator, config, x.View, u.View, l.View, f.View, d.View, o.View, of.View, od.View, acc.View, FuzzProgramGenerator.InputLength]);
        accelerator.Synchronize();
        return new Outputs(accelerator.Download(o.View), accelerator.Download(of.View), accelerator.Download(od.View), accelerator.Download(acc.View));
    }

    private static Exception Innermost(Exception e)
    {
        while (e is TargetInvocationException or AggregateException && e.InnerException is not null)
        {
            e = e.InnerException!;
        }
        return e;
    }

    private static string FirstLines(string text, int lines) =>
        string.Join(" | ", text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Take(lines));

    /// <summary>Writes the minimised program (C#, with the verdict in a comment) and its CUDA C; returns the C# path.</summary>
    public static string WriteReproducer(string directory, FuzzResult result)
    {
        Directory.CreateDirectory(directory);
        string stem = Path.Combine(directory, $"fuzz-{result.Program.Seed.ToString(CultureInfo.InvariantCulture)}-{result.Verdict.ToString().ToLowerInvariant()}");
        var text = new StringBuilder()
            .Append("// ").Append(result.Verdict).Append(": ").Append(result.Detail.Replace('\n', ' ')).Append('\n')
            .Append("// Rerun: ilgpuoct kernels fuzz --count 1 --seed ").Append(result.Program.Seed.ToString(CultureInfo.InvariantCulture)).Append('\n')
            .Append(result.Program.Source);
        AtomicFile.WriteAllText(stem + ".cs", text.ToString());
        if (result.CudaSource is not null)
        {
            AtomicFile.WriteAllText(stem + ".cu", result.CudaSource);
        }
        return stem + ".cs";
    }

    public void Dispose()
    {
        _cudaHost.Dispose();
        _cpuKernels.Dispose();
    }

    /// <summary>
    /// Outputs compared bit for bit, except that any NaN equals any NaN: the sign and payload of a NaN
    /// made by arithmetic are not portable (x86's default NaN is negative, the GPU's is 0x7fffffff, and
    /// compilers fold x / -1 into -x). NaN constants are checked through their bits by regression tests.
    /// </summary>
    private sealed record Outputs(long[] Integers, float[] Floats, double[] Doubles, int[] Atomics)
    {
        public string? FirstDifference(Outputs other)
        {
            for (int i = 0; i < Integers.Length; i++)
            {
                if (Integers[i] != other.Integers[i])
                {
                    return Where("o", i) + $": cpu-kernels {Integers[i]}, cuda-host {other.Integers[i]}";
                }
            }
            for (int i = 0; i < Floats.Length; i++)
            {
                if (BitConverter.SingleToInt32Bits(Floats[i]) != BitConverter.SingleToInt32Bits(other.Floats[i]) && !(float.IsNaN(Floats[i]) && float.IsNaN(other.Floats[i])))
                {
                    return Where("of", i) + $": cpu-kernels {Floats[i].ToString("R", CultureInfo.InvariantCulture)} (0x{BitConverter.SingleToInt32Bits(Floats[i]):x8}), cuda-host {other.Floats[i].ToString("R", CultureInfo.InvariantCulture)} (0x{BitConverter.SingleToInt32Bits(other.Floats[i]):x8})";
                }
            }
            for (int i = 0; i < Doubles.Length; i++)
            {
                if (BitConverter.DoubleToInt64Bits(Doubles[i]) != BitConverter.DoubleToInt64Bits(other.Doubles[i]) && !(double.IsNaN(Doubles[i]) && double.IsNaN(other.Doubles[i])))
                {
                    return Where("od", i) + $": cpu-kernels {Doubles[i].ToString("R", CultureInfo.InvariantCulture)} (0x{BitConverter.DoubleToInt64Bits(Doubles[i]):x16}), cuda-host {other.Doubles[i].ToString("R", CultureInfo.InvariantCulture)} (0x{BitConverter.DoubleToInt64Bits(other.Doubles[i]):x16})";
                }
            }
            for (int i = 0; i < Atomics.Length; i++)
            {
                if (Atomics[i] != other.Atomics[i])
                {
                    return $"acc[{i}]: cpu-kernels {Atomics[i]}, cuda-host {other.Atomics[i]}";
                }
            }
            return null;
        }

        private static string Where(string view, int index) =>
            $"{view}[{index}] (thread {index / FuzzProgramGenerator.Slots}, slot {index % FuzzProgramGenerator.Slots})";
    }
}

/// <summary>The seeded input views of a fuzz program: a mix of edge values and random ones.</summary>
public sealed record FuzzInputs(int[] Ints, uint[] UInts, long[] Longs, float[] Floats, double[] Doubles)
{
    public static FuzzInputs For(long seed)
    {
        var random = new Random(unchecked((int)(seed * 31 + 7)));
        int n = FuzzProgramGenerator.InputLength;
        var ints = new int[n];
        var uints = new uint[n];
        var longs = new long[n];
        var floats = new float[n];
        var doubles = new double[n];
        int[] intEdges = [0, 1, -1, int.MaxValue, int.MinValue, 31, 32, 33, -32];
        float[] floatEdges = [0f, -0f, 1f, -1f, 0.5f, 2.5f, -2.5f, 1e30f, -1e-30f, 255.4f, -0.6f];
        for (int i = 0; i < n; i++)
        {
            bool edge = random.Next(4) == 0;
            ints[i] = edge ? intEdges[random.Next(intEdges.Length)] : random.Next(-1000, 1000);
            uints[i] = edge ? unchecked((uint)intEdges[random.Next(intEdges.Length)]) : (uint)random.Next(0, 100000);
            longs[i] = edge ? (random.Next(2) == 0 ? long.MaxValue : long.MinValue + random.Next(3)) : random.NextInt64(-1_000_000_000_000, 1_000_000_000_000);
            floats[i] = edge ? floatEdges[random.Next(floatEdges.Length)] : (float)(random.NextDouble() * 200 - 100);
            doubles[i] = edge ? floatEdges[random.Next(floatEdges.Length)] : random.NextDouble() * 2e6 - 1e6;
        }
        return new FuzzInputs(ints, uints, longs, floats, doubles);
    }
}
