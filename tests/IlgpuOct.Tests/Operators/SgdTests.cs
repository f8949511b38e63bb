using System.Globalization;
using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Operators;
using IlgpuOct.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace IlgpuOct.Tests.Operators;

public sealed class SgdTests
{
    private readonly ITestOutputHelper _output;

    public SgdTests(ITestOutputHelper output) => _output = output;

    [Theory]
    [InlineData(AcceleratorKind.Cpu)]
    [InlineData(AcceleratorKind.CpuKernels)]
    [InlineData(AcceleratorKind.CudaHost)]
    public void Three_steps_follow_the_hand_computation_with_decay_and_momentum(AcceleratorKind kind)
    {
        // w = 1, grad 0.5 every step, lr 0.1, momentum 0.9, weight decay 0.01:
        // 1: g = 0.51,       buf = 0.51,        w = 0.949
        // 2: g = 0.50949,    buf = 0.96849,     w = 0.852151
        // 3: g = 0.50852151, buf = 1.38016251,  w = 0.714134749
        float[] w = [1f];
        float[] buf = [0f];
        var settings = new SgdSettings(0.1f, 0.9f, 0.01f);
        double[] expectW = [0.949, 0.852151, 0.714134749];
        double[] expectBuf = [0.51, 0.96849, 1.38016251];
        using var device = TestDevice.Open(kind);
        var acc = device.Accelerator;
        for (int step = 0; step < 3; step++)
        {
            Sgd.Step(acc, device.View<float>(w), device.View<float>([0.5f]), device.View<float>(buf), settings);
            device.Sync();
            Tolerance.AssertClose([(double)w[0]], [expectW[step]], 0, 1e-6, $"w after step {step + 1}");
            Tolerance.AssertClose([(double)buf[0]], [expectBuf[step]], 0, 1e-6, $"buffer after step {step + 1}");
        }
    }

    [Fact]
    public void Long_vectors_take_the_parallel_simd_path_and_match_the_scalar_formula()
    {
        int length = (1 << 17) + 13;
        var random = new Random(8);
        double[] w0 = GradientCheck.Random(random, length);
        var settings = new SgdSettings(0.05f, 0.9f, 5e-4f);
        float[] w = GradientCheck.ToFloat(w0);
        var buf = new float[length];
        double[] wd = (double[])w0.Clone();
        var bd = new double[length];
        for (int step = 0; step < 3; step++)
        {
            double[] grad = GradientCheck.Random(random, length);
            Sgd.StepCpu(w, GradientCheck.ToFloat(grad), buf, settings);
            for (int i = 0; i < length; i++)
            {
                double g = grad[i] + (double)settings.WeightDecay * wd[i];
                bd[i] = settings.Momentum * bd[i] + g;
                wd[i] -= settings.LearningRate * bd[i];
            }
        }
        Tolerance.AssertClose(GradientCheck.ToDouble(w), wd, 1e-6, 1e-5, "weights after 3 steps");
        Tolerance.AssertClose(GradientCheck.ToDouble(buf), bd, 1e-6, 1e-5, "buffers after 3 steps");
    }

    [Theory]
    [Trait("Category", "Golden")]
    [InlineData(AcceleratorKind.Cpu)]
    [InlineData(AcceleratorKind.CpuKernels)]
    [InlineData(AcceleratorKind.CudaHost)]
    public void First_step_reproduces_pytorch_after_state_of_resnet18_golden(AcceleratorKind kind)
    {
        var file = Golden.Load("resnet18.safetensors");
        var sgd = GradientCheck.Settings(file.Metadata["sgd"]);
        var settings = new SgdSettings(
            float.Parse(sgd["lr"], CultureInfo.InvariantCulture),
            float.Parse(sgd["momentum"], CultureInfo.InvariantCulture),
            float.Parse(sgd["weight_decay"], CultureInfo.InvariantCulture));
        int checkedParameters = 0;
        double worst = 0;
        using var device = TestDevice.Open(kind);
        var acc = device.Accelerator;
        foreach (string key in file.Keys.Where(k => k.StartsWith("grad.", StringComparison.Ordinal) && k != "grad.input").ToArray())
        {
            string name = key["grad.".Length..];
            float[] w = file[name].ToFloat();
            float[] grad = file[key].ToFloat();
            var buf = new float[w.Length];
            Sgd.Step(acc, device.View<float>(w), device.View<float>(grad), device.View<float>(buf), settings);
            device.Sync();
            float[] expected = file["after." + name].ToFloat();
            worst = Math.Max(worst, Tolerance.RelativeL2(w, expected));
            Tolerance.AssertClose(w, expected, atol: 1e-7, rtol: 1e-6, "after." + name);
            checkedParameters++;
        }
        _output.WriteLine($"{kind} sgd: {checkedParameters} parameters, worst relL2 {worst:G3}");
        Assert.True(checkedParameters > 0, "the golden file holds no grad.* parameters");
    }

    [Fact]
    public void Kernel_on_cpu_kernels_matches_the_cpu_implementation_over_three_steps()
    {
        int length = 5000;
        var random = new Random(4);
        float[] w = GradientCheck.ToFloat(GradientCheck.Random(random, length));
        float[] kw = (float[])w.Clone();
        var buf = new float[length];
        var kbuf = new float[length];
        var settings = new SgdSettings(0.05f, 0.9f, 5e-4f);
        using var acc = new HostAccelerator(AcceleratorKind.CpuKernels);
        for (int step = 0; step < 3; step++)
        {
            float[] grad = GradientCheck.ToFloat(GradientCheck.Random(random, length));
            Sgd.StepCpu(w, grad, buf, settings);
            Sgd.Step(acc, new View<float>(kw), new View<float>(grad), new View<float>(kbuf), settings);
        }
        // Same operations in the same order: equal up to SIMD vs scalar rounding (none expected).
        Tolerance.AssertClose(kw, w, 1e-7, 1e-6, "weights");
        Tolerance.AssertClose(kbuf, buf, 1e-7, 1e-6, "momentum buffers");
    }

    [Fact]
    public void Schedules_take_their_values_at_key_steps()
    {
        var cosine = LearningRateSchedule.Cosine(0.1f, 100, 0.001f);
        Tolerance.AssertClose([(double)cosine.At(0)], [0.1], 0, 1e-6, "cosine start");
        Tolerance.AssertClose([(double)cosine.At(50)], [0.001 + 0.099 * 0.5], 0, 1e-6, "cosine half way");
        Tolerance.AssertClose([(double)cosine.At(25)], [0.001 + 0.099 * (1 + Math.Cos(Math.PI / 4)) / 2], 0, 1e-6, "cosine quarter");
        Tolerance.AssertClose([(double)cosine.At(100)], [0.001], 0, 1e-6, "cosine end");
        Tolerance.AssertClose([(double)cosine.At(250)], [0.001], 0, 1e-6, "cosine held after the end");

        var step = LearningRateSchedule.Step(0.1f, 30, 0.1f);
        Tolerance.AssertClose([(double)step.At(0), step.At(29), step.At(30), step.At(59), step.At(60)], [0.1, 0.1, 0.01, 0.01, 0.001], 0, 1e-6, "step decay");
        Tolerance.AssertClose([(double)LearningRateSchedule.Constant(0.05f).At(12345)], [0.05], 0, 1e-7, "constant");
    }
}
