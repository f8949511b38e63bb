using System.Globalization;
using FluentAssertions;
using IlgpuOct.Defense.Attacks;
using IlgpuOct.Kernels;
using IlgpuOct.Nn;
using IlgpuOct.Nn.Checkpoints;
using IlgpuOct.Nn.IO;
using IlgpuOct.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace IlgpuOct.Tests.Defense;

/// <summary>
/// FGSM and PGD against PyTorch (golden/attacks.safetensors) on the resnet18.safetensors model
/// with its after.* state in evaluation mode; eps, steps and step size come from the metadata.
/// Images: at least 99.9% of the pixels equal (|a - e| &lt;= 1e-6; a sign of an almost-zero
/// gradient component may differ). Logits: |a - e| &lt;= 1e-3 max|e| + 1e-3 |e|.
/// </summary>
[Trait("Category", "Golden")]
public sealed class AttackGoldenTests(ITestOutputHelper output)
{
    private const double MinEqualFraction = 0.999;
    private const float PixelTolerance = 1e-6f;

    private static ResNet18 LoadModel(Accelerator acc)
    {
        var file = Golden.Load("resnet18.safetensors");
        var config = new ResNetConfig(
            int.Parse(file.Metadata["width"], CultureInfo.InvariantCulture),
            int.Parse(file.Metadata["in_channels"], CultureInfo.InvariantCulture),
            int.Parse(file.Metadata["num_classes"], CultureInfo.InvariantCulture));
        var model = new ResNet18(acc, config, seed: 1);
        Checkpoint.LoadState(model, file, prefix: "after.", strict: false, loadOptimizer: false);
        return model;
    }

    /// <summary>"steps=10,step_size=0.0075,random_start=false,norm=linf" as a dictionary.</summary>
    internal static Dictionary<string, string> ParseSettings(string text) =>
        text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(p => p.Split('=', 2))
            .ToDictionary(p => p[0], p => p.Length > 1 ? p[1] : "", StringComparer.Ordinal);

    /// <summary>
    /// cpu-kernels runs every layer through its C# kernels with exact block semantics (minutes for
    /// PGD's 12 passes), so there it checks FGSM only; the PGD step kernel itself is compared with
    /// its CPU implementation in AttackKernelsTests.
    /// </summary>
    [Theory]
    [InlineData("cpu", true)]
    [InlineData("cpu-kernels", false)]
    public void Fgsm_and_pgd_match_pytorch(string device, bool runPgd)
    {
        var file = Golden.Load("attacks.safetensors");
        using var acc = DeviceSelection.Open(device, out _);
        using var model = LoadModel(acc);
        using var classifier = new ResNetClassifier(model);
        using var objective = new CrossEntropyObjective(classifier);
        var inv = CultureInfo.InvariantCulture;
        float eps = float.Parse(file.Metadata["epsilon"], inv);
        var pgd = ParseSettings(file.Metadata["pgd"]);
        pgd["norm"].Should().Be("linf", "this test runs the L-infinity attack");
        var options = new PgdOptions
        {
            Epsilon = eps,
            Steps = int.Parse(pgd["steps"], inv),
            StepSize = float.Parse(pgd["step_size"], inv),
            RandomStart = bool.Parse(pgd["random_start"]),
        };
        options.RandomStart.Should().BeFalse("a random start cannot be reproduced across frameworks");

        var input = file["input"];
        var goal = AttackGoal.Untargeted(file["labels"].ToInt32());
        var fgsm = Fgsm.Run(objective, input.ToFloat(), input.Shape, goal, eps);
        Compare("fgsm", fgsm, file);
        fgsm.Linf.Max().Should().BeLessThanOrEqualTo(eps + 1e-6f);

        if (!runPgd)
        {
            return;
        }
        var result = Pgd.Run(objective, input.ToFloat(), input.Shape, goal, options);
        Compare("pgd", result, file);
        result.Linf.Max().Should().BeLessThanOrEqualTo(eps + 1e-6f);
    }

    private void Compare(string key, AttackResult result, SafeTensorFile file)
    {
        float[] expected = file[key].ToFloat();
        result.Adversarial.Length.Should().Be(expected.Length);
        int equal = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            equal += Math.Abs(result.Adversarial[i] - expected[i]) <= PixelTolerance ? 1 : 0;
        }
        double fraction = (double)equal / expected.Length;
        float[] expectedLogits = file[key + ".logits"].ToFloat();
        double maxAbs = expectedLogits.Max(v => Math.Abs((double)v));
        double maxError = expectedLogits.Select((e, i) => Math.Abs((double)result.AdversarialLogits[i] - e)).Max();
        output.WriteLine($"{key}: equal pixels {equal}/{expected.Length} = {fraction:F6}; logits max |error| {maxError:E3} (max |logit| {maxAbs:F4})");
        fraction.Should().BeGreaterThanOrEqualTo(MinEqualFraction, $"{key}: all but a handful of pixels must match");
        Tolerance.AssertClose(result.AdversarialLogits, expectedLogits, 1e-3 * maxAbs, 1e-3, key + ".logits");
        result.Adversarial.Should().OnlyContain(v => v >= 0f && v <= 1f);
    }
}
