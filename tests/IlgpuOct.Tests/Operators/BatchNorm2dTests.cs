using IlgpuOct.Defense.Verification;
using System.Globalization;
using FluentAssertions;
using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Operators;
using IlgpuOct.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace IlgpuOct.Tests.Operators;

public sealed class BatchNorm2dTests
{
    private readonly ITestOutputHelper _output;

    public BatchNorm2dTests(ITestOutputHelper output) => _output = output;

    [Theory]
    [Trait("Category", "Golden")]
    [InlineData(AcceleratorKind.Cpu)]
    [InlineData(AcceleratorKind.CpuKernels)]
    [InlineData(AcceleratorKind.CudaHost)]
    public void Training_forward_backward_and_running_statistics_match_golden(AcceleratorKind kind)
    {
        using var acc = TestDevice.OpenAccelerator(kind);
        var result = GoldenOperators.BatchNorm(acc, Golden.Load("ops.safetensors"));
        _output.WriteLine($"{kind} {result}");
        Tolerance.Require([.. result.Comparisons]);
    }

    [Fact]
    public void Training_backward_matches_central_differences_of_double_forward() => CheckAgainstCentralDifferences(relu: false, seed: 5);

    [Fact]
    public void Fused_bn_relu_backward_matches_central_differences_of_double_forward() => CheckAgainstCentralDifferences(relu: true, seed: 9);

    /// <summary>Forward against the double reference, backward against central differences of it (ReLU after BN when <paramref name="relu"/>).</summary>
    private static void CheckAgainstCentralDifferences(bool relu, int seed)
    {
        var s = new BatchNorm2dShape(3, 2, 2, 3);
        var random = new Random(seed);
        double[] x = Shifted(GradientCheck.Random(random, s.Length, 2.0), 0.7);
        double[] gamma = GradientCheck.Random(random, s.C, 1.5);
        double[] beta = GradientCheck.Random(random, s.C);
        double[] dy = GradientCheck.Random(random, s.Length);
        const float eps = 1e-5f;
        double[] Forward(double[] xs, double[] g, double[] b)
        {
            var y = TrainingDouble(s, xs, g, b, eps);
            return relu ? Array.ConvertAll(y, e => Math.Max(e, 0)) : y;
        }

        float[] xf = GradientCheck.ToFloat(x), gf = GradientCheck.ToFloat(gamma), bf = GradientCheck.ToFloat(beta);
        var y = new float[s.Length];
        var saveMean = new float[s.C];
        var saveInvStd = new float[s.C];
        var rm = new float[s.C];
        var rv = new float[s.C];
        if (relu)
        {
            BatchNorm2d.ForwardReluCpu(s, xf, gf, bf, rm, rv, y, saveMean, saveInvStd, 0.1f, eps);
        }
        else
        {
            BatchNorm2d.ForwardTrainingCpu(s, xf, gf, bf, rm, rv, y, saveMean, saveInvStd, 0.1f, eps);
        }
        Tolerance.AssertClose(y, GradientCheck.ToFloat(Forward(x, gamma, beta)), atol: 1e-5, rtol: 1e-5, "y vs double reference");

        var dx = new float[s.Length];
        var dgamma = new float[s.C];
        var dbeta = new float[s.C];
        if (relu)
        {
            BatchNorm2d.BackwardReluCpu(s, xf, y, GradientCheck.ToFloat(dy), gf, saveMean, saveInvStd, dx, dgamma, dbeta);
        }
        else
        {
            BatchNorm2d.BackwardTrainingCpu(s, xf, GradientCheck.ToFloat(dy), gf, saveMean, saveInvStd, dx, dgamma, dbeta);
        }
        Tolerance.AssertClose(GradientCheck.ToDouble(dx), GradientCheck.Numeric(v => GradientCheck.Dot(dy, Forward(v, gamma, beta)), x), 1e-5, 1e-4, "dx vs central differences");
        Tolerance.AssertClose(GradientCheck.ToDouble(dgamma), GradientCheck.Numeric(v => GradientCheck.Dot(dy, Forward(x, v, beta)), gamma), 1e-5, 1e-4, "dgamma vs central differences");
        Tolerance.AssertClose(GradientCheck.ToDouble(dbeta), GradientCheck.Numeric(v => GradientCheck.Dot(dy, Forward(x, gamma, v)), beta), 1e-5, 1e-4, "dbeta vs central differences");
    }

