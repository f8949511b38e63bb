using System.Text.Json;
using FluentAssertions;
using IlgpuOct.Kernels;
using IlgpuOct.Nn.Checkpoints;
using IlgpuOct.Nn.Data;
using IlgpuOct.Nn.IO;
using Xunit;

namespace IlgpuOct.Tests.Defense;

/// <summary><c>ilgpuoct attack</c> end to end on a tiny checkpoint and data set file.</summary>
public sealed class AttackCommandTests : IDisposable
{
    private readonly string _folder = Path.Combine(Path.GetTempPath(), "ilgpuoct-attack-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_folder))
        {
            Directory.Delete(_folder, recursive: true);
        }
    }

    private (string Model, string Data) WriteInputs()
    {
        Directory.CreateDirectory(_folder);
        using var acc = DeviceSelection.Open("cpu", out _);
        using var setup = new TinyAttackSetup(acc, perClass: 6, seed: 31);
        string model = Path.Combine(_folder, "model.safetensors");
        Checkpoint.Save(model, setup.Model, 0, 0, "");
        byte[] pixels = setup.Images.Select(v => (byte)Math.Clamp(MathF.Round(v * 255f), 0, 255)).ToArray();
        string data = Path.Combine(_folder, "data.ioct");
        DatasetFile.Write(data, new DatasetContent(1, TinyAttackSetup.Side, TinyAttackSetup.Side, ["left", "right"], "attack test",
            [new SplitData("train", pixels, setup.Labels), new SplitData("test", pixels, setup.Labels)]));
        return (model, data);
    }

    [Theory]
    [InlineData("pgd", new[] { "--eps", "0.05", "--steps", "3" })]
    [InlineData("fgsm", new[] { "--eps", "0.05" })]
    [InlineData("cw", new[] { "--iterations", "4", "--binary-steps", "2", "--c", "1" })]
    [InlineData("hfc", new[] { "--eps", "0.05", "--steps", "2", "--targeted", "--lambda", "0.01", "--gmm-covariance", "diag" })]
    public void Attack_writes_the_adversarial_set_per_image_results_and_a_consistent_summary(string attack, string[] extra)
    {
        var (model, data) = WriteInputs();
        string output = Path.Combine(_folder, "out-" + attack);
        int code = IlgpuOct.Cli.Program.Main(["attack", "--model", model, "--data", data, "--attack", attack, "--device", "cpu", "--limit", "8",
            "--batch-size", "5", "--out", output, .. extra]);
        code.Should().Be(0);

        var file = SafeTensorFile.Read(Path.Combine(output, "adversarial.safetensors"));
        file["adv"].Shape.Should().Equal(8, 1, TinyAttackSetup.Side, TinyAttackSetup.Side);
        float[] adv = file["adv"].ToFloat();
        adv.Should().OnlyContain(v => v >= 0f && v <= 1f);
        byte[] success = file["success"].ToBytes();
        float[] linf = file["linf"].ToFloat();
        long[] labels = file["labels"].ToInt64();
        long[] predAdv = file["pred_adv"].ToInt64();
        if (attack != "cw")
        {
            linf.Should().OnlyContain(v => v <= 0.05f + 1e-6f);
        }

        string[] csv = File.ReadAllLines(Path.Combine(output, "per_image.csv"));
        csv.Should().HaveCount(9);
        csv[0].Should().Be("index,label,target,pred_clean,pred_adv,success,linf,l2");

        using var summary = JsonDocument.Parse(File.ReadAllText(Path.Combine(output, "summary.json")));
        var root = summary.RootElement;
        root.GetProperty("attack").GetString().Should().Be(attack);
        root.GetProperty("images").GetInt32().Should().Be(8);
        if (attack == "pgd")
        {
            root.GetProperty("settings").GetProperty("effective_step_size").GetDouble().Should().BeApproximately(2.5 * 0.05 / 3, 1e-6);
        }
        root.GetProperty("success_rate").GetDouble().Should().BeApproximately(success.Count(s => s == 1) / 8.0, 1e-12);
        root.GetProperty("robust_accuracy").GetDouble().Should().BeApproximately(Enumerable.Range(0, 8).Count(i => predAdv[i] == labels[i]) / 8.0, 1e-12);
        root.GetProperty("mean_linf").GetDouble().Should().BeApproximately(linf.Average(v => (double)v), 1e-6);
        if (attack == "hfc")
        {
            file.Contains("targets").Should().BeTrue();
            file["targets"].ToInt64().Zip(labels).Should().OnlyContain(p => p.First != p.Second);
        }
    }

    [Fact]
    public void A_target_without_targeted_is_a_clear_input_error()
    {
        var (model, data) = WriteInputs();
        int code = IlgpuOct.Cli.Program.Main(["attack", "--model", model, "--data", data, "--attack", "pgd", "--target", "1", "--device", "cpu", "--out", Path.Combine(_folder, "bad")]);
        code.Should().Be(2);
    }
}
