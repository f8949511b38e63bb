using System.Runtime.CompilerServices;
using System.Text.RegularExpressions;
using FluentAssertions;
using IlgpuOct.Cli;
using IlgpuOct.Cli.Rendering;
using Xunit;

namespace IlgpuOct.Tests.Cli;

/// <summary>
/// What the verbs print, checked against approved files under Cli/Approved: standard output and
/// standard error of an invocation through an injected console, with the volatile parts (the run
/// folder, timings, throughput) normalised. A missing or different approval writes
/// NAME.received.txt next to it; review it and rename it to NAME.approved.txt to accept.
/// </summary>
public sealed partial class CliOutputTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), $"ilgpuoct-cli-{Guid.NewGuid():N}");

    public CliOutputTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, true);

    [Fact]
    public void Train_then_evaluate_print_the_approved_progress_tables_and_summaries()
    {
        string data = Path.Combine(_dir, "oct.ioct");
        Invoke("data", "generate", "--train", "32", "--unlabeled", "0", "--val", "8", "--test", "8", "--resolution", "16", "--seed", "1", "--out", data).Code.Should().Be(0);

        var train = Invoke("train", "--data", data, "--epochs", "2", "--batch", "8", "--width", "2", "--device", "cpu", "--threads", "2", "--out", Path.Combine(_dir, "run"));
        train.Code.Should().Be(0, train.Text);
        Approve("train", train.Text);

        string checkpoint = Directory.GetFiles(Path.Combine(_dir, "run"), "*.safetensors", SearchOption.AllDirectories).Order(StringComparer.Ordinal).Last();
        var evaluate = Invoke("evaluate", "--model", checkpoint, "--data", data, "--attack", "fgsm", "--images", "8", "--device", "cpu", "--threads", "2");
        evaluate.Code.Should().Be(0, evaluate.Text);
        Approve("evaluate", evaluate.Text);
    }

    [Fact]
    public void Reproduce_micro_prints_the_approved_stages_and_tables()
    {
        var reproduce = Invoke("reproduce", "--profile", "micro", "--device", "cpu", "--threads", "2", "--out", Path.Combine(_dir, "reproduce"));
        reproduce.Code.Should().Be(0, reproduce.Text);
        Approve("reproduce", reproduce.Text);
    }

    [Fact]
    public void Export_prints_the_approved_summary_and_a_missing_checkpoint_as_one_line()
    {
        using (var acc = IlgpuOct.Kernels.DeviceSelection.Open("cpu", out _))
        using (var model = new IlgpuOct.Nn.ResNet18(acc, new IlgpuOct.Nn.ResNetConfig(2, 1, 3), seed: 4))
        {
            IlgpuOct.Nn.Checkpoints.Checkpoint.Save(Path.Combine(_dir, "model.safetensors"), model, 1, 10, "sum");
        }
        var export = Invoke("export", "--model", Path.Combine(_dir, "model.safetensors"), "--onnx", Path.Combine(_dir, "model.onnx"));
        export.Code.Should().Be(0, export.Text);
        var missing = Invoke("export", "--model", Path.Combine(_dir, "missing.safetensors"), "--onnx", Path.Combine(_dir, "missing.onnx"));
        missing.Code.Should().Be(CliRunner.NotFound);
        File.Exists(Path.Combine(_dir, "missing.onnx")).Should().BeFalse();
        Approve("export", export.Text + missing.Text);
    }

    [Fact]
    public void An_error_goes_to_standard_error_as_one_line()
    {
        var missing = Invoke("train", "--data", Path.Combine(_dir, "missing.ioct"), "--device", "cpu", "--out", Path.Combine(_dir, "r"));
        missing.Code.Should().Be(CliRunner.NotFound);
        missing.Output.Should().BeEmpty();
        missing.Error.Split('\n', StringSplitOptions.RemoveEmptyEntries).Should().ContainSingle(l => l.StartsWith("error: ", StringComparison.Ordinal));
    }

    private (int Code, string Output, string Error, string Text) Invoke(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = Program.Run(args, CliConsole.ForWriters(output, error));
        string o = output.ToString(), e = error.ToString();
        return (code, o, e, $"$ ilgpuoct {string.Join(' ', args)}\n--- exit {code}\n--- stdout\n{o}--- stderr\n{e}");
    }

    /// <summary>Replaces what changes from run to run or machine to machine, keeping every computed figure.</summary>
    private string Normalise(string text)
    {
        text = text.Replace("\r\n", "\n", StringComparison.Ordinal).Replace(_dir, "<dir>", StringComparison.Ordinal);
        text = Clock().Replace(text, "[mm:ss]");
        text = Throughput().Replace(text, "<n> $1");
        text = Seconds().Replace(text, "<t> s");
        text = Remaining().Replace(text, "left <t>");
        text = Machine().Replace(text, "<cores> CPU cores (<simd>)");
        text = EpochRow().Replace(text, "${head}<n> ${lr} <t>");
        text = ModelRow().Replace(text, "${head}<t>${tail}");
        text = RunEnvironment().Replace(text, "Wall time <the run's timings, machine and load>");
        return text;
    }

    private void Approve(string name, string text, [CallerFilePath] string source = "")
    {
        string folder = Path.Combine(Path.GetDirectoryName(source)!, "Approved");
        string approved = Path.Combine(folder, $"{name}.approved.txt");
        string received = Path.Combine(folder, $"{name}.received.txt");
        string actual = Normalise(text);
        string expected = File.Exists(approved) ? File.ReadAllText(approved).Replace("\r\n", "\n", StringComparison.Ordinal) : "";
        if (actual != expected)
        {
            File.WriteAllText(received, actual);
        }
        else
        {
            File.Delete(received);
        }
        actual.Should().Be(expected, $"the output of `{name}` should match {approved} (the new output is in {received})");
    }

    [GeneratedRegex(@"\[\d\d:\d\d\]")]
    private static partial Regex Clock();

    [GeneratedRegex(@"\d+(?:\.\d+)? (img/s|images/s)")]
    private static partial Regex Throughput();

    [GeneratedRegex(@"\d+(?:\.\d+)? s\b")]
    private static partial Regex Seconds();

    [GeneratedRegex(@"left (?:\d+h)?\d+m\d+s")]
    private static partial Regex Remaining();

    [GeneratedRegex(@"\d+ CPU cores \([^)]*\)")]
    private static partial Regex Machine();

    /// <summary>A row of train's epochs table: epoch, loss, accuracies, images/s, lr, seconds.</summary>
    [GeneratedRegex(@"^(?<head>\d+ +[\d.]+ +[\d.]+ % +[\d.]+ % +)[\d.]+ +(?<lr>[\d.E+-]+) +[\d.]+$", RegexOptions.Multiline)]
    private static partial Regex EpochRow();

    /// <summary>A row of reproduce's models table, whose fourth column is the training time in seconds.</summary>
    [GeneratedRegex(@"^(?<head>\| \w+ \| [\d.]+ % \| [\d.]+ % \| )[\d.]+(?<tail> \| \w+ \|)$", RegexOptions.Multiline)]
    private static partial Regex ModelRow();

    /// <summary>reproduce's line on where and how long it ran.</summary>
    [GeneratedRegex(@"^Wall time .*$", RegexOptions.Multiline)]
    private static partial Regex RunEnvironment();
}