    [Fact]
    public void Running_statistics_use_momentum_and_the_unbiased_variance()
    {
        // One channel, values 1..4: mean 2.5, biased variance 1.25, unbiased 5/3.
        var s = new BatchNorm2dShape(2, 1, 1, 2);
        float[] x = [1, 2, 3, 4];
        float[] rm = [1f];
        float[] rv = [2f];
        var y = new float[4];
        var mean = new float[1];
        var invStd = new float[1];
        BatchNorm2d.ForwardTrainingCpu(s, x, [1f], [0f], rm, rv, y, mean, invStd, momentum: 0.1f, epsilon: 1e-5f);
        Tolerance.AssertClose(rm, [0.9f * 1f + 0.1f * 2.5f], 1e-7, 1e-6, "running mean");
        Tolerance.AssertClose(rv, [(float)(0.9 * 2 + 0.1 * (5.0 / 3.0))], 1e-7, 1e-6, "running var");
        Tolerance.AssertClose(mean, [2.5f], 0, 1e-7, "saved mean");
        Tolerance.AssertClose(invStd, [(float)(1 / Math.Sqrt(1.25 + 1e-5))], 0, 1e-6, "saved inverse std");
        Tolerance.AssertClose(y, Array.ConvertAll(x, v => (float)((v - 2.5) / Math.Sqrt(1.25 + 1e-5))), 1e-6, 1e-6, "y");
    }

    [Fact]
    public void Inference_forward_and_backward_match_double_reference_on_the_parallel_path()
    {
        var s = new BatchNorm2dShape(4, 16, 24, 24);
        var random = new Random(9);
        double[] x = GradientCheck.Random(random, s.Length, 3.0);
        double[] gamma = GradientCheck.Random(random, s.C);
        double[] beta = GradientCheck.Random(random, s.C);
        double[] rm = GradientCheck.Random(random, s.C);
        double[] rv = Array.ConvertAll(GradientCheck.Random(random, s.C), v => (double)(float)(0.5 + Math.Abs(v)));
        double[] dy = GradientCheck.Random(random, s.Length);
        const float eps = 1e-5f;
        var y = new float[s.Length];
        var dx = new float[s.Length];
        BatchNorm2d.ForwardInferenceCpu(s, GradientCheck.ToFloat(x), GradientCheck.ToFloat(gamma), GradientCheck.ToFloat(beta), GradientCheck.ToFloat(rm), GradientCheck.ToFloat(rv), y, eps);
        BatchNorm2d.BackwardInferenceCpu(s, GradientCheck.ToFloat(dy), GradientCheck.ToFloat(gamma), GradientCheck.ToFloat(rv), dx, eps);
        var ey = new double[s.Length];
        var edx = new double[s.Length];
        for (int i = 0; i < s.Length; i++)
        {
            int c = i / s.HW % s.C;
            double scale = gamma[c] / Math.Sqrt(rv[c] + eps);
            ey[i] = (x[i] - rm[c]) * scale + beta[c];
            edx[i] = dy[i] * scale;
        }
        Tolerance.AssertClose(GradientCheck.ToDouble(y), ey, 1e-5, 1e-5, "inference y");
        Tolerance.AssertClose(GradientCheck.ToDouble(dx), edx, 1e-6, 1e-5, "inference dx");

        // Training path on the same (parallel) shape against the double reference.
        var yt = new float[s.Length];
        BatchNorm2d.ForwardTrainingCpu(s, GradientCheck.ToFloat(x), GradientCheck.ToFloat(gamma), GradientCheck.ToFloat(beta), new float[s.C], new float[s.C], yt, new float[s.C], new float[s.C], 0.1f, eps);
        Tolerance.AssertClose(GradientCheck.ToDouble(yt), TrainingDouble(s, x, gamma, beta, eps), 1e-5, 1e-4, "training y");
    }

