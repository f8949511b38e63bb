using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Profiling;

namespace IlgpuOct.Defense.Attacks;

/// <summary>
/// Element-wise attack updates on the device: the L-infinity sign step with projection and
/// clipping, the random start's offset and clip, and the C&amp;W Adam step in tanh space. Each has a CPU
/// implementation (the cpu engine, and the reference of the kernel tests), a grid-stride
/// [Kernel] and a dispatcher.
/// </summary>
public static partial class AttackKernels
{
    public const int BlockSize = 256;

    private const int MaxBlocks = 1024;

    // ------------------------------------------------------------------ kernels

    [Kernel]
    private static void SignStep(KernelContext ctx, View<float> x, View<float> x0, View<float> g, float step, float eps)
    {
        for (int i = ctx.GlobalX; i < x.Length; i += ctx.GridStrideX)
        {
            float gi = g[i];
            float s = gi > 0f ? 1f : (gi < 0f ? -1f : 0f);
            float v = x[i] + step * s;
            float lo = x0[i] - eps;
            float hi = x0[i] + eps;
            v = v < lo ? lo : (v > hi ? hi : v);
            x[i] = v < 0f ? 0f : (v > 1f ? 1f : v);
        }
    }

    [Kernel]
    private static void OffsetClip(KernelContext ctx, View<float> x, View<float> x0, View<float> u)
    {
        for (int i = ctx.GlobalX; i < x.Length; i += ctx.GridStrideX)
        {
            float v = x0[i] + u[i];
            x[i] = v < 0f ? 0f : (v > 1f ? 1f : v);
        }
    }

    [Kernel]
    private static void CwAdam(KernelContext ctx, View<float> w, View<float> m, View<float> v, View<float> x, View<float> x0, View<float> gx,
        float lr, float correction1, float correction2)
    {
        for (int i = ctx.GlobalX; i < x.Length; i += ctx.GridStrideX)
        {
            float t = 2f * x[i] - 1f;
            float g = (2f * (x[i] - x0[i]) + gx[i]) * 0.5f * (1f - t * t);
            float mi = 0.9f * m[i] + 0.1f * g;
            float vi = 0.999f * v[i] + 0.001f * g * g;
            m[i] = mi;
            v[i] = vi;
            float wi = w[i] - lr * (mi / correction1) / (MathF.Sqrt(vi / correction2) + 1e-8f);
            w[i] = wi;
            x[i] = (MathF.Tanh(wi) + 1f) * 0.5f;
        }
    }

    // ------------------------------------------------------------------ dispatchers

