using FluentAssertions;
using IlgpuOct.Defense.Attacks;
using IlgpuOct.Kernels;
using IlgpuOct.Tests.Support;
using Xunit;

namespace IlgpuOct.Tests.Defense;

/// <summary>The attack kernels on cpu-kernels against their CPU implementations (bit for bit: the same float operations).</summary>
public sealed class AttackKernelsTests
{
    [Fact]
    public void Sign_step_kernel_equals_the_cpu_implementation_including_zero_gradients_and_both_clips()
    {
        var random = new Random(5);
        const int n = 3000; // more than one block, and a partial last block
        var x0 = Enumerable.Range(0, n).Select(i => i % 7 == 0 ? 0f : i % 11 == 0 ? 1f : (float)random.NextDouble()).ToArray();
        var x = x0.Select(v => Math.Clamp(v + (float)(random.NextDouble() - 0.5) * 0.02f, 0f, 1f)).ToArray();
        var g = Enumerable.Range(0, n).Select(i => i % 5 == 0 ? 0f : (float)(random.NextDouble() - 0.5)).ToArray();
        const float step = 0.007f;
        const float eps = 0.01f;

        var expected = (float[])x.Clone();
        AttackKernels.SignStepProjectClipCpu(expected, x0, g, step, eps);
        using var acc = DeviceSelection.Open("cpu-kernels", out _);
        using var xb = acc.Upload<float>(x);
        using var x0b = acc.Upload<float>(x0);
        using var gb = acc.Upload<float>(g);
        AttackKernels.SignStepProjectClip(acc, xb.View, x0b.View, gb.View, step, eps);
        float[] actual = acc.Download(xb.View);
        Tolerance.AssertClose(actual, expected, 0, 0, "sign step");

        for (int i = 0; i < n; i++)
        {
            expected[i].Should().BeInRange(0f, 1f);
            Math.Abs(expected[i] - x0[i]).Should().BeLessThanOrEqualTo(eps + 1e-6f);
            if (g[i] == 0f)
            {
                expected[i].Should().Be(Math.Clamp(Math.Clamp(x[i], x0[i] - eps, x0[i] + eps), 0f, 1f), "sign(0) = 0 moves nothing");
            }
        }
    }

    /// <summary>The random start's offset-and-clip on cpu-kernels and compiled by NVRTC on cuda-host, against the host random start (AttackMath.RandomStart).</summary>
    [Theory]
    [InlineData("cpu-kernels")]
    [InlineData("cuda-host")]
    public void Offset_clip_kernel_equals_the_host_random_start(string device)
    {
        var random = new Random(9);
        const int n = 3000; // more than one block, and a partial last block
        var x0 = Enumerable.Range(0, n).Select(i => i % 7 == 0 ? 0f : i % 11 == 0 ? 1f : (float)random.NextDouble()).ToArray();
        const float eps = 0.02f;
        var expected = new float[n];
        AttackMath.RandomStart(expected, x0, eps, new Random(3));
        var offsets = new float[n];
        AttackMath.RandomOffsets(offsets, eps, new Random(3));

        using var acc = device == "cuda-host" ? IlgpuOct.Kernels.CudaHost.CudaHostAccelerator.Open() : DeviceSelection.Open(device, out _);
        using var xb = acc.Allocate<float>(n);
        using var x0b = acc.Upload<float>(x0);
        using var ub = acc.Upload<float>(offsets);
        AttackKernels.OffsetClip(acc, xb.View, x0b.View, ub.View);
        Tolerance.AssertClose(acc.Download(xb.View), expected, 0, 0, $"offset clip on {device}");
        expected.Should().OnlyContain(v => v >= 0f && v <= 1f);
        expected.Zip(x0, (a, b) => Math.Abs(a - b)).Max().Should().BeLessThanOrEqualTo(eps + 1e-6f);
    }

    [Fact]
    public void Carlini_wagner_adam_kernel_equals_the_cpu_implementation_and_keeps_images_in_range()
    {
        var random = new Random(7);
        const int n = 1500;
        float[] Values(double scale, double offset) => [.. Enumerable.Range(0, n).Select(_ => (float)(offset + (random.NextDouble() - 0.5) * scale))];
        float[] w = Values(6, 0);
        float[] m = Values(0.1, 0);
        float[] v = Values(0.01, 0.01);
        float[] x = [.. w.Select(value => (MathF.Tanh(value) + 1f) * 0.5f)];
        float[] x0 = Values(1, 0.5);
        float[] gx = Values(2, 0);
        const float lr = 0.05f;
        const float c1 = 0.271f; // 1 - 0.9^3
        const float c2 = 0.002997f; // 1 - 0.999^3

        float[] ew = (float[])w.Clone(), em = (float[])m.Clone(), ev = (float[])v.Clone(), ex = (float[])x.Clone();
        AttackKernels.CwAdamStepCpu(ew, em, ev, ex, x0, gx, lr, c1, c2);
        ex.Should().OnlyContain(value => value >= 0f && value <= 1f);
        ex.Zip(x).Count(p => p.First != p.Second).Should().BeGreaterThan(n / 2, "a step moves the images");

        using var acc = DeviceSelection.Open("cpu-kernels", out _);
        using var wb = acc.Upload<float>(w);
        using var mb = acc.Upload<float>(m);
        using var vb = acc.Upload<float>(v);
        using var xb = acc.Upload<float>(x);
        using var x0b = acc.Upload<float>(x0);
        using var gb = acc.Upload<float>(gx);
        AttackKernels.CwAdamStep(acc, wb.View, mb.View, vb.View, xb.View, x0b.View, gb.View, lr, c1, c2);
        Tolerance.AssertClose(acc.Download(wb.View), ew, 0, 0, "w");
        Tolerance.AssertClose(acc.Download(mb.View), em, 0, 0, "m");
        Tolerance.AssertClose(acc.Download(vb.View), ev, 0, 0, "v");
        Tolerance.AssertClose(acc.Download(xb.View), ex, 0, 0, "x");
    }

    [Fact]
    public void Feature_gradient_on_cpu_kernels_equals_the_cpu_engine()
    {
        float[] Gradient(string device)
        {
            using var acc = DeviceSelection.Open(device, out _);
            using var setup = new TinyAttackSetup(acc, perClass: 2, seed: 41);
            var (logits, pools) = setup.Classifier.Forward(setup.Images, setup.Shape);
            var random = new Random(3);
            float[]?[] dPools = [.. pools.Select(p => p.Select(_ => (float)(random.NextDouble() - 0.5)).ToArray())];
            var dLogits = logits.Select(_ => (float)(random.NextDouble() - 0.5)).ToArray();
            return setup.Classifier.InputGradient(dLogits, dPools);
        }
        float[] cpu = Gradient("cpu");
        float[] kernels = Gradient("cpu-kernels");
        cpu.Max(Math.Abs).Should().BeGreaterThan(0f);
        Tolerance.AssertClose(kernels, cpu, 1e-5 * cpu.Max(Math.Abs), 1e-4, "feature gradient, cpu-kernels vs cpu");
    }
}
