using System.CommandLine;
using FluentAssertions;
using IlgpuOct.Cli;
using IlgpuOct.Fuzz;
using IlgpuOct.Nn.Data;
using Xunit;

namespace IlgpuOct.Tests.Robustness;

/// <summary>What the CLI does with failures: one line, a distinct exit code, never a stack trace.</summary>
[Collection("Console")]
public sealed class CliFailureTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "ilgpuoct-cli-fail-" + Guid.NewGuid().ToString("N"));

    public CliFailureTests() => Directory.CreateDirectory(_root);

    public void Dispose()
    {
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private static (int Code, string Error) Run(params string[] args)
    {
        var original = Console.Error;
        var originalOut = Console.Out;
        var error = new StringWriter();
        Console.SetError(error);
        Console.SetOut(TextWriter.Null);
        try
        {
            return (Program.Main(args), error.ToString());
        }
        finally
        {
            Console.SetError(original);
            Console.SetOut(originalOut);
        }
    }

    private static void OneLine(string stderr, string pattern)
    {
        var errors = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => l.StartsWith("error:", StringComparison.Ordinal)).ToList();
        errors.Should().ContainSingle();
        errors[0].Should().Match(pattern);
        CliOracle.Judge(1, stderr, mustFail: true).Should().BeNull();
    }

    [Fact]
    public void Failures_map_to_distinct_exit_codes_with_one_line()
    {
        string data = Path.Combine(_root, "d.dat");
        DatasetFile.Write(data, SyntheticOct.Generate(16, 16, [("train", 8), ("test", 4)], 1));
        string file = Path.Combine(_root, "plain-file");
        File.WriteAllText(file, "x");

        var (code, error) = Run("data", "info", Path.Combine(_root, "missing.dat"));
        code.Should().Be(CliRunner.NotFound);
        OneLine(error, "error:*missing.dat*does not exist*");

        (code, error) = Run("data", "info", file);
        code.Should().Be(CliRunner.InvalidFile);
        OneLine(error, "error:*plain-file*not a valid data set file*");

        (code, error) = Run("data", "preview", "--data", data, "--scale", "1000", "--out", Path.Combine(_root, "p.png"));
        code.Should().Be(CliRunner.BadInput);
        OneLine(error, "error: --scale must be in 1..16; got 1000.*");

        // An output below a regular file cannot be created: an I/O failure, not a trace.
        (code, error) = Run("data", "generate", "--count", "8", "--resolution", "8", "--out", Path.Combine(file, "x.dat"));
        code.Should().BeOneOf(CliRunner.IoFailure, CliRunner.NotFound, CliRunner.AccessDenied);
        OneLine(error, "error:*");

        (code, error) = Run("train", "--data", data, "--out", Path.Combine(file, "run"), "--device", "cpu", "--epochs", "1", "--batch", "4", "--width", "2");
        code.Should().BeOneOf(CliRunner.IoFailure, CliRunner.NotFound, CliRunner.AccessDenied);
        OneLine(error, "error:*");
    }

    [Fact]
    public void Classify_unwraps_aggregates_and_keeps_messages_on_one_line()
    {
        CliRunner.Classify(new AggregateException(new UnauthorizedAccessException("Access to the path '/x' is denied."))).Code.Should().Be(CliRunner.AccessDenied);
        CliRunner.Classify(new IOException("No space left on device : '/x'", 28)).Message.Should().Contain("disk is full");
        CliRunner.Classify(new NullReferenceException()).Code.Should().Be(CliRunner.Internal);
        CliRunner.Classify(new ArgumentOutOfRangeException("capacity", -1, "Non-negative number required.")).Message.Should().NotContain("Parameter");
        CliRunner.OneLine("a\nb\r\nc").Should().Be("a; b; c");
    }

    [Fact]
    public void Every_verb_that_computes_takes_threads_and_the_help_lists_exit_codes()
    {
        static IEnumerable<Command> Leaves(IEnumerable<Command> commands) =>
            commands.SelectMany(c => c.Subcommands.Count == 0 ? [c] : Leaves(c.Subcommands));
        var computing = Leaves(CommandCatalog.Create()).Where(c => c.Options.Any(o => o.Name == "--device") || c.Name is "generate" or "import").ToList();
        computing.Select(c => c.Name).Should().Contain(["train", "attack", "fit", "score", "evaluate", "reproduce", "gemm", "generate", "import"]);
        computing.Should().OnlyContain(c => c.Options.Any(o => o.Name == "--threads"));
        CliRunner.ExitCodeHelp.Should().Contain("3 invalid input file").And.Contain("70 internal error");
    }
}
