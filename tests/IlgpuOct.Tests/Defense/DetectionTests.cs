using FluentAssertions;
using IlgpuOct.Defense.Detection;
using IlgpuOct.Defense.Experiments;
using IlgpuOct.Kernels;
using IlgpuOct.Nn.Data;
using IlgpuOct.Nn.Training;
using IlgpuOct.Tests.Support;
using Xunit;

namespace IlgpuOct.Tests.Defense;

public sealed class DetectionTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), $"ilgpuoct-det-{Guid.NewGuid():N}");
    private readonly HostAccelerator _cpu = new(AcceleratorKind.Cpu);

    public DetectionTests() => Directory.CreateDirectory(_dir);

    public void Dispose()
    {
        _cpu.Dispose();
        Directory.Delete(_dir, true);
    }

    /// <summary>Two classes of Gaussian points in d dimensions, class c centred at 3c on every axis, per-axis scales 1..d.</summary>
    private static (float[] X, int[] Labels) Clusters(int perClass, int d, int seed)
    {
        var random = new Random(seed);
        var x = new float[2 * perClass * d];
        var labels = new int[2 * perClass];
        for (int i = 0; i < 2 * perClass; i++)
        {
            labels[i] = i % 2;
            for (int j = 0; j < d; j++)
            {
                double g = Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
                x[i * d + j] = (float)(3 * labels[i] + g * (1 + 0.5 * j));
            }
        }
        return (x, labels);
    }

    [Fact]
    public void Mahalanobis_score_matches_the_quadratic_form_by_hand()
    {
        // Two classes in 2-D; the pooled within-class covariance is computed here independently.
        float[] x = [0, 0, 2, 0, 0, 2, 2, 2, 10, 10, 12, 10, 10, 13, 12, 13];
        int[] labels = [0, 0, 0, 0, 1, 1, 1, 1];
        var detector = new MahalanobisDetector(relativeRegularization: 0);
        detector.Fit(x, 8, 2, labels, 2, _cpu);
        // Class 0 mean (1, 1), class 1 mean (11, 11.5); centred points give Sxx = 8, Syy = 4 + 9, Sxy = 0 over 8 points.
        double sxx = 8.0 / 8, syy = (4 + 9) / 8.0;
        float[] q = [3, 1, 11, 14];
        double[] s = detector.Score(q, 2, [0, 1]);
        double e0 = -0.5 * (2 * 2 / sxx + 0 / syy);
        double e1 = -0.5 * (0 / sxx + 2.5 * 2.5 / syy);
        Tolerance.AssertClose(s, [e0, e1], 1e-9, 1e-9, "mahalanobis scores");
    }

    [Fact]
    public void Kde_score_matches_the_kernel_sum_by_hand()
    {
        float[] x = [0, 0, 1, 0, 5, 5, 6, 5];
        int[] labels = [0, 0, 1, 1];
        var detector = new KdeDetector(bandwidth: 0.5);
        detector.Fit(x, 4, 2, labels, 2, _cpu);
        float[] q = [0.5f, 0.25f];
        double h2 = 0.25;
        double k1 = Math.Exp(-(0.25 + 0.0625) / (2 * h2)) / (2 * Math.PI * h2);
        double k2 = Math.Exp(-(0.25 + 0.0625) / (2 * h2)) / (2 * Math.PI * h2);
        double expected = Math.Log((k1 + k2) / 2);
        Tolerance.AssertClose(detector.Score(q, 1, [0]), [expected], 1e-9, 1e-9, "kde score");
    }

    [Fact]
    public void Uad_scores_with_the_mixture_of_the_predicted_class()
    {
        var (x, labels) = Clusters(60, 3, 1);
        var detector = new UadDetector();
        detector.Fit(x, labels.Length, 3, labels, 2, _cpu);
        float[] q = [0, 0, 0, 3, 3, 3];
        double[] s = detector.Score(q, 2, [1, 1]);
        Tolerance.AssertClose(s, detector.Mixtures[1].ScoreSamples(q, 2), 1e-12, 0, "uad = class-1 log density");
        detector.Score(q, 2, [0, 1])[0].Should().BeGreaterThan(s[0], "the point at class 0's centre is more normal under class 0");
    }

    [Theory]
    [InlineData("uad")]
    [InlineData("mahalanobis")]
    [InlineData("kde")]
    public void Threshold_rejects_the_calibrated_share_and_survives_save_load(string name)
    {
        var (x, labels) = Clusters(80, 4, 2);
        var detector = FeatureDetector.Create(name);
        detector.Fit(x, labels.Length, 4, labels, 2, _cpu);
        var (val, valLabels) = Clusters(100, 4, 3);
        double[] valScores = detector.Score(val, valLabels.Length, valLabels);
        detector.Calibrate(valScores, 0.05);
        int rejected = detector.Rejects(valScores).Count(r => r);
        rejected.Should().BeLessThanOrEqualTo(10).And.BeGreaterThanOrEqualTo(9, "5% of 200 clean validation scores fall below the threshold (ties aside)");
        // Far-away points (an "attack" that leaves the class manifold) are rejected.
        float[] far = [.. Enumerable.Repeat(40f, 8)];
        detector.Rejects(detector.Score(far, 2, [0, 1])).Should().AllBeEquivalentTo(true);

        string path = Path.Combine(_dir, name + ".safetensors");
        detector.Save(path);
        var loaded = FeatureDetector.Load(path);
        loaded.Name.Should().Be(name);
        loaded.Threshold.Should().Be(detector.Threshold);
        Tolerance.AssertClose(loaded.Score(val, valLabels.Length, valLabels), valScores, 1e-9, 1e-9, "scores after load");
    }

    [Theory]
    [InlineData("uad")]
    [InlineData("mahalanobis")]
    [InlineData("kde")]
    public void Density_gradients_match_finite_differences(string name)
    {
        var (x, labels) = Clusters(50, 3, 4);
        var detector = FeatureDetector.Create(name);
        detector.Fit(x, labels.Length, 3, labels, 2, _cpu);
        var density = detector.ClassDensities[1];
        float[] p = [2.5f, 3.5f, 2f];
        var gradient = new float[3];
        double s0 = density.ScoreAndGradient(p, 1, gradient)[0];
        Tolerance.AssertClose(detector.Score(p, 1, [1]), [s0], 1e-6, 1e-6, "density = score");
        var numeric = new double[3];
        for (int j = 0; j < 3; j++)
        {
            float[] plus = (float[])p.Clone();
            float[] minus = (float[])p.Clone();
            plus[j] += 1e-2f;
            minus[j] -= 1e-2f;
            numeric[j] = (density.ScoreAndGradient(plus, 1, [])[0] - density.ScoreAndGradient(minus, 1, [])[0]) / 2e-2;
        }
        Tolerance.AssertClose(gradient.Select(g => (double)g).ToArray(), numeric, 1e-3, 1e-2, $"{name} gradient");
    }

    [Fact]
    public void Fit_refuses_a_class_without_features()
    {
        var detector = new MahalanobisDetector();
        var act = () => detector.Fit([1, 2, 3, 4], 2, 2, [0, 0], 2, _cpu);
        act.Should().Throw<ArgumentException>().WithMessage("*Class 1*");
    }

    [Fact]
    public void Fit_score_and_evaluate_work_from_files()
    {
        using var acc = DeviceSelection.Open("cpu", out _);
        string data = Path.Combine(_dir, "d.dat");
        DatasetFile.Write(data, SyntheticOct.Generate(16, 16, [("train", 48), ("val", 16), ("test", 16)], 5));
        var trained = Trainer.Run(acc, new TrainingOptions { DataPath = data, OutputDirectory = Path.Combine(_dir, "m"), Epochs = 1, BatchSize = 16, Width = 2 });
        string det = Path.Combine(_dir, "uad.safetensors");
        var fitted = DetectorWorkflow.Fit(acc, new DetectorFitOptions { ModelPath = trained.CheckpointPath, DataPath = data, Detector = "uad", CleanRejectionRate = 0.25 });
        fitted.Save(det);
        var clean = DetectorWorkflow.Score(acc, det, trained.CheckpointPath, data, "val", null);
        clean.Images.Should().Be(16);
        clean.Rejected.Should().BeInRange(3, 4, "the threshold was set to reject 25% of these very images");
        clean.Scores.Count(s => s < fitted.Threshold).Should().Be(clean.Rejected);

        string adv = Path.Combine(_dir, "adv.safetensors");
        var evaluation = Evaluate.Run(acc, new EvaluateOptions { ModelPath = trained.CheckpointPath, DataPath = data, DetectorPath = det, Attack = "pgd", Epsilon = 0.02f, Steps = 2, Images = 16, SaveAdversarialPath = adv });
        evaluation.Curve.Should().ContainSingle().Which.Attacked.Should().Be(16);
        evaluation.Detection.Should().ContainSingle().Which.Detector.Should().Be("uad");
        evaluation.Risk.Select(r => r.Detector).Should().BeEquivalentTo(["none", "uad"]);
        var scored = DetectorWorkflow.Score(acc, det, trained.CheckpointPath, null, "test", adv);
        scored.Images.Should().Be(16);
        scored.Accuracy.Should().BeApproximately(evaluation.Curve[0].Accuracy, 1e-12, "the saved images are the evaluated adversarial ones");
        var act = () => DetectorWorkflow.Score(acc, det, trained.CheckpointPath, data, "test", adv);
        act.Should().Throw<ArgumentException>().WithMessage("*exactly one*");
    }
}
