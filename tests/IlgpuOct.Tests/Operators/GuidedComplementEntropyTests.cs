using IlgpuOct.Defense.Verification;
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
        using var acc = TestDevice.OpenAccelerator(kind);
        var result = GoldenOperators.GuidedComplement(acc, Golden.Load("ops.safetensors"));
        _output.WriteLine($"{kind} {result}");
        Tolerance.Require([.. result.Comparisons]);
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
