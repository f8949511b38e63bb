using FluentAssertions;
using IlgpuOct.Defense.Attacks;
using IlgpuOct.Defense.Training;
using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Operators;
using IlgpuOct.Nn;
using IlgpuOct.Nn.Checkpoints;
using IlgpuOct.Nn.Data;
using IlgpuOct.Nn.Training;
using IlgpuOct.Tests.Support;
using Xunit;

namespace IlgpuOct.Tests.Defense;

public sealed class TrainingModesTests : IDisposable
{
    private const int Size = 16;
    private static readonly ResNetConfig Tiny = new(2, 1, 4);
    private readonly string _dir = Path.Combine(Path.GetTempPath(), $"ilgpuoct-modes-{Guid.NewGuid():N}");
    private readonly Accelerator _acc = DeviceSelection.Open("cpu", out _);

    public TrainingModesTests() => Directory.CreateDirectory(_dir);

    public void Dispose()
    {
        _acc.Dispose();
        Directory.Delete(_dir, true);
    }

    private (float[] Images, int[] Labels) Batch(int n, int seed)
    {
        var images = new float[n * Size * Size];
        var labels = new int[n];
        var bytes = new byte[Size * Size];
        for (int i = 0; i < n; i++)
        {
            labels[i] = i % 4;
            SyntheticOct.Render(labels[i], seed + i, Size, Size, bytes);
            for (int p = 0; p < bytes.Length; p++)
            {
                images[i * bytes.Length + p] = bytes[p] / 255f;
            }
        }
        return (images, labels);
    }

    private static float[][] Gradients(ResNet18 model) => [.. model.Parameters.Select(p => p.Grad.Download())];

    [Fact]
    public void Gce_step_uses_guided_complement_entropy_on_the_forward_logits()
    {
        var (images, labels) = Batch(8, 1);
        using var model = new ResNet18(_acc, Tiny, 3);
        using var reference = new ResNet18(_acc, Tiny, 3);
        using var x = Tensor.FromHost(_acc, images, 8, 1, Size, Size);
        using var y = _acc.Allocate<int>(8);
        _acc.CopyFromHost<int>(labels, y.View);
        using var buffers = new StepBuffers(_acc);
        new GuidedComplementTraining().ComputeGradients(new TrainingBatch(model, x, y.View, 0, 0, 5), buffers);
        float loss = _acc.Download(buffers.Loss.View)[0];

        using var x2 = Tensor.FromHost(_acc, images, 8, 1, Size, Size);
        float[] z = reference.Forward(x2, training: true).Download();
        var dz = new float[z.Length];
        float expected = GuidedComplementEntropy.ComputeCpu(new LogitsShape(8, 4), z, labels, dz);
        using var d = Tensor.FromHost(_acc, dz, 8, 4);
        reference.Backward(d, BackwardMode.Parameters);
        Tolerance.AssertClose([loss], [expected], 1e-6, 1e-5, "gce loss");
        var g = Gradients(model);
        var e = Gradients(reference);
        for (int i = 0; i < g.Length; i++)
        {
            Tolerance.AssertClose(g[i], e[i], 1e-6, 1e-4, model.Parameters[i].Name);
        }
    }

    [Fact]
    public void At_batch_is_half_clean_half_fgsm_with_epsilon_in_range()
    {
        var (images, labels) = Batch(8, 11);
        using var model = new ResNet18(_acc, Tiny, 4);
        using var x = Tensor.FromHost(_acc, images, 8, 1, Size, Size);
        using var y = _acc.Allocate<int>(8);
        _acc.CopyFromHost<int>(labels, y.View);
        var mode = new AdversarialTraining();
        var seenEps = new List<float>();
        for (long step = 0; step < 5; step++)
        {
            x.Upload(images);
            mode.PrepareBatch(new TrainingBatch(model, x, y.View, 0, step, 9));
            seenEps.Add(mode.LastEpsilon);
            mode.LastEpsilon.Should().BeInRange(0.001f, 0.003f);
            float[] prepared = x.Download();
            int half = 4 * Size * Size;
            prepared.AsSpan(0, half).ToArray().Should().Equal(images.AsSpan(0, half).ToArray(), "the first half stays clean");
            using var classifier = new ResNetClassifier(model);
            float[] expected = FgsmSamples.Make(classifier, images[half..], [4, 1, Size, Size], labels[4..], mode.LastEpsilon, false, new Random(0));
            Tolerance.AssertClose(prepared.AsSpan(half), expected, 0, 0, "FGSM half");
            double maxChange = 0;
            int moved = 0;
            for (int i = half; i < images.Length; i++)
            {
                double change = Math.Abs(prepared[i] - images[i]);
                maxChange = Math.Max(maxChange, change);
                moved += change > 0 ? 1 : 0;
            }
            maxChange.Should().BeLessThanOrEqualTo(mode.LastEpsilon + 1e-6);
            moved.Should().BeGreaterThan(half / 2, "FGSM moves most pixels by eps");
        }
        seenEps.Distinct().Should().HaveCountGreaterThan(1, "each batch draws its own epsilon");
    }

