using IlgpuOct.Defense.Verification;
using FluentAssertions;
using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Operators;
using IlgpuOct.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace IlgpuOct.Tests.Operators;

public sealed class CrossEntropyTests
{
    private readonly ITestOutputHelper _output;

    public CrossEntropyTests(ITestOutputHelper output) => _output = output;

    [Theory]
    [Trait("Category", "Golden")]
    [InlineData(AcceleratorKind.Cpu)]
    [InlineData(AcceleratorKind.CpuKernels)]
    [InlineData(AcceleratorKind.CudaHost)]
    public void Loss_and_gradient_match_golden(AcceleratorKind kind)
    {
        using var acc = TestDevice.OpenAccelerator(kind);
        var result = GoldenOperators.CrossEntropyLoss(acc, Golden.Load("ops.safetensors"));
        _output.WriteLine($"{kind} {result}");
        Tolerance.Require([.. result.Comparisons]);
    }

    [Fact]
    public void Gradient_matches_central_differences_of_double_loss()
    {
        var s = new LogitsShape(4, 5);
        var random = new Random(31);
        double[] z = GradientCheck.Random(random, s.Length, 4.0);
        int[] labels = [0, 4, 2, 2];
        var dlogits = new float[s.Length];
        float loss = CrossEntropy.ComputeCpu(s, GradientCheck.ToFloat(z), labels, dlogits);
        Tolerance.AssertClose([(double)loss], [LossDouble(s, z, labels)], 1e-6, 1e-6, "loss vs double reference");
        Tolerance.AssertClose(GradientCheck.ToDouble(dlogits), GradientCheck.Numeric(v => LossDouble(s, v, labels), z), 1e-7, 1e-5, "dlogits vs central differences");
    }

    [Fact]
    public void Large_logits_stay_finite_and_sum_is_n_times_mean()
    {
        var s = new LogitsShape(2, 3);
        float[] z = [10000f, -10000f, 9990f, -3e4f, 3e4f, 0f];
        int[] labels = [2, 0];
        var mean = new float[s.Length];
        var sum = new float[s.Length];
        float meanLoss = CrossEntropy.ComputeCpu(s, z, labels, mean);
        float sumLoss = CrossEntropy.ComputeCpu(s, z, labels, sum, LossReduction.Sum);
        float.IsFinite(meanLoss).Should().BeTrue();
        Tolerance.AssertClose([(double)meanLoss], [(10 + 6e4) / 2.0], 0, 1e-6, "mean loss");
        Tolerance.AssertClose([(double)sumLoss], [2.0 * meanLoss], 0, 1e-6, "sum loss");
        for (int i = 0; i < s.Length; i++)
        {
            float.IsFinite(mean[i]).Should().BeTrue();
            Tolerance.AssertClose([(double)sum[i]], [2.0 * mean[i]], 1e-12, 1e-6, $"sum gradient {i}");
        }
        var bad = () => CrossEntropy.ComputeCpu(s, z, [3, 0], Span<float>.Empty);
        bad.Should().Throw<ArgumentOutOfRangeException>().WithMessage("*Label 3 of row 0*");
    }

    [Theory]
    [InlineData(7, 4, false)]
    [InlineData(300, 2, false)]
    [InlineData(5, 3, true)]
    public void Kernel_on_cpu_kernels_matches_the_cpu_implementation(int n, int classes, bool sum)
    {
        var s = new LogitsShape(n, classes);
        var random = new Random(n + classes);
        float[] z = GradientCheck.ToFloat(GradientCheck.Random(random, s.Length, 8.0));
        var labels = new int[n];
        for (int i = 0; i < n; i++)
        {
            labels[i] = random.Next(classes);
        }
        var reduction = sum ? LossReduction.Sum : LossReduction.Mean;
        var dlogits = new float[s.Length];
        float loss = CrossEntropy.ComputeCpu(s, z, labels, dlogits, reduction);
        using var acc = new HostAccelerator(AcceleratorKind.CpuKernels);
        var kloss = new float[1];
        var kdl = new float[s.Length];
        CrossEntropy.Compute(acc, s, new View<float>(z), new View<int>(labels), new View<float>(kloss), new View<float>(kdl), reduction);
        Tolerance.AssertClose(kloss, [loss], 1e-6, 1e-6, "loss kernel");
        Tolerance.AssertClose(kdl, dlogits, 1e-7, 1e-6, "dlogits kernel");

        labels[0] = classes; // out of range: the kernel cannot throw, it reports NaN
        CrossEntropy.Compute(acc, s, new View<float>(z), new View<int>(labels), new View<float>(kloss), default, reduction);
        float.IsNaN(kloss[0]).Should().BeTrue();
    }

    internal static double LossDouble(in LogitsShape s, double[] z, int[] labels)
    {
        double total = 0;
        for (int i = 0; i < s.N; i++)
        {
            double sumExp = 0;
            for (int j = 0; j < s.Classes; j++)
            {
                sumExp += Math.Exp(z[i * s.Classes + j]);
            }
            total += Math.Log(sumExp) - z[i * s.Classes + labels[i]];
        }
        return total / s.N;
    }
}
