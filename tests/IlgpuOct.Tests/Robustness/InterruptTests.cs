using System.Diagnostics;
using FluentAssertions;
using IlgpuOct.Nn.Data;
using Xunit;

namespace IlgpuOct.Tests.Robustness;

/// <summary>Ctrl+C on a real `ilgpuoct train` process: the first checkpoints, the second aborts; never a trace or a leftover temporary file.</summary>
public sealed class InterruptTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "ilgpuoct-interrupt-" + Guid.NewGuid().ToString("N"));

    public InterruptTests()
    {
        Directory.CreateDirectory(_root);
        DatasetFile.Write(DataPath, SyntheticOct.Generate(16, 16, [("train", 64), ("test", 8)], seed: 2));
    }

    private string DataPath => Path.Combine(_root, "d.dat");

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

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void Interrupting_training_exits_130_cleanly(int signals)
    {
        string run = Path.Combine(_root, $"run{signals}");
        string cli = Path.Combine(AppContext.BaseDirectory, "ilgpuoct.dll");
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        foreach (string arg in new[] { cli, "train", "--data", DataPath, "--out", run, "--epochs", "1000", "--batch", "4", "--width", "2", "--device", "cpu", "--threads", "1" })
        {
            start.ArgumentList.Add(arg);
        }
        using var process = Process.Start(start)!;
        var stderr = new System.Text.StringBuilder();
        var training = new ManualResetEventSlim();
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                return;
            }
            lock (stderr)
            {
                stderr.AppendLine(e.Data);
            }
            if (e.Data.StartsWith("step ", StringComparison.Ordinal))
            {
                training.Set();
            }
        };
        process.BeginErrorReadLine();
        process.StandardOutput.ReadToEndAsync();
        training.Wait(TimeSpan.FromSeconds(120)).Should().BeTrue("training should start and report a step");
        for (int i = 0; i < signals; i++)
        {
            using var kill = Process.Start("kill", ["-INT", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])!;
            kill.WaitForExit();
            Thread.Sleep(5);
        }
        process.WaitForExit(60_000).Should().BeTrue("an interrupted run ends");
        process.WaitForExit();
        string text;
        lock (stderr)
        {
            text = stderr.ToString();
        }
        process.ExitCode.Should().Be(130, text);
        text.Should().Contain("interrupt:").And.NotContain("   at ").And.NotContain("Unhandled exception");
        Directory.EnumerateFiles(run, "*.tmp", SearchOption.AllDirectories).Should().BeEmpty();
        if (signals == 1)
        {
            File.Exists(Path.Combine(run, "last.safetensors")).Should().BeTrue("the first interrupt writes a checkpoint");
        }
    }
}
