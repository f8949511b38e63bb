using FluentAssertions;
using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Operators;
using IlgpuOct.Nn.Data;
using IlgpuOct.Nn.IO;
using IlgpuOct.Nn.Training;
using Xunit;

namespace IlgpuOct.Tests.Robustness;

/// <summary>Integrity, resume fallback, stale temporaries and determinism of training on the cpu engine.</summary>
public sealed class TrainingRobustnessTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "ilgpuoct-robust-train-" + Guid.NewGuid().ToString("N"));

    public TrainingRobustnessTests()
    {
        Directory.CreateDirectory(_root);
        DatasetFile.Write(DataPath, SyntheticOct.Generate(16, 16, [("train", 24), ("test", 8)], seed: 7));
    }

    private string DataPath => Path.Combine(_root, "tiny.dat");

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

    private TrainingOptions Options(string name, string? data = null) => new()
    {
        DataPath = data ?? DataPath,
        OutputDirectory = Path.Combine(_root, name),
        Epochs = 2,
        BatchSize = 8,
        LearningRate = 0.05f,
        Seed = 3,
        Width = 2,
    };

    [Fact]
    public void Same_seed_and_thread_count_give_identical_weights_on_the_cpu_engine()
    {
        // The thread count is the process-wide Gemm.CpuMaxThreads (what --threads sets); it is read, not
        // changed here, so tests running alongside are not disturbed.
        int threads = Gemm.CpuMaxThreads;
        using var acc = DeviceSelection.Open("cpu", out _);
        var first = SafeTensorFile.Read(Trainer.Run(acc, Options("a")).CheckpointPath);
        var second = SafeTensorFile.Read(Trainer.Run(acc, Options("b")).CheckpointPath);
        first.Keys.Should().BeEquivalentTo(second.Keys);
        foreach (string key in first.Keys.Where(k => first[k].DType == SafeTensorDType.F32))
        {
            first[key].ToFloat().Should().Equal(second[key].ToFloat(), $"tensor {key} with {threads} thread(s)");
        }
    }

    [Fact]
    public void Training_verifies_the_data_checksum_unless_told_not_to()
    {
        string damaged = Path.Combine(_root, "damaged.dat");
        byte[] bytes = File.ReadAllBytes(DataPath);
        bytes[^100] ^= 0x10; // a pixel of the test split: the header stays valid, only the SHA-256 differs
        File.WriteAllBytes(damaged, bytes);
        using var acc = DeviceSelection.Open("cpu", out _);
        var act = () => Trainer.Run(acc, Options("verify", damaged));
        act.Should().Throw<InvalidFileFormatException>().WithMessage("*damaged.dat*checksum*--no-verify*");
        Trainer.Run(acc, Options("noverify", damaged) with { VerifyData = false }).Cancelled.Should().BeFalse();
    }

    [Fact]
    public void An_empty_training_split_is_refused_with_a_clear_message()
    {
        // Issue 12: an .npz with zero training images imported, then `train` divided by zero.
        string npz = Path.Combine(_root, "empty.npz");
        var entries = IlgpuOct.Fuzz.NpzMutator.SeedEntries(4, 12, new Random(1)).Select(e => e.Name.StartsWith("train", StringComparison.Ordinal)
            ? e with { Shape = e.Name.EndsWith("images.npy", StringComparison.Ordinal) ? "(0, 12, 12)" : "(0, 1)", Data = [] }
            : e);
        File.WriteAllBytes(npz, IlgpuOct.Fuzz.NpzMutator.Build(entries));
        string empty = Path.Combine(_root, "empty.dat");
        DatasetFile.Write(empty, NpzImport.Import(npz, new NpzImportOptions(new Preprocess(16))).Content);
        using var acc = DeviceSelection.Open("cpu", out _);
        var act = () => Trainer.Run(acc, Options("empty", empty));
        act.Should().Throw<ArgumentException>().WithMessage("*'train'*");
    }

    [Fact]
    public void Resume_falls_back_to_the_newest_readable_epoch_checkpoint_when_last_is_missing_or_broken()
    {
        using var acc = DeviceSelection.Open("cpu", out _);
        var options = Options("resume");
        var finished = Trainer.Run(acc, options);
        string dir = options.OutputDirectory;
        string last = Path.Combine(dir, Trainer.LastCheckpointName);

        File.WriteAllBytes(last, [1, 2, 3]); // broken
        var fromBroken = Trainer.Run(acc, options with { Resume = true });
        fromBroken.Notices.Should().Contain(n => n.Contains("unreadable") && n.Contains(Trainer.EpochCheckpointName(2)));
        fromBroken.Step.Should().Be(finished.Step);

        File.Delete(last);
        File.WriteAllBytes(Path.Combine(dir, Trainer.EpochCheckpointName(2)), [9]); // the newest is broken too
        var fromOlder = Trainer.Run(acc, options with { Resume = true });
        fromOlder.Notices.Should().Contain(n => n.StartsWith($"{Trainer.LastCheckpointName} is missing", StringComparison.Ordinal)
            && n.Contains(Trainer.EpochCheckpointName(1)) && n.Contains($"skipped unreadable {Trainer.EpochCheckpointName(2)}"));
    }

    [Fact]
    public void Temporary_files_of_dead_writers_are_removed_and_live_ones_kept()
    {
        string dir = Path.Combine(_root, "tmp");
        Directory.CreateDirectory(dir);
        string stale = Path.Combine(dir, $".last.safetensors.{int.MaxValue - 7}.{Guid.NewGuid():N}.tmp");
        string live = Path.Combine(dir, $".last.safetensors.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        File.WriteAllBytes(stale, [1]);
        File.WriteAllBytes(live, [1]);
        AtomicFile.RemoveStaleTemporaries(dir).Should().Be(1);
        File.Exists(stale).Should().BeFalse();
        File.Exists(live).Should().BeTrue();
    }
}
