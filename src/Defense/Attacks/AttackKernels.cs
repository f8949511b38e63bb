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

    /// <summary>
    /// One thread per image: the density class (the target, else the largest other logit, ties to the
    /// lowest index as AttackMath.MaxOther) and, with cw != 0, the C&amp;W margin's dJ/dlogits (J = -max(margin, -kappa)).
    /// </summary>
    [Kernel]
    private static void AdaptiveRows(KernelContext ctx, View<float> logits, View<int> classes, View<float> dLogits, View<int> densityClasses,
        int n, int k, int targeted, int cw, float kappa)
    {
        for (int row = ctx.GlobalX; row < n; row += ctx.GridStrideX)
        {
            int cls = classes[row];
            float best = float.NegativeInfinity;
            int at = -1;
            for (int j = 0; j < k; j++)
            {
                float v = j == cls ? float.NegativeInfinity : logits[row * k + j];
                if (at < 0 || v > best)
                {
                    best = v;
                    at = j;
                }
            }
            densityClasses[row] = targeted != 0 ? cls : at;
            if (cw != 0)
            {
                for (int j = 0; j < k; j++)
                {
                    dLogits[row * k + j] = 0f;
                }
                float own = logits[row * k + cls];
                float margin = targeted != 0 ? best - own : own - best;
                if (margin > -kappa)
                {
                    dLogits[row * k + at] = targeted != 0 ? -1f : 1f;
                    dLogits[row * k + cls] = targeted != 0 ? 1f : -1f;
                }
            }
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

    /// <summary>
    /// The adaptive objectives' per-image bookkeeping on logits (N, K) against the goal's classes (N):
    /// densityClasses (N) = the target when targeted, else the most likely class other than the label;
    /// with <paramref name="cwMargin"/> dLogits (N, K) = d(-max(margin, -kappa))/dlogits (otherwise dLogits is not touched).
    /// </summary>
    public static void AdaptiveRows(Accelerator accelerator, int n, int k, View<float> logits, View<int> classes, View<float> dLogits, View<int> densityClasses,
        bool targeted, bool cwMargin, float kappa)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        RequireLength(logits.Length, n * k, nameof(logits));
        RequireLength(dLogits.Length, n * k, nameof(dLogits));
        RequireLength(classes.Length, n, nameof(classes));
        RequireLength(densityClasses.Length, n, nameof(densityClasses));
        OperatorDispatch.Run(accelerator, "AttackKernels.AdaptiveRows", OperatorCost.Elementwise((long)n * k, 3, reads: 1, writes: cwMargin ? 1 : 0),
            () => AdaptiveRowsCpu(n, k, logits.AsSpan(), classes.AsSpan(), dLogits.AsSpan(), densityClasses.AsSpan(), targeted, cwMargin, kappa),
            () => AdaptiveRowsKernel.Launch(accelerator, Config(n), logits, classes, dLogits, densityClasses, n, k, targeted ? 1 : 0, cwMargin ? 1 : 0, kappa));
    }

    // ------------------------------------------------------------------ CPU implementations

    /// <summary>The CPU implementation of <see cref="AdaptiveRows"/>, on AttackMath's MaxOther and CwMargin.</summary>
    public static void AdaptiveRowsCpu(int n, int k, ReadOnlySpan<float> logits, ReadOnlySpan<int> classes, Span<float> dLogits, Span<int> densityClasses,
        bool targeted, bool cwMargin, float kappa)
    {
        for (int i = 0; i < n; i++)
        {
            var row = logits.Slice(i * k, k);
            int cls = classes[i];
            var (margin, other) = AttackMath.CwMargin(row, cls, targeted);
            densityClasses[i] = targeted ? cls : other;
            if (!cwMargin)
            {
                continue;
            }
            var d = dLogits.Slice(i * k, k);
            d.Clear();
            if (margin > -kappa)
            {
                d[other] = targeted ? -1f : 1f;
                d[cls] = targeted ? 1f : -1f;
            }
        }
    }

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
        yield return new LaunchShape(AdaptiveRowsKernel.Definition, "adaptive PGD batch 64", Config(ResNet18Shapes.Batch));
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
