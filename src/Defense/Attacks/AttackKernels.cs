using IlgpuOct.Kernels;

namespace IlgpuOct.Defense.Attacks;

/// <summary>
/// Element-wise attack updates on the device: the L-infinity sign step with projection and
/// clipping, and the even spread of a pooled-feature gradient over H and W. Each has a CPU
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
    private static void AddSpread(KernelContext ctx, View<float> dPool, View<float> d, int hw)
    {
        for (int i = ctx.GlobalX; i < d.Length; i += ctx.GridStrideX)
        {
            d[i] += dPool[i / hw] / (float)hw;
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
        if (accelerator.Kind == AcceleratorKind.Cpu)
        {
            SignStepProjectClipCpu(x.AsSpan(), x0.AsSpan(), g.AsSpan(), step, eps);
            return;
        }
        SignStepKernel.Launch(accelerator, Config(x.Length), x, x0, g, step, eps);
    }

    /// <summary>d (N, C, H, W) += dPool (N, C) / (H W): the gradient of a global average pool. hw = H W.</summary>
    public static void AddPooledGradient(Accelerator accelerator, View<float> dPool, View<float> d, int hw)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        ArgumentOutOfRangeException.ThrowIfLessThan(hw, 1);
        RequireLength((long)dPool.Length * hw, d.Length, nameof(dPool));
        if (accelerator.Kind == AcceleratorKind.Cpu)
        {
            AddPooledGradientCpu(dPool.AsSpan(), d.AsSpan(), hw);
            return;
        }
        AddSpreadKernel.Launch(accelerator, Config(d.Length), dPool, d, hw);
    }

    // ------------------------------------------------------------------ CPU implementations

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

    public static void AddPooledGradientCpu(ReadOnlySpan<float> dPool, Span<float> d, int hw)
    {
        RequireLength((long)dPool.Length * hw, d.Length, nameof(dPool));
        for (int i = 0; i < d.Length; i++)
        {
            d[i] += dPool[i / hw] / (float)hw;
        }
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