    /// <summary>
    /// The device FGSM (the attack verbs' PGD loop on device labels) against the host arithmetic that AT
    /// ran before: on the cpu engine the images are bit for bit the same, and on cpu-kernels the loss
    /// gradient d CE / dx agrees with the host's within tolerance.
    /// </summary>
    [Theory]
    [InlineData("cpu", false)]
    [InlineData("cpu", true)]
    [InlineData("cpu-kernels", false)]
    [InlineData("cpu-kernels", true)]
    public void Fgsm_on_the_device_follows_the_host_computation(string device, bool randomStart)
    {
        using var acc = DeviceSelection.Open(device, out _);
        var (images, labels) = Batch(4, 41);
        int[] shape = [4, 1, Size, Size];
        const float eps = 0.01f;
        using var model = new ResNet18(acc, Tiny, 4);
        using var classifier = new ResNetClassifier(model);
        float[] onDevice = FgsmSamples.Make(classifier, images, shape, labels, eps, randomStart, new Random(5));

        float[] x = (float[])images.Clone();
        if (randomStart)
        {
            AttackMath.RandomStart(x, images, eps, new Random(5));
        }
        float[] start = (float[])x.Clone();
        float[] logits = classifier.Logits(x, shape);
        var dLogits = new float[4 * 4];
        AttackMath.CrossEntropySum(logits, labels, 4, 4, dLogits);
        float[] hostGradient = classifier.InputGradient(dLogits);
        AttackKernels.SignStepProjectClipCpu(x, images, hostGradient, randomStart ? 1.25f * eps : eps, eps);

        using var objective = new CrossEntropyObjective(classifier);
        using var xDevice = Tensor.FromHost(acc, start, shape);
        using var classes = acc.Upload<int>(labels);
        float[] deviceGradient = objective.Gradient(xDevice, classes.View, targeted: false).Download();
        Tolerance.AssertClose(deviceGradient, hostGradient, 1e-6, 1e-4, $"d CE / dx on {device}");
        if (device == "cpu")
        {
            Tolerance.AssertClose(onDevice, x, 0, 0, "FGSM images on the cpu engine");
        }
        onDevice.Zip(images, (a, b) => Math.Abs(a - b)).Max().Should().BeLessThanOrEqualTo(eps + 1e-6f);
    }

    [Fact]
    public void Fgsm_random_start_stays_in_the_epsilon_ball()
    {
        var (images, labels) = Batch(4, 21);
        using var model = new ResNet18(_acc, Tiny, 4);
        using var classifier = new ResNetClassifier(model);
        float[] adv = FgsmSamples.Make(classifier, images, [4, 1, Size, Size], labels, 0.01f, true, new Random(2));
        float[] plain = FgsmSamples.Make(classifier, images, [4, 1, Size, Size], labels, 0.01f, false, new Random(2));
        adv.Zip(images, (a, b) => Math.Abs(a - b)).Max().Should().BeLessThanOrEqualTo(0.01f + 1e-6f);
        adv.Should().NotEqual(plain);
    }