    [Theory]
    [InlineData(4, 6, 5, 7)]
    [InlineData(3, 2, 17, 19)]
    [InlineData(40, 3, 1, 1)]
    [InlineData(2, 3, 96, 96)] // 18432 per channel: 2 blocks per channel (split kernels)
    public void Kernels_on_cpu_kernels_match_the_cpu_implementation(int n, int c, int h, int w)
    {
        var s = new BatchNorm2dShape(n, c, h, w);
        var (x, gamma, beta, dy, rm0, rv0) = KernelInputs(s, new Random(n * 7 + c));

        float[] rm = (float[])rm0.Clone(), rv = (float[])rv0.Clone();
        float[] y = new float[s.Length], mean = new float[c], invStd = new float[c], dx = new float[s.Length], dgamma = new float[c], dbeta = new float[c];
        float[] yi = new float[s.Length], dxi = new float[s.Length];
        BatchNorm2d.ForwardTrainingCpu(s, x, gamma, beta, rm, rv, y, mean, invStd);
        BatchNorm2d.BackwardTrainingCpu(s, x, dy, gamma, mean, invStd, dx, dgamma, dbeta);
        BatchNorm2d.ForwardInferenceCpu(s, x, gamma, beta, rm0, rv0, yi);
        BatchNorm2d.BackwardInferenceCpu(s, dy, gamma, rv0, dxi);

        using var acc = new HostAccelerator(AcceleratorKind.CpuKernels);
        float[] krm = (float[])rm0.Clone(), krv = (float[])rv0.Clone();
        float[] ky = new float[s.Length], kmean = new float[c], kinv = new float[c], kdx = new float[s.Length], kdg = new float[c], kdb = new float[c];
        float[] kyi = new float[s.Length], kdxi = new float[s.Length];
        BatchNorm2d.ForwardTraining(acc, s, V(x), V(gamma), V(beta), V(krm), V(krv), V(ky), V(kmean), V(kinv));
        BatchNorm2d.BackwardTraining(acc, s, V(x), V(dy), V(gamma), V(kmean), V(kinv), V(kdx), V(kdg), V(kdb));
        BatchNorm2d.ForwardInference(acc, s, V(x), V(gamma), V(beta), V(rm0), V(rv0), V(kyi));
        BatchNorm2d.BackwardInference(acc, s, V(dy), V(gamma), V(rv0), V(kdxi));

        Tolerance.AssertClose(kmean, mean, 1e-6, 1e-6, "saved mean");
        Tolerance.AssertClose(kinv, invStd, 1e-6, 1e-6, "saved inverse std");
        Tolerance.AssertClose(krm, rm, 1e-6, 1e-6, "running mean");
        Tolerance.AssertClose(krv, rv, 1e-6, 1e-6, "running var");
        Tolerance.AssertClose(ky, y, 1e-5, 1e-5, "training y");
        Tolerance.AssertClose(kdg, dgamma, 1e-5, 1e-5, "dgamma");
        Tolerance.AssertClose(kdb, dbeta, 1e-5, 1e-5, "dbeta");
        Tolerance.AssertClose(kdx, dx, 1e-5, 1e-4, "training dx");
        Tolerance.AssertClose(kyi, yi, 1e-6, 1e-6, "inference y");
        Tolerance.AssertClose(kdxi, dxi, 1e-6, 1e-6, "inference dx");
    }

