using FluentAssertions;
using IlgpuOct.Fuzz;
using Xunit;
using Xunit.Abstractions;

namespace IlgpuOct.Tests.Robustness;

/// <summary>Tests that capture the console run alone (they redirect Console.Out/Error process-wide).</summary>
[CollectionDefinition("Console", DisableParallelization = true)]
public sealed class ConsoleCollection;

/// <summary>
/// The fuzzer with a fixed seed budget (about a minute on 2 cores): every reader on structure-aware
/// mutations, a tenth of them also through the CLI, and every verb with hostile option values.
/// Longer runs: <c>dotnet run -c Release --project tests/IlgpuOct.Fuzz -- --inputs 1200</c>.
/// </summary>
[Collection("Console")]
public sealed class FuzzTests(ITestOutputHelper output)
{
    [Fact]
    public void Every_reader_refuses_mutated_files_with_the_format_exception_only()
    {
        var report = FuzzRunner.Run(new FuzzOptions { InputsPerTarget = 150, Seed = 20261129, CliEvery = 15 });
        output.WriteLine(report.Describe());
        report.Counts.Keys.Should().Contain(["safetensors", "checkpoint", "detector-uad", "detector-mahalanobis", "detector-kde", "gmm", "adversarial", "dataset", "npz"]);
        report.Counts.Values.Should().OnlyContain(c => c.Inputs == 150 && c.Refused > 0, "every reader got its budget and the mutations reached its checks");
        report.Findings.Should().BeEmpty(string.Join("\n", report.Findings.Select(f => $"{f.Target} #{f.Input} {f.Kind}: {f.Detail}")));
    }

    [Fact]
    public void Every_verb_refuses_out_of_range_options_with_one_error_line_and_a_non_zero_exit()
    {
        var (runs, problems) = OptionFuzz.Run(TimeSpan.FromSeconds(30));
        output.WriteLine($"{runs} runs");
        runs.Should().BeGreaterThan(500);
        problems.Should().BeEmpty();
    }

    [Fact]
    public void The_cli_oracle_rejects_traces_internal_errors_and_extra_error_lines()
    {
        CliOracle.Judge(3, "error: 'x' is not a valid data set file: content: truncated\n", mustFail: true).Should().BeNull();
        CliOracle.Judge(0, "", mustFail: true).Should().Contain("exit 0");
        CliOracle.Judge(70, "error: internal error (NullReferenceException): x\n", mustFail: false).Should().Contain("internal error");
        CliOracle.Judge(1, "error: a\nerror: b\n", mustFail: false).Should().Contain("2 'error:' lines");
        CliOracle.Judge(134, "Unhandled exception. System.Exception: boom\n   at Foo.Bar() in /x.cs:line 3\n", mustFail: false).Should().Contain("stack trace");
        FuzzRunner.Check(() => throw new NullReferenceException(), TimeSpan.FromSeconds(5), false).Kind.Should().Be("crash");
        FuzzRunner.Check(() => Thread.Sleep(3000), TimeSpan.FromMilliseconds(200), false).Kind.Should().Be("hang");
        FuzzRunner.Check(() => throw new IlgpuOct.Kernels.InvalidFileFormatException("f", "checkpoint", "width", "bad"), TimeSpan.FromSeconds(5), false).Kind.Should().Be("refused");
    }
}