    /// <summary>
    /// x = clip_[0,1](proj_[x0 - eps, x0 + eps](x + step sign(g))), sign(0) = 0 as torch.sign.
    /// x (n), x0 (n), g (n).
    /// </summary>
    public static void SignStepProjectClip(Accelerator accelerator, View<float> x, View<float> x0, View<float> g, float step, float eps)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        RequireLength(x0.Length, x.Length, nameof(x0));
        RequireLength(g.Length, x.Length, nameof(g));
        OperatorDispatch.Run(accelerator, "AttackKernels.SignStepProjectClip", OperatorCost.Elementwise(x.Length, 6, reads: 3, writes: 1),
            () => SignStepProjectClipCpu(x.AsSpan(), x0.AsSpan(), g.AsSpan(), step, eps),
            () => SignStepKernel.Launch(accelerator, Config(x.Length), x, x0, g, step, eps));
    }

    /// <summary>x = clip_[0,1](x0 + u): a random start from offsets u drawn on the host. x (n), x0 (n), u (n); x may be u.</summary>
    public static void OffsetClip(Accelerator accelerator, View<float> x, View<float> x0, View<float> u)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        RequireLength(x0.Length, x.Length, nameof(x0));
        RequireLength(u.Length, x.Length, nameof(u));
        OperatorDispatch.Run(accelerator, "AttackKernels.OffsetClip", OperatorCost.Elementwise(x.Length, 3, reads: 2, writes: 1),
            () => OffsetClipCpu(x.AsSpan(), x0.AsSpan(), u.AsSpan()),
            () => OffsetClipKernel.Launch(accelerator, Config(x.Length), x, x0, u));
    }

    /// <summary>
    /// One Carlini-Wagner Adam step in tanh space and the new image: with t = 2x - 1 = tanh(w),
    /// g = (2 (x - x0) + d(c f)/dx) (1 - t^2) / 2; Adam (0.9, 0.999, 1e-8) with bias corrections
    /// 1 - beta^step; then x = (tanh(w) + 1) / 2. All views (n).
    /// </summary>
    public static void CwAdamStep(Accelerator accelerator, View<float> w, View<float> m, View<float> v, View<float> x, View<float> x0, View<float> gx,
        float lr, float correction1, float correction2)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        foreach (var (length, name) in new[] { (w.Length, nameof(w)), (m.Length, nameof(m)), (v.Length, nameof(v)), (x0.Length, nameof(x0)), (gx.Length, nameof(gx)) })
        {
            RequireLength(length, x.Length, name);
        }
        OperatorDispatch.Run(accelerator, "AttackKernels.CwAdamStep", OperatorCost.Elementwise(x.Length, 20, reads: 6, writes: 4),
            () => CwAdamStepCpu(w.AsSpan(), m.AsSpan(), v.AsSpan(), x.AsSpan(), x0.AsSpan(), gx.AsSpan(), lr, correction1, correction2),
            () => CwAdamKernel.Launch(accelerator, Config(x.Length), w, m, v, x, x0, gx, lr, correction1, correction2));
    }

    // ------------------------------------------------------------------ CPU implementations

    public static void CwAdamStepCpu(Span<float> w, Span<float> m, Span<float> v, Span<float> x, ReadOnlySpan<float> x0, ReadOnlySpan<float> gx,
        float lr, float correction1, float correction2)
    {
        for (int i = 0; i < x.Length; i++)
        {
            float t = 2f * x[i] - 1f;
            float g = (2f * (x[i] - x0[i]) + gx[i]) * 0.5f * (1f - t * t);
            float mi = 0.9f * m[i] + 0.1f * g;
            float vi = 0.999f * v[i] + 0.001f * g * g;
            m[i] = mi;
            v[i] = vi;
            float wi = w[i] - lr * (mi / correction1) / (MathF.Sqrt(vi / correction2) + 1e-8f);
            w[i] = wi;
            x[i] = (MathF.Tanh(wi) + 1f) * 0.5f;
        }
    }

    /// <summary>x = clip_[0,1](x0 + u) element-wise; x may be u.</summary>
    public static void OffsetClipCpu(Span<float> x, ReadOnlySpan<float> x0, ReadOnlySpan<float> u)
    {
        RequireLength(x0.Length, x.Length, nameof(x0));
        RequireLength(u.Length, x.Length, nameof(u));
        for (int i = 0; i < x.Length; i++)
        {
            float v = x0[i] + u[i];
            x[i] = v < 0f ? 0f : (v > 1f ? 1f : v);
        }
    }

    public static void SignStepProjectClipCpu(Span<float> x, ReadOnlySpan<float> x0, ReadOnlySpan<float> g, float step, float eps)
    {
        RequireLength(x0.Length, x.Length, nameof(x0));
        RequireLength(g.Length, x.Length, nameof(g));
        for (int i = 0; i < x.Length; i++)
        {
            float gi = g[i];
            float s = gi > 0f ? 1f : (gi < 0f ? -1f : 0f);
            float v = x[i] + step * s;
            float lo = x0[i] - eps;
            float hi = x0[i] + eps;
            v = v < lo ? lo : (v > hi ? hi : v);
            x[i] = v < 0f ? 0f : (v > 1f ? 1f : v);
        }
    }

    /// <summary>A PGD batch of 64 one-channel 224 x 224 images.</summary>
    [LaunchShapes]
    private static IEnumerable<LaunchShape> LaunchShapes()
    {
        int images = ResNet18Shapes.Batch * ResNet18Shapes.Resolution * ResNet18Shapes.Resolution;
        yield return new LaunchShape(SignStepKernel.Definition, "PGD batch 64x1x224x224", Config(images));
        yield return new LaunchShape(OffsetClipKernel.Definition, "FGSM random start 64x1x224x224", Config(images));
        yield return new LaunchShape(CwAdamKernel.Definition, "C&W batch 64x1x224x224", Config(images));
    }

    private static LaunchConfig Config(int n)
    {
        int blocks = (int)Math.Clamp((n + (long)BlockSize - 1) / BlockSize, 1, MaxBlocks);
        return new LaunchConfig(blocks, BlockSize);
    }

    private static void RequireLength(long actual, long expected, string name)
    {
        if (actual != expected)
        {
            throw new ArgumentException($"{name} holds {actual} elements where {expected} are needed; allocate it with the iterate's shape.", name);
        }
    }
}