    [Theory]
    [InlineData(AcceleratorKind.CpuKernels, 4, 6, 5, 7)]
    [InlineData(AcceleratorKind.CpuKernels, 3, 2, 17, 19)]   // 969 per channel: ragged warps and block stride
    [InlineData(AcceleratorKind.CpuKernels, 2, 1, 1, 1)]     // 2 values: 30 idle lanes in the first warp
    [InlineData(AcceleratorKind.CudaHost, 4, 6, 5, 7)]
    [InlineData(AcceleratorKind.CudaHost, 3, 2, 17, 19)]
    [InlineData(AcceleratorKind.CudaHost, 2, 1, 1, 1)]
    [InlineData(AcceleratorKind.CpuKernels, 3, 2, 101, 103)] // 31209 per channel: 3 blocks per channel (split kernels), ragged last slice
    [InlineData(AcceleratorKind.CudaHost, 3, 2, 101, 103)]
    public void Fused_bn_relu_kernels_match_the_cpu_reference(AcceleratorKind kind, int n, int c, int h, int w)
    {
        var s = new BatchNorm2dShape(n, c, h, w);
        var (x, gamma, beta, dy, rm0, rv0) = KernelInputs(s, new Random(n * 11 + c * 3 + h));

        float[] rm = (float[])rm0.Clone(), rv = (float[])rv0.Clone();
        float[] y = new float[s.Length], mean = new float[c], invStd = new float[c], dx = new float[s.Length], dgamma = new float[c], dbeta = new float[c];
        BatchNorm2d.ForwardReluCpu(s, x, gamma, beta, rm, rv, y, mean, invStd);
        BatchNorm2d.BackwardReluCpu(s, x, y, dy, gamma, mean, invStd, dx, dgamma, dbeta);
        Assert.Contains(y, v => v == 0f);   // the mask is exercised
        Assert.Contains(y, v => v > 0f);

        using var device = TestDevice.Open(kind);
        float[] krm = (float[])rm0.Clone(), krv = (float[])rv0.Clone();
        float[] ky = new float[s.Length], kmean = new float[c], kinv = new float[c], kdx = new float[s.Length], kdg = new float[c], kdb = new float[c];
        var vy = device.V(ky);
        var vmean = device.V(kmean);
        var vinv = device.V(kinv);
        BatchNorm2d.ForwardRelu(device.Accelerator, s, device.V(x), device.V(gamma), device.V(beta), device.V(krm), device.V(krv), vy, vmean, vinv);
        BatchNorm2d.BackwardRelu(device.Accelerator, s, device.V(x), vy, device.V(dy), device.V(gamma), vmean, vinv, device.V(kdx), device.V(kdg), device.V(kdb));
        device.Sync();

        Tolerance.AssertClose(kmean, mean, 1e-6, 1e-6, $"{kind} saved mean");
        Tolerance.AssertClose(kinv, invStd, 1e-6, 1e-6, $"{kind} saved inverse std");
        Tolerance.AssertClose(krm, rm, 1e-6, 1e-6, $"{kind} running mean");
        Tolerance.AssertClose(krv, rv, 1e-6, 1e-6, $"{kind} running var");
        Tolerance.AssertClose(ky, y, 1e-5, 1e-5, $"{kind} fused y");
        Tolerance.AssertClose(kdg, dgamma, 1e-5, 1e-5, $"{kind} dgamma");
        Tolerance.AssertClose(kdb, dbeta, 1e-5, 1e-5, $"{kind} dbeta");
        Tolerance.AssertClose(kdx, dx, 1e-5, 1e-4, $"{kind} fused dx");
    }

    [Fact]
    public void Channels_are_split_across_blocks_only_for_large_feature_maps()
    {
        Assert.Equal(1, BatchNorm2d.ChannelSlices(new BatchNorm2dShape(32, 64, 8, 8)));
        Assert.Equal(3, BatchNorm2d.ChannelSlices(new BatchNorm2dShape(3, 2, 101, 103)));
        // ResNet-18 bn1 at 224x224, batch 64: 802816 values per channel.
        Assert.Equal(64, BatchNorm2d.ChannelSlices(new BatchNorm2dShape(64, 64, 112, 112)));
        Assert.Equal(1, BatchNorm2d.ChannelSlices(new BatchNorm2dShape(64, 512, 7, 7)));
    }

