using System.Globalization;
using FluentAssertions;
using IlgpuOct.Kernels;
using IlgpuOct.Nn;
using IlgpuOct.Nn.Data;
using IlgpuOct.Nn.IO;
using IlgpuOct.Nn.Training;
using Xunit;

namespace IlgpuOct.Tests.Nn;

/// <summary>The training loop on a tiny model (width 2) and a tiny synthetic data set (16x16).</summary>
public sealed class TrainingTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "ilgpuoct-training-" + Guid.NewGuid().ToString("N"));

    public TrainingTests()
    {
        Directory.CreateDirectory(_root);
        // 28 training images in batches of 8: three full batches and one of 4 per epoch.
        var content = SyntheticOct.Generate(16, 16, [("train", 28), ("test", 12)], seed: 5);
        DatasetFile.Write(DataPath, content);
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

    private TrainingOptions Options(string name, int epochs = 2, float lr = 0.05f) => new()
    {
        DataPath = DataPath,
        OutputDirectory = Path.Combine(_root, name),
        Epochs = epochs,
        BatchSize = 8,
        LearningRate = lr,
        Seed = 3,
        Width = 2,
    };

    /// <summary>Reports synchronously (Progress&lt;T&gt; would post to the thread pool).</summary>
    private sealed class SyncProgress(Action<TrainingProgress> onReport) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => onReport(value);
    }

    [Fact]
    public void Run_writes_metrics_config_and_a_checkpoint_per_epoch()
    {
        using var acc = DeviceSelection.Open("cpu", out _);
        var reports = new List<TrainingProgress>();
        var result = Trainer.Run(acc, Options("plain"), new SyncProgress(reports.Add));

        result.Cancelled.Should().BeFalse();
        result.Step.Should().Be(8);
        string dir = Path.Combine(_root, "plain");
        File.Exists(Path.Combine(dir, Trainer.ConfigName)).Should().BeTrue();
        File.Exists(Path.Combine(dir, Trainer.EpochCheckpointName(1))).Should().BeTrue();
        File.Exists(Path.Combine(dir, Trainer.EpochCheckpointName(2))).Should().BeTrue();
        var metrics = Trainer.ReadMetrics(Path.Combine(dir, Trainer.MetricsName));
        metrics.Select(m => m.Epoch).Should().Equal(1, 2);
        metrics.Should().OnlyContain(m => double.IsFinite(m.TrainLoss) && m.TrainAccuracy >= 0 && m.TrainAccuracy <= 1
            && m.TestAccuracy >= 0 && m.TestAccuracy <= 1 && m.ImagesPerSecond > 0 && m.Lr > 0);
        string firstLine = File.ReadLines(Path.Combine(dir, Trainer.MetricsName)).First();
        firstLine.Should().Contain("\"train_loss\"").And.Contain("\"train_accuracy\"").And.Contain("\"test_accuracy\"").And.Contain("\"images_per_second\"");
        reports.Where(r => r.Phase == "train").Select(r => r.Step).Should().Equal(Enumerable.Range(1, 8).Select(i => (long)i));
        reports.Last(r => r.Phase == "train").Remaining.Should().Be(TimeSpan.Zero);

        var checkpoint = SafeTensorFile.Read(result.CheckpointPath);
        checkpoint.Metadata["epoch"].Should().Be("2");
        checkpoint.Metadata["step"].Should().Be("8");
        checkpoint.Metadata["width"].Should().Be("2");
        checkpoint.Contains("optimizer.momentum.fc.weight").Should().BeTrue();
    }

    [Fact]
    public void Cancel_then_resume_equals_an_uninterrupted_run_bit_for_bit()
    {
        using var acc = DeviceSelection.Open("cpu", out _);
        var straight = Trainer.Run(acc, Options("straight"));

        using var cts = new CancellationTokenSource();
        var interrupted = Trainer.Run(acc, Options("resumed"), new SyncProgress(p =>
        {
            if (p.Phase == "train" && p.Step == 6)
            {
                cts.Cancel(); // mid-way through epoch 2
            }
        }), cts.Token);
        interrupted.Cancelled.Should().BeTrue();
        interrupted.Step.Should().Be(6);
        SafeTensorFile.Read(interrupted.CheckpointPath).Metadata["step"].Should().Be("6");

        var resumed = Trainer.Run(acc, Options("resumed") with { Resume = true });
        resumed.Cancelled.Should().BeFalse();
        resumed.Step.Should().Be(straight.Step);

        var a = SafeTensorFile.Read(straight.CheckpointPath);
        var b = SafeTensorFile.Read(resumed.CheckpointPath);
        a.Keys.Should().BeEquivalentTo(b.Keys);
        foreach (string key in a.Keys)
        {
            if (a[key].DType == SafeTensorDType.F32)
            {
                b[key].ToFloat().Should().Equal(a[key].ToFloat(), $"'{key}' should be bit-identical after resume");
            }
            else
            {
                b[key].ToInt64().Should().Equal(a[key].ToInt64(), key);
            }
        }
        var ma = Trainer.ReadMetrics(Path.Combine(_root, "straight", Trainer.MetricsName));
        var mb = Trainer.ReadMetrics(Path.Combine(_root, "resumed", Trainer.MetricsName));
        mb.Select(m => (m.Epoch, m.TrainLoss, m.TrainAccuracy, m.TestAccuracy, m.Lr, m.Step))
            .Should().Equal(ma.Select(m => (m.Epoch, m.TrainLoss, m.TrainAccuracy, m.TestAccuracy, m.Lr, m.Step)));
    }

    [Fact]
    public void Training_time_is_kept_in_the_checkpoint_and_adds_up_over_resumed_sessions()
    {
        using var acc = DeviceSelection.Open("cpu", out _);
        using var cts = new CancellationTokenSource();
        var interrupted = Trainer.Run(acc, Options("timed"), new SyncProgress(p =>
        {
            if (p.Phase == "train" && p.Step == 6)
            {
                cts.Cancel();
            }
        }), cts.Token);
        interrupted.TrainingSeconds.Should().BePositive();
        double stored = double.Parse(SafeTensorFile.Read(interrupted.CheckpointPath).Metadata[Trainer.TrainingSecondsKey], CultureInfo.InvariantCulture);
        stored.Should().Be(interrupted.TrainingSeconds);

        var resumed = Trainer.Run(acc, Options("timed") with { Resume = true });
        resumed.TrainingSeconds.Should().BeGreaterThan(interrupted.TrainingSeconds, "the second session trains steps 7 and 8 on top of the first");
        double final = double.Parse(SafeTensorFile.Read(resumed.CheckpointPath).Metadata[Trainer.TrainingSecondsKey], CultureInfo.InvariantCulture);

        // A finished run opened again (what reproduce does on a rerun) trains nothing and reports the stored total.
        var reopened = Trainer.Run(acc, Options("timed") with { Resume = true });
        reopened.Step.Should().Be(resumed.Step);
        reopened.TrainingSeconds.Should().BeApproximately(final, 0.5);
        reopened.TrainingSeconds.Should().BeGreaterThanOrEqualTo(final);
    }

    [Fact]
    public void Non_finite_loss_stops_with_epoch_and_step()
    {
        using var acc = DeviceSelection.Open("cpu", out _);
        var act = () => Trainer.Run(acc, Options("diverge", epochs: 1, lr: 1e30f));
        act.Should().Throw<TrainingDivergedException>().WithMessage("*epoch 1, step *");
    }

    [Fact]
    public void Resume_with_other_settings_or_a_used_folder_without_resume_is_refused()
    {
        using var acc = DeviceSelection.Open("cpu", out _);
        Trainer.Run(acc, Options("used", epochs: 1));
        var again = () => Trainer.Run(acc, Options("used", epochs: 1));
        again.Should().Throw<ArgumentException>().WithMessage("*--resume*");
        var other = () => Trainer.Run(acc, Options("used", epochs: 1, lr: 0.1f) with { Resume = true });
        other.Should().Throw<ArgumentException>().WithMessage("*lr=0.1*");
        var none = () => Trainer.Run(acc, Options("empty") with { Resume = true });
        none.Should().Throw<FileNotFoundException>();
    }

    [Fact]
    public void Schedules_follow_the_option()
    {
        using var acc = DeviceSelection.Open("cpu", out _);
        var cosine = Trainer.Run(acc, Options("cosine", epochs: 2));
        var step = Trainer.Run(acc, Options("step", epochs: 2) with { Schedule = "step" });
        // 8 steps; metrics report the rate of each epoch's last step (indices 3 and 7). Step decay: x0.1 after every
        // ceil(8 / 3) = 3 steps, so steps 3..5 use 0.005 and steps 6..7 use 0.0005.
        cosine.Epochs[0].Lr.Should().BeApproximately(0.025 * (1 + Math.Cos(Math.PI * 3 / 8)), 1e-6);
        cosine.Epochs[1].Lr.Should().BeApproximately(0.025 * (1 + Math.Cos(Math.PI * 7 / 8)), 1e-6);
        step.Epochs[0].Lr.Should().BeApproximately(0.005, 1e-8);
        step.Epochs[1].Lr.Should().BeApproximately(0.0005, 1e-9);
    }
}
