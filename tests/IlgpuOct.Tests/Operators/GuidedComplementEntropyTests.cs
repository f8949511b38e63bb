using FluentAssertions;
using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Operators;
using IlgpuOct.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace IlgpuOct.Tests.Operators;

public sealed class GuidedComplementEntropyTests
{
    private readonly ITestOutputHelper _output;

    public GuidedComplementEntropyTests(ITestOutputHelper output) => _output = output;

    [Theory]
    [Trait("Category", "Golden")]
    [InlineData(AcceleratorKind.Cpu)]
    [InlineData(AcceleratorKind.CpuKernels)]
    [InlineData(AcceleratorKind.CudaHost)]
    public void Loss_and_gradient_match_golden(AcceleratorKind kind)
    {
        var file = Golden.Load("ops.safetensors");
        file.Metadata["gce"].Should().Contain("alpha=1/3", "the implementation's alpha is 1/3");
        var lt = file["gce.logits"];
        var s = new LogitsShape(lt.Shape[0], lt.Shape[1]);
        float[] logits = lt.ToFloat();
        int[] labels = file["gce.labels"].ToInt32();
        var loss = new float[1];
        var dlogits = new float[s.Length];
        using var device = TestDevice.Open(kind);
        var acc = device.Accelerator;
        GuidedComplementEntropy.Compute(acc, s, device.View<float>(logits), device.View<int>(labels), device.View<float>(loss), device.View<float>(dlogits));
        device.Sync();
        float[] eloss = file["gce.loss"].ToFloat(), edl = file["gce.dlogits"].ToFloat();
        _output.WriteLine($"{kind} gce {s}: loss {loss[0]:R} vs {eloss[0]:R}; relL2 loss {Tolerance.RelativeL2(loss, eloss):G3}, dlogits {Tolerance.RelativeL2(dlogits, edl):G3}");
        Tolerance.AssertRelativeL2(loss, eloss, 1e-4, "gce.loss");
        Tolerance.AssertRelativeL2(dlogits, edl, 1e-3, "gce.dlogits");
        Tolerance.AssertClose(loss, eloss, atol: 1e-6, rtol: 1e-5, "gce.loss");
        Tolerance.AssertClose(dlogits, edl, atol: 1e-6, rtol: 1e-3, "gce.dlogits");
    }

    [Theory]
    [InlineData(3, 3, 2.0)]
    [InlineData(4, 6, 5.0)]
    [InlineData(2, 10, 8.0)]
    public void Gradient_matches_central_differences_of_double_loss(int n, int classes, double spread)
    {
        var s = new LogitsShape(n, classes);
        var random = new Random(n * 17 + classes);
        double[] z = GradientCheck.Random(random, s.Length, spread);
        var labels = new int[n];
        for (int i = 0; i < n; i++)
        {
            labels[i] = random.Next(classes);
        }
        var dlogits = new float[s.Length];
        float loss = GuidedComplementEntropy.ComputeCpu(s, GradientCheck.ToFloat(z), labels, dlogits);
        Tolerance.AssertClose([(double)loss], [LossDouble(s, z, labels)], 1e-7, 1e-5, "loss vs double reference");
        Tolerance.AssertClose(GradientCheck.ToDouble(dlogits), GradientCheck.Numeric(v => LossDouble(s, v, labels), z), 1e-6, 1e-4, "dlogits vs central differences");

        var sum = new float[s.Length];
        float sumLoss = GuidedComplementEntropy.ComputeCpu(s, GradientCheck.ToFloat(z), labels, sum, LossReduction.Sum);
        Tolerance.AssertClose([(double)sumLoss], [(double)loss * n], 1e-7, 1e-5, "sum = n * mean");
    }

    [Fact]
    public void Two_classes_are_rejected_because_the_normaliser_vanishes()
    {
        var act = () => GuidedComplementEntropy.ComputeCpu(new LogitsShape(1, 2), [0f, 1f], [0], Span<float>.Empty);
        act.Should().Throw<ArgumentOutOfRangeException>().WithMessage("*at least 3 classes*");
    }

    [Theory]
    [InlineData(7, 4, false)]
    [InlineData(300, 3, false)]
    [InlineData(5, 10, true)]
    public void Kernel_on_cpu_kernels_matches_the_cpu_implementation(int n, int classes, bool sum)
    {
        var s = new LogitsShape(n, classes);
        var random = new Random(n * 3 + classes);
        float[] z = GradientCheck.ToFloat(GradientCheck.Random(random, s.Length, 6.0));
        var labels = new int[n];
        for (int i = 0; i < n; i++)
        {
            labels[i] = random.Next(classes);
        }
        var reduction = sum ? LossReduction.Sum : LossReduction.Mean;
        var dlogits = new float[s.Length];
        float loss = GuidedComplementEntropy.ComputeCpu(s, z, labels, dlogits, reduction);
        using var acc = new HostAccelerator(AcceleratorKind.CpuKernels);
        var kloss = new float[1];
        var kdl = new float[s.Length];
        GuidedComplementEntropy.Compute(acc, s, new View<float>(z), new View<int>(labels), new View<float>(kloss), new View<float>(kdl), reduction);
        Tolerance.AssertClose(kloss, [loss], 1e-6, 1e-6, "loss kernel");
        Tolerance.AssertClose(kdl, dlogits, 1e-7, 1e-6, "dlogits kernel");
    }

    /// <summary>The README's definition, literally, in double.</summary>
    internal static double LossDouble(in LogitsShape s, double[] z, int[] labels)
    {
        int k = s.Classes;
        double total = 0;
        for (int i = 0; i < s.N; i++)
        {
            var p = new double[k];
            double sumExp = 0;
            for (int j = 0; j < k; j++)
            {
                p[j] = Math.Exp(z[i * k + j]);
                sumExp += p[j];
            }
            for (int j = 0; j < k; j++)
            {
                p[j] /= sumExp;
            }
            int y = labels[i];
            double row = 0;
            for (int j = 0; j < k; j++)
            {
                if (j != y)
                {
                    double q = p[j] / (1 - p[y] + 1e-7);
                    row += q * Math.Log(q + 1e-10);
                }
            }
            total += Math.Pow(p[y] + 1e-7, 1.0 / 3.0) * row;
        }
        return total / s.N / Math.Log(k - 1);
    }
}
