using FluentAssertions;
using IlgpuOct.Kernels.Fuzzing;
using Xunit;
using Xunit.Abstractions;

namespace IlgpuOct.Tests.CudaHost;

/// <summary>
/// The fuzzer's CI budget: a fixed range of seeds, every program on cpu-kernels and cuda-host, no
/// disagreement allowed. <see cref="PendingTranslatorFixes"/> leaves out the constructs whose fix is
/// not on this branch yet; remove a flag when its fix lands (the regression tests of the class then
/// unskip too). Signed overflow (and side effects, whose ++/-- overflow) have their own, smaller
/// budget: cpu-kernels stops such programs by design.
/// </summary>
public sealed class TranslatorFuzzTests
{
    /// <summary>Constructs with a known, not yet fixed disagreement (see TranslationRegressionTests).</summary>
    public const FuzzFeatures PendingTranslatorFixes =
        FuzzFeatures.None;

    /// <summary>
    /// Signed overflow is undefined in CUDA C and not made to wrap there (index arithmetic would lose
    /// NVCC's strength reduction): cpu-kernels reports it instead. The generator's ++/-- and element
    /// compound assignments (SideEffects) overflow too even without SignedOverflow (seeds 20260..20283:
    /// 14 of 24 stopped by `v0++`, `v0--`, `a[..] -= ..`), which would starve the main budget of programs
    /// that run on both accelerators; both get the budget below, where a stop is allowed, not a mismatch.
    /// </summary>
    private const FuzzFeatures ReportedAtRun = FuzzFeatures.SignedOverflow | FuzzFeatures.SideEffects;

    private const int Programs = 24;
    private const long FirstSeed = 20260;

    private readonly ITestOutputHelper _output;

    public TranslatorFuzzTests(ITestOutputHelper output) => _output = output;

    [Fact]
    [Trait("Category", "Fuzz")]
    public void Fixed_seed_budget_finds_no_disagreement()
    {
        using var fuzzer = new DifferentialFuzzer();
        var summary = fuzzer.Run(new FuzzOptions(Programs, FirstSeed, FuzzFeatures.All & ~PendingTranslatorFixes & ~ReportedAtRun, NvrtcEvery: 8, Minimise: true));
        _output.WriteLine($"{summary.Programs} programs in {summary.Elapsed.TotalSeconds:F1} s ({summary.ProgramsPerMinute:F1}/minute); NVRTC compiled {summary.NvrtcChecked}");
        foreach (var (verdict, count) in summary.Counts)
        {
            _output.WriteLine($"{verdict}: {count}");
        }
        foreach (var (reason, count) in summary.Refusals)
        {
            _output.WriteLine($"refused {count}x: {reason}");
        }
        summary.Counts[FuzzVerdict.InvalidProgram].Should().Be(0, "the fuzzer writes well-typed C#");
        summary.Counts[FuzzVerdict.Agree].Should().BeGreaterThan(Programs / 2, "most programs must actually run on both accelerators");
        summary.Disagreements.Should().BeEmpty(string.Join("\n", summary.Disagreements.Select(d => $"{d.Verdict} seed {d.Program.Seed}: {d.Detail}\n{d.Program.Source}")));
    }

    [Fact]
    [Trait("Category", "Fuzz")]
    public void Signed_overflow_programs_are_reported_by_cpu_kernels_or_agree()
    {
        using var fuzzer = new DifferentialFuzzer();
        var summary = fuzzer.Run(new FuzzOptions(8, FirstSeed, FuzzFeatures.All & ~PendingTranslatorFixes, NvrtcEvery: 0, Minimise: true));
        summary.Counts[FuzzVerdict.InvalidProgram].Should().Be(0, "the fuzzer writes well-typed C#");
        summary.Counts[FuzzVerdict.RejectedAtRun].Should().BeGreaterThan(0, "cpu-kernels reports the programs whose signed arithmetic overflows");
        summary.Disagreements.Should().BeEmpty(string.Join("\n", summary.Disagreements.Select(d => $"{d.Verdict} seed {d.Program.Seed}: {d.Detail}\n{d.Program.Source}")));
    }

    [Fact]
    public void The_same_seed_gives_the_same_program_and_another_seed_another()
    {
        FuzzProgramGenerator.Generate(7).Source.Should().Be(FuzzProgramGenerator.Generate(7).Source);
        FuzzProgramGenerator.Generate(8).Source.Should().NotBe(FuzzProgramGenerator.Generate(7).Source);
    }

    [Fact]
    public void A_translation_bug_is_reported_as_a_disagreement_and_minimised()
    {
        // A pending class (float.NaN bits) in a program of many statements: the fuzzer must see the
        // mismatch and shrink it to the statements that matter.
        using var fuzzer = new DifferentialFuzzer();
        var results = Enumerable.Range(0, 200)
            .Select(i => FuzzProgramGenerator.Generate(90000 + i, FuzzFeatures.SpecialConstants))
            .Where(p => p.Source.Contains("float.NaN", StringComparison.Ordinal))
            .Take(3)
            .Select(p => fuzzer.RunOne(p))
            .ToList();
        results.Should().NotBeEmpty("some of 200 programs use float.NaN");
        var found = results.FirstOrDefault(r => r.IsDisagreement);
        if (found is null)
        {
            // The translator keeps .NET's NaN bits (its fix landed): the programs must then run and agree.
            results.Should().Contain(r => r.Verdict == FuzzVerdict.Agree);
            return;
        }
        var minimised = fuzzer.Minimise(found, nvrtc: false);
        minimised.Verdict.Should().Be(found.Verdict);
        minimised.Program.StatementCount.Should().BeLessThan(found.Program.StatementCount);
    }
}