    [Fact]
    public void Ssat_loss_and_gradient_are_supervised_plus_five_times_unsupervised()
    {
        const int b = 4;
        string path = Path.Combine(_dir, "d.dat");
        DatasetFile.Write(path, SyntheticOct.Generate(Size, Size, [("train", 8), ("unlabeled", 8)], 3));
        var (images, labels) = Batch(b, 31);
        using var model = new ResNet18(_acc, Tiny, 6);
        using var reference = new ResNet18(_acc, Tiny, 6);
        using var x = Tensor.FromHost(_acc, images, b, 1, Size, Size);
        using var y = _acc.Allocate<int>(b);
        _acc.CopyFromHost<int>(labels, y.View);
        using var buffers = new StepBuffers(_acc);
        var options = new AdversarialTrainingOptions();
        using var mode = SemiSupervisedAdversarialTraining.Open(path, null, options, 0);
        const long step = 2;
        const int seed = 13;
        mode.ComputeGradients(new TrainingBatch(model, x, y.View, 0, step, seed), buffers);
        float loss = _acc.Download(buffers.Loss.View)[0];
        float[] supImages = x.Download(); // the AT batch the mode trained on

        // Hand composition on an identical model: pseudo-labels, FGSM of the unlabeled images, two separate CE terms.
        using var file = DatasetFile.Open(path);
        var unlabeled = new float[b * Size * Size];
        file.Split("unlabeled").CopyImages(mode.UnlabeledIndices(step, b), unlabeled);
        float[] unlabeledAdv;
        int[] pseudo;
        using (var classifier = new ResNetClassifier(reference))
        {
            pseudo = Accuracy.ArgMax(classifier.Logits(unlabeled, [b, 1, Size, Size]), b, 4);
            unlabeledAdv = FgsmSamples.Make(classifier, unlabeled, [b, 1, Size, Size], pseudo, options.EpsilonFor(seed, step, 1), false, new Random(0));
        }
        pseudo.Should().Equal(mode.LastPseudoLabels);
        using var joint = Tensor.FromHost(_acc, [.. supImages, .. unlabeledAdv], 2 * b, 1, Size, Size);
        float[] z = reference.Forward(joint, training: true).Download();
        var dSup = new float[b * 4];
        var dUnsup = new float[b * 4];
        float sup = CrossEntropy.ComputeCpu(new LogitsShape(b, 4), z.AsSpan(0, b * 4), labels, dSup);
        float unsup = CrossEntropy.ComputeCpu(new LogitsShape(b, 4), z.AsSpan(b * 4), pseudo, dUnsup);
        Tolerance.AssertClose([loss], [sup + 5 * unsup], 1e-5, 1e-5, "ssat loss");
        Tolerance.AssertClose([mode.LastLossParts.Supervised, mode.LastLossParts.Unsupervised], [sup, unsup], 1e-5, 1e-5, "loss parts");
        using var d = Tensor.FromHost(_acc, [.. dSup, .. dUnsup.Select(v => 5 * v)], 2 * b, 4);
        reference.Backward(d, BackwardMode.Parameters);
        var g = Gradients(model);
        var e = Gradients(reference);
        for (int i = 0; i < g.Length; i++)
        {
            Tolerance.AssertClose(g[i], e[i], 1e-5, 1e-3, model.Parameters[i].Name);
        }
    }

    [Fact]
    public void Ssat_teacher_gives_the_pseudo_labels_and_the_normalised_loss_is_divided_by_one_plus_lambda()
    {
        const int b = 4;
        string path = Path.Combine(_dir, "t.dat");
        DatasetFile.Write(path, SyntheticOct.Generate(Size, Size, [("train", 8), ("unlabeled", 8)], 3));
        string teacherPath = Path.Combine(_dir, "teacher.safetensors");
        using (var teacher = new ResNet18(_acc, Tiny, 99))
        {
            Checkpoint.Save(teacherPath, teacher, 1, 1, "none");
        }
        var (images, labels) = Batch(b, 51);
        using var y = _acc.Allocate<int>(b);
        _acc.CopyFromHost<int>(labels, y.View);
        const long step = 3;
        (float Loss, int[] Pseudo, float[][] Gradients, int[] Indices) Step(bool normalise)
        {
            using var model = new ResNet18(_acc, Tiny, 6);
            using var x = Tensor.FromHost(_acc, images, b, 1, Size, Size);
            using var buffers = new StepBuffers(_acc);
            var options = new AdversarialTrainingOptions { PseudoLabelTeacher = teacherPath, NormalizeByLambda = normalise };
            using var mode = SemiSupervisedAdversarialTraining.Open(path, null, options, 0);
            mode.ComputeGradients(new TrainingBatch(model, x, y.View, 0, step, 13), buffers);
            return (_acc.Download(buffers.Loss.View)[0], mode.LastPseudoLabels, Gradients(model), mode.UnlabeledIndices(step, b));
        }
        var plain = Step(false);
        var normalised = Step(true);

        // The teacher's evaluation-mode predictions on the clean unlabeled images of the step.
        using var file = DatasetFile.Open(path);
        var unlabeled = new float[b * Size * Size];
        file.Split("unlabeled").CopyImages(plain.Indices, unlabeled);
        var (reloaded, _) = Checkpoint.Open(_acc, teacherPath);
        using (reloaded)
        using (var classifier = new ResNetClassifier(reloaded))
        {
            int[] expected = Accuracy.ArgMax(classifier.Logits(unlabeled, [b, 1, Size, Size]), b, 4);
            plain.Pseudo.Should().Equal(expected);
            normalised.Pseudo.Should().Equal(expected);
        }
        Tolerance.AssertClose([normalised.Loss], [plain.Loss / 6], 1e-6, 1e-5, "loss / (1 + lambda)");
        for (int i = 0; i < plain.Gradients.Length; i++)
        {
            Tolerance.AssertClose(normalised.Gradients[i], [.. plain.Gradients[i].Select(g => g / 6)], 1e-6, 1e-3, $"gradient {i} / (1 + lambda)");
        }
    }

