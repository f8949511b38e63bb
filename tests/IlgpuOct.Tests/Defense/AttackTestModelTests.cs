using FluentAssertions;
using IlgpuOct.Defense.Attacks;
using IlgpuOct.Defense.Density;
using IlgpuOct.Kernels;
using IlgpuOct.Nn;
using IlgpuOct.Tests.Support;
using Xunit;

namespace IlgpuOct.Tests.Defense;

/// <summary>
/// A tiny, deterministic "trained" classifier for attack tests: a width-4 ResNet-18 on 1x16x16
/// images of two classes (bright left half / bright right half, plus noise) whose classifier is
/// set in closed form to the nearest-class-mean rule on its penultimate features.
/// </summary>
internal sealed class TinyAttackSetup : IDisposable
{
    public const int Side = 16;

    public TinyAttackSetup(Accelerator accelerator, int perClass, int seed, int classes = 2)
    {
        Accelerator = accelerator;
        Model = new ResNet18(accelerator, new ResNetConfig(4, 1, classes), seed);
        (Images, Labels) = MakeImages(perClass, classes, seed);
        Shape = [Labels.Length, 1, Side, Side];
        Classifier = new ResNetClassifier(Model);
        FitNearestMeanClassifier();
    }

    public Accelerator Accelerator { get; }

    public ResNet18 Model { get; }

    public ResNetClassifier Classifier { get; }

    public float[] Images { get; } // (N, 1, 16, 16)

    public int[] Labels { get; } // (N)

    public int[] Shape { get; } // (N, 1, 16, 16)

    public int Count => Labels.Length;

    public int Classes => Model.Config.NumClasses;

    /// <summary>Class c: a bright vertical band at position c, on a noisy background, in [0.1, 0.9].</summary>
    public static (float[] Images, int[] Labels) MakeImages(int perClass, int classes, int seed)
    {
        var random = new Random(seed);
        int n = perClass * classes;
        var images = new float[n * Side * Side];
        var labels = new int[n];
        int band = Side / classes;
        for (int i = 0; i < n; i++)
        {
            int c = i % classes;
            labels[i] = c;
            for (int h = 0; h < Side; h++)
            {
                for (int w = 0; w < Side; w++)
                {
                    float baseValue = w / band == c ? 0.65f : 0.3f;
                    images[(i * Side + h) * Side + w] = baseValue + (float)((random.NextDouble() - 0.5) * 0.4);
                }
            }
        }
        return (images, labels);
    }

    /// <summary>Penultimate features (N, 8w) and pooled stage outputs of a set of images.</summary>
    public float[][] StagePools(float[] images, int[] shape) => Classifier.Forward(images, shape).StagePools;

    private void FitNearestMeanClassifier()
    {
        using var input = Tensor.FromHost(Accelerator, Images, Shape);
        var outputs = Model.ForwardEval(input);
        float[] features = outputs.Features.Download();
        int d = Model.Config.FeatureCount;
        var means = new double[Classes * d];
        var counts = new int[Classes];
        for (int i = 0; i < Count; i++)
        {
            counts[Labels[i]]++;
            for (int j = 0; j < d; j++)
            {
                means[Labels[i] * d + j] += features[i * d + j];
            }
        }
        var weight = new float[Classes * d];
        var bias = new float[Classes];
        for (int c = 0; c < Classes; c++)
        {
            double norm = 0;
            for (int j = 0; j < d; j++)
            {
                double mu = means[c * d + j] / counts[c];
                weight[c * d + j] = (float)mu;
                norm += mu * mu;
            }
            bias[c] = (float)(-norm / 2);
        }
        // Scale the rule so the median clean margin is about 2 logits: an ordinary, not saturated, classifier.
        var margins = new double[Count];
        for (int i = 0; i < Count; i++)
        {
            var scores = new double[Classes];
            for (int c = 0; c < Classes; c++)
            {
                scores[c] = bias[c];
                for (int j = 0; j < d; j++)
                {
                    scores[c] += weight[c * d + j] * features[i * d + j];
                }
            }
            margins[i] = Math.Abs(scores[Labels[i]] - scores.Where((_, c) => c != Labels[i]).Max());
        }
        Array.Sort(margins);
        float scale = (float)(2.0 / Math.Max(margins[Count / 2], 1e-6));
        Model.Classifier.Weight.Value.Upload(weight.Select(v => v * scale).ToArray());
        Model.Classifier.Bias.Value.Upload(bias.Select(v => v * scale).ToArray());
    }

    /// <summary>One full-covariance mixture per class and stage, fitted on the clean features of that class.</summary>
    public GaussianMixture[][] FitMixtures(int components, int seed, CovarianceType type = CovarianceType.Full)
    {
        float[][] pools = StagePools(Images, Shape);
        var result = new GaussianMixture[pools.Length][];
        for (int s = 0; s < pools.Length; s++)
        {
            int d = Classifier.StageWidths[s];
            result[s] = new GaussianMixture[Classes];
            for (int c = 0; c < Classes; c++)
            {
                var rows = Enumerable.Range(0, Count).Where(i => Labels[i] == c).ToArray();
                var x = new float[rows.Length * d];
                for (int r = 0; r < rows.Length; r++)
                {
                    Array.Copy(pools[s], rows[r] * d, x, r * d, d);
                }
                result[s][c] = new GaussianMixture(new GaussianMixtureOptions { Components = components, CovarianceType = type, Seed = seed, RegCovar = 1e-4 })
                    .Fit(x, rows.Length, d);
            }
        }
        return result;
    }

    public void Dispose()
    {
        Classifier.Dispose();
        Model.Dispose();
    }
}

public sealed class AttackTestModelTests
{
    [Fact]
    public void Tiny_model_classifies_its_clean_images_and_its_tapped_forward_equals_the_plain_one()
    {
        using var acc = DeviceSelection.Open("cpu", out _);
        using var setup = new TinyAttackSetup(acc, perClass: 8, seed: 3);
        float[] logits = setup.Classifier.Logits(setup.Images, setup.Shape);
        int[] predicted = Accuracy.ArgMax(logits, setup.Count, setup.Classes);
        predicted.Zip(setup.Labels).Count(p => p.First == p.Second).Should().BeGreaterThanOrEqualTo(setup.Count * 7 / 8);

        var (tappedLogits, pools) = setup.Classifier.Forward(setup.Images, setup.Shape);
        Tolerance.AssertClose(tappedLogits, logits, 0, 0, "tapped logits");
        using var input = Tensor.FromHost(acc, setup.Images, setup.Shape);
        var eval = setup.Model.ForwardEval(input, stagePools: true);
        for (int s = 0; s < 4; s++)
        {
            pools[s].Length.Should().Be(setup.Count * setup.Classifier.StageWidths[s]);
            Tolerance.AssertClose(pools[s], eval.StagePools![s].Download(), 0, 0, $"layer{s + 1} pooled");
        }

        var dLogits = new float[logits.Length];
        for (int i = 0; i < dLogits.Length; i++)
        {
            dLogits[i] = (i % 3) - 1f;
        }
        setup.Classifier.Logits(setup.Images, setup.Shape);
        float[] expected = setup.Classifier.InputGradient(dLogits);
        setup.Classifier.Forward(setup.Images, setup.Shape);
        float[] actual = setup.Classifier.InputGradient(dLogits, [null, null, null, null]);
        expected.Max(Math.Abs).Should().BeGreaterThan(0f);
        Tolerance.AssertClose(actual, expected, 0, 0, "input gradient with no stage gradients");
    }
}