    [Theory]
    [InlineData(4, 6, 5, 7)]
    [InlineData(32, 64, 8, 8)]
    public void Fused_relu_forward_and_backward_are_bit_identical_to_the_unfused_pair(int n, int c, int h, int w)
    {
        var s = new BatchNorm2dShape(n, c, h, w);
        var random = new Random(n + c);
        float[] x = GradientCheck.ToFloat(Shifted(GradientCheck.Random(random, s.Length, 2.0), 0.3));
        float[] gamma = GradientCheck.ToFloat(GradientCheck.Random(random, c));
        float[] beta = GradientCheck.ToFloat(GradientCheck.Random(random, c));
        float[] dy = GradientCheck.ToFloat(GradientCheck.Random(random, s.Length));

        // The pair: BN, ReLU forward; ReLU backward (mask from the output), BN backward.
        float[] rm = new float[c], rv = new float[c], y = new float[s.Length], mean = new float[c], invStd = new float[c];
        BatchNorm2d.ForwardTrainingCpu(s, x, gamma, beta, rm, rv, y, mean, invStd);
        Elementwise.ReluForwardCpu(y, y);
        float[] dMasked = new float[s.Length], dx = new float[s.Length], dgamma = new float[c], dbeta = new float[c];
        Elementwise.ReluBackwardCpu(y, dy, dMasked);
        BatchNorm2d.BackwardTrainingCpu(s, x, dMasked, gamma, mean, invStd, dx, dgamma, dbeta);

        float[] frm = new float[c], frv = new float[c], fy = new float[s.Length], fmean = new float[c], finv = new float[c];
        BatchNorm2d.ForwardReluCpu(s, x, gamma, beta, frm, frv, fy, fmean, finv);
        float[] fdx = new float[s.Length], fdg = new float[c], fdb = new float[c];
        BatchNorm2d.BackwardReluCpu(s, x, fy, dy, gamma, fmean, finv, fdx, fdg, fdb);

        Assert.True(y.Any(v => v == 0f) && y.Any(v => v > 0f), "the test data must exercise both sides of the ReLU");
        Tolerance.AssertClose(fy, y, 0, 0, "fused y");
        Tolerance.AssertClose(frm, rm, 0, 0, "fused running mean");
        Tolerance.AssertClose(frv, rv, 0, 0, "fused running var");
        Tolerance.AssertClose(fdx, dx, 0, 0, "fused dx");
        Tolerance.AssertClose(fdg, dgamma, 0, 0, "fused dgamma");
        Tolerance.AssertClose(fdb, dbeta, 0, 0, "fused dbeta");

        // The dispatcher on a kernel accelerator (cpu-kernels) matches the CPU implementation at the kernels' tolerances.
        using var acc = new HostAccelerator(AcceleratorKind.CpuKernels);
        float[] krm = new float[c], krv = new float[c], ky = new float[s.Length], kmean = new float[c], kinv = new float[c];
        BatchNorm2d.ForwardRelu(acc, s, V(x), V(gamma), V(beta), V(krm), V(krv), V(ky), V(kmean), V(kinv));
        float[] kdx = new float[s.Length], kdg = new float[c], kdb = new float[c];
        BatchNorm2d.BackwardRelu(acc, s, V(x), V(ky), V(dy), V(gamma), V(kmean), V(kinv), V(kdx), V(kdg), V(kdb));
        Tolerance.AssertClose(ky, fy, 1e-5, 1e-5, "kernels fused y");
        Tolerance.AssertClose(kdg, fdg, 1e-5, 1e-4, "kernels fused dgamma");
        Tolerance.AssertClose(kdb, fdb, 1e-5, 1e-4, "kernels fused dbeta");
        Tolerance.AssertClose(kdx, fdx, 1e-5, 1e-4, "kernels fused dx");
    }