    [Fact]
    public void Trainer_runs_every_mode_through_the_factory()
    {
        string path = Path.Combine(_dir, "t.dat");
        DatasetFile.Write(path, SyntheticOct.Generate(Size, Size, [("train", 8), ("unlabeled", 4), ("test", 4)], 1));
        foreach (string mode in DefenseTrainingModes.All)
        {
            var result = Trainer.Run(_acc, new TrainingOptions
            {
                DataPath = path,
                OutputDirectory = Path.Combine(_dir, mode),
                Epochs = 1,
                BatchSize = 4,
                Width = 2,
                Mode = mode,
                ModeFactory = DefenseTrainingModes.Factory(mode, path, null, new AdversarialTrainingOptions(), 0),
            });
            result.Epochs.Should().HaveCount(1);
            double.IsFinite(result.Epochs[0].TrainLoss).Should().BeTrue(mode);
        }
    }

    [Fact]
    public void Gce_cancelled_mid_epoch_resumes_although_its_loss_is_negative()
    {
        string path = Path.Combine(_dir, "g.dat");
        DatasetFile.Write(path, SyntheticOct.Generate(Size, Size, [("train", 16), ("test", 4)], 2));
        TrainingOptions Options() => new()
        {
            DataPath = path,
            OutputDirectory = Path.Combine(_dir, "gce"),
            Epochs = 2,
            BatchSize = 4,
            Width = 2,
            Mode = "gce",
            ModeFactory = DefenseTrainingModes.Factory("gce", path, null, new AdversarialTrainingOptions(), 0),
        };
        using var cts = new CancellationTokenSource();
        var interrupted = Trainer.Run(_acc, Options(), new ReportingProgress(p =>
        {
            if (p.Phase == "train" && p.Step == 6)
            {
                cts.Cancel(); // mid-way through epoch 2
            }
        }), cts.Token);
        interrupted.Cancelled.Should().BeTrue();
        double stored = double.Parse(IlgpuOct.Nn.IO.SafeTensorFile.Read(interrupted.CheckpointPath).Metadata["epoch_loss_sum"], System.Globalization.CultureInfo.InvariantCulture);
        stored.Should().BeNegative("GCE's loss is negative, which is what this test resumes from");

        var resumed = Trainer.Run(_acc, Options() with { Resume = true });
        resumed.Cancelled.Should().BeFalse();
        resumed.Epochs.Should().HaveCount(2);
        resumed.Epochs[1].TrainLoss.Should().BeNegative();
    }

    private sealed class ReportingProgress(Action<TrainingProgress> onReport) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => onReport(value);
    }

    [Fact]
    public void Ssat_lambda_warmup_ramps_linearly_to_lambda()
    {
        var options = new AdversarialTrainingOptions { Lambda = 5, LambdaWarmupSteps = 10 };
        options.LambdaAt(0).Should().BeApproximately(0.5f, 1e-6f);
        options.LambdaAt(4).Should().BeApproximately(2.5f, 1e-6f);
        options.LambdaAt(9).Should().Be(5f);
        options.LambdaAt(100).Should().Be(5f);
        new AdversarialTrainingOptions().LambdaAt(0).Should().Be(5f, "no warm-up is the paper's setting");
    }

    [Fact]
    public void Ssat_pseudo_label_threshold_drops_unconfident_images_from_the_loss()
    {
        const int b = 4;
        string path = Path.Combine(_dir, "c.dat");
        DatasetFile.Write(path, SyntheticOct.Generate(Size, Size, [("train", 8), ("unlabeled", 8)], 3));
        var (images, labels) = Batch(b, 41);
        using var y = _acc.Allocate<int>(b);
        _acc.CopyFromHost<int>(labels, y.View);
        double Unsupervised(float threshold, out int confident)
        {
            using var model = new ResNet18(_acc, Tiny, 8);
            using var x = Tensor.FromHost(_acc, images, b, 1, Size, Size);
            using var buffers = new StepBuffers(_acc);
            using var mode = SemiSupervisedAdversarialTraining.Open(path, null, new AdversarialTrainingOptions { PseudoLabelThreshold = threshold }, 0);
            mode.ComputeGradients(new TrainingBatch(model, x, y.View, 0, 0, 1), buffers);
            confident = mode.LastConfidentCount;
            return mode.LastLossParts.Unsupervised;
        }
        double all = Unsupervised(0f, out int allCount);
        double none = Unsupervised(1f, out int noneCount);
        allCount.Should().Be(b);
        noneCount.Should().Be(0, "a 4-class softmax never reaches probability 1 on an untrained model");
        all.Should().BeGreaterThan(0);
        none.Should().Be(0);
    }
}