    [Theory]
    [InlineData(4, 6, 5, 7)]
    [InlineData(8, 16, 4, 4)]
    public void Fused_relu_inference_forward_and_backward_are_bit_identical_to_the_unfused_pair(int n, int c, int h, int w)
    {
        var s = new BatchNorm2dShape(n, c, h, w);
        var random = new Random(n * 7 + c);
        float[] x = GradientCheck.ToFloat(GradientCheck.Random(random, s.Length, 2.0));
        float[] gamma = GradientCheck.ToFloat(GradientCheck.Random(random, c)); // some negative: -0 products in dx
        float[] beta = GradientCheck.ToFloat(GradientCheck.Random(random, c));
        float[] runningMean = GradientCheck.ToFloat(GradientCheck.Random(random, c, 0.5));
        float[] runningVar = GradientCheck.ToFloat(Shifted(GradientCheck.Random(random, c, 0.5), 1.0));
        float[] dy = GradientCheck.ToFloat(GradientCheck.Random(random, s.Length));

        // The pair: BN inference, ReLU in place; ReLU backward (mask from the output), BN inference backward in place.
        float[] y = new float[s.Length], dx = new float[s.Length];
        BatchNorm2d.ForwardInferenceCpu(s, x, gamma, beta, runningMean, runningVar, y);
        Elementwise.ReluForwardCpu(y, y);
        Elementwise.ReluBackwardCpu(y, dy, dx);
        BatchNorm2d.BackwardInferenceCpu(s, dx, gamma, runningVar, dx);

        float[] fy = new float[s.Length], fdx = new float[s.Length];
        BatchNorm2d.ForwardInferenceReluCpu(s, x, gamma, beta, runningMean, runningVar, fy);
        BatchNorm2d.BackwardInferenceReluCpu(s, fy, dy, gamma, runningVar, fdx);

        Assert.True(y.Any(v => v == 0f) && y.Any(v => v > 0f), "the test data must exercise both sides of the ReLU");
        fy.Select(BitConverter.SingleToInt32Bits).Should().Equal(y.Select(BitConverter.SingleToInt32Bits), "fused inference y, bit for bit");
        fdx.Select(BitConverter.SingleToInt32Bits).Should().Equal(dx.Select(BitConverter.SingleToInt32Bits), "fused inference dx, bit for bit");

        // The dispatchers on a kernel accelerator (cpu-kernels: the two kernels of the pair) match at the kernels' tolerances.
        using var acc = new HostAccelerator(AcceleratorKind.CpuKernels);
        float[] ky = new float[s.Length], kdx = new float[s.Length];
        BatchNorm2d.ForwardInferenceRelu(acc, s, V(x), V(gamma), V(beta), V(runningMean), V(runningVar), V(ky));
        BatchNorm2d.BackwardInferenceRelu(acc, s, V(ky), V(dy), V(gamma), V(runningVar), V(kdx));
        Tolerance.AssertClose(ky, fy, 1e-5, 1e-5, "kernels fused inference y");
        Tolerance.AssertClose(kdx, fdx, 1e-5, 1e-5, "kernels fused inference dx");
    }

    /// <summary>Seeded x (N, C, H, W) shifted off zero, gamma, beta (C), dy (N, C, H, W), running mean and a positive running variance (C).</summary>
    private static (float[] X, float[] Gamma, float[] Beta, float[] Dy, float[] RunningMean, float[] RunningVar) KernelInputs(in BatchNorm2dShape s, Random random) =>
        (GradientCheck.ToFloat(Shifted(GradientCheck.Random(random, s.Length, 2.0), 0.3)),
         GradientCheck.ToFloat(GradientCheck.Random(random, s.C)),
         GradientCheck.ToFloat(GradientCheck.Random(random, s.C)),
         GradientCheck.ToFloat(GradientCheck.Random(random, s.Length)),
         GradientCheck.ToFloat(GradientCheck.Random(random, s.C)),
         Array.ConvertAll(GradientCheck.ToFloat(GradientCheck.Random(random, s.C)), v => 0.5f + Math.Abs(v)));

    private static View<float> V(float[] array) => new(array);

    private static double[] Shifted(double[] values, double shift) => Array.ConvertAll(values, v => (double)(float)(v + shift));

    /// <summary>Training-mode batch norm in double: the test's reference.</summary>
    internal static double[] TrainingDouble(in BatchNorm2dShape s, double[] x, double[] gamma, double[] beta, double eps)
    {
        var y = new double[s.Length];
        for (int c = 0; c < s.C; c++)
        {
            double sum = 0;
            for (int n = 0; n < s.N; n++)
            for (int i = 0; i < s.HW; i++)
            {
                sum += x[(n * s.C + c) * s.HW + i];
            }
            double mean = sum / s.CountPerChannel;
            double sq = 0;
            for (int n = 0; n < s.N; n++)
            for (int i = 0; i < s.HW; i++)
            {
                double d = x[(n * s.C + c) * s.HW + i] - mean;
                sq += d * d;
            }
            double invStd = 1 / Math.Sqrt(sq / s.CountPerChannel + eps);
            for (int n = 0; n < s.N; n++)
            for (int i = 0; i < s.HW; i++)
            {
                int at = (n * s.C + c) * s.HW + i;
                y[at] = (x[at] - mean) * invStd * gamma[c] + beta[c];
            }
        }
        return y;
    }
}
