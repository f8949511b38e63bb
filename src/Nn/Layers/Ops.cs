using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Operators;

namespace IlgpuOct.Nn;

/// <summary>Shape of one convolution: input (N, C, H, W), weight (K, C, R, R), output (N, K, P, Q).</summary>
public readonly record struct ConvGeometry(int N, int C, int H, int W, int K, int R, int Stride, int Padding)
{
    public int P => (H + 2 * Padding - R) / Stride + 1;

    public int Q => (W + 2 * Padding - R) / Stride + 1;
}

/// <summary>
/// The one place where layers call operators. INTERIM: until the operator package (wp-ops) is
/// merged these are plain host loops (correct, not fast, host accelerators only); after the merge
/// each method forwards to the operator's dispatcher.
/// </summary>
internal static class Ops
{
    private static Span<float> S(View<float> v) => v.AsSpan();

    private static void RequireHost(Accelerator acc)
    {
        if (!acc.RunsKernelsOnHost)
        {
            throw new NotSupportedException("Interim host operators cannot run on CUDA.");
        }
    }

    public static void Conv2dForward(Accelerator acc, View<float> x, View<float> w, View<float> y, ConvGeometry g)
    {
        RequireHost(acc);
        int ckk = g.C * g.R * g.R;
        int pq = g.P * g.Q;
        Parallel.For(0, g.N, n =>
        {
            var col = new float[ckk * pq];
            Im2Col(S(x).Slice(n * g.C * g.H * g.W, g.C * g.H * g.W), col, g);
            Gemm.Cpu(false, false, g.K, pq, ckk, 1f, S(w), ckk, col, pq, 0f, S(y).Slice(n * g.K * pq, g.K * pq), pq);
        });
    }

    public static void Conv2dBackwardData(Accelerator acc, View<float> dy, View<float> w, View<float> dx, ConvGeometry g)
    {
        RequireHost(acc);
        int ckk = g.C * g.R * g.R;
        int pq = g.P * g.Q;
        Parallel.For(0, g.N, n =>
        {
            var col = new float[ckk * pq];
            Gemm.Cpu(true, false, ckk, pq, g.K, 1f, S(w), ckk, S(dy).Slice(n * g.K * pq, g.K * pq), pq, 0f, col, pq);
            Col2Im(col, S(dx).Slice(n * g.C * g.H * g.W, g.C * g.H * g.W), g);
        });
    }

    public static void Conv2dBackwardWeight(Accelerator acc, View<float> x, View<float> dy, View<float> dw, ConvGeometry g)
    {
        RequireHost(acc);
        int ckk = g.C * g.R * g.R;
        int pq = g.P * g.Q;
        var col = new float[ckk * pq];
        S(dw).Clear();
        for (int n = 0; n < g.N; n++)
        {
            Im2Col(S(x).Slice(n * g.C * g.H * g.W, g.C * g.H * g.W), col, g);
            Gemm.Cpu(false, true, g.K, ckk, pq, 1f, S(dy).Slice(n * g.K * pq, g.K * pq), pq, col, pq, 1f, S(dw), ckk);
        }
    }

    private static void Im2Col(ReadOnlySpan<float> x, Span<float> col, ConvGeometry g)
    {
        int pq = g.P * g.Q;
        for (int c = 0; c < g.C; c++)
        {
            for (int r = 0; r < g.R; r++)
            {
                for (int s = 0; s < g.R; s++)
                {
                    int row = (c * g.R + r) * g.R + s;
                    for (int p = 0; p < g.P; p++)
                    {
                        int h = p * g.Stride - g.Padding + r;
                        for (int q = 0; q < g.Q; q++)
                        {
                            int wi = q * g.Stride - g.Padding + s;
                            col[row * pq + p * g.Q + q] = (uint)h < (uint)g.H && (uint)wi < (uint)g.W ? x[(c * g.H + h) * g.W + wi] : 0f;
                        }
                    }
                }
            }
        }
    }

    private static void Col2Im(ReadOnlySpan<float> col, Span<float> x, ConvGeometry g)
    {
        int pq = g.P * g.Q;
        x.Clear();
        for (int c = 0; c < g.C; c++)
        {
            for (int r = 0; r < g.R; r++)
            {
                for (int s = 0; s < g.R; s++)
                {
                    int row = (c * g.R + r) * g.R + s;
                    for (int p = 0; p < g.P; p++)
                    {
                        int h = p * g.Stride - g.Padding + r;
                        if ((uint)h >= (uint)g.H)
                        {
                            continue;
                        }
                        for (int q = 0; q < g.Q; q++)
                        {
                            int wi = q * g.Stride - g.Padding + s;
                            if ((uint)wi < (uint)g.W)
                            {
                                x[(c * g.H + h) * g.W + wi] += col[row * pq + p * g.Q + q];
                            }
                        }
                    }
                }
            }
        }
    }

    public static void BatchNormTrain(Accelerator acc, View<float> x, View<float> gamma, View<float> beta, View<float> y,
        View<float> saveMean, View<float> saveInvStd, View<float> runningMean, View<float> runningVar, int n, int c, int hw, float momentum, float eps)
    {
        RequireHost(acc);
        Parallel.For(0, c, ch =>
        {
            var xs = S(x);
            double sum = 0;
            double sq = 0;
            for (int i = 0; i < n; i++)
            {
                var plane = xs.Slice((i * c + ch) * hw, hw);
                foreach (float v in plane)
                {
                    sum += v;
                }
            }
            int count = n * hw;
            double mean = sum / count;
            for (int i = 0; i < n; i++)
            {
                var plane = xs.Slice((i * c + ch) * hw, hw);
                foreach (float v in plane)
                {
                    sq += (v - mean) * (v - mean);
                }
            }
            double variance = sq / count;
            float invStd = (float)(1.0 / Math.Sqrt(variance + eps));
            S(saveMean)[ch] = (float)mean;
            S(saveInvStd)[ch] = invStd;
            S(runningMean)[ch] = (1 - momentum) * S(runningMean)[ch] + momentum * (float)mean;
            S(runningVar)[ch] = (1 - momentum) * S(runningVar)[ch] + momentum * (float)(sq / Math.Max(count - 1, 1));
            float scale = S(gamma)[ch] * invStd;
            float shift = S(beta)[ch] - (float)mean * scale;
            var ys = S(y);
            for (int i = 0; i < n; i++)
            {
                int o = (i * c + ch) * hw;
                for (int j = 0; j < hw; j++)
                {
                    ys[o + j] = xs[o + j] * scale + shift;
                }
            }
        });
    }

    public static void BatchNormEval(Accelerator acc, View<float> x, View<float> gamma, View<float> beta, View<float> runningMean, View<float> runningVar,
        View<float> y, int n, int c, int hw, float eps)
    {
        RequireHost(acc);
        var xs = S(x);
        var ys = S(y);
        for (int ch = 0; ch < c; ch++)
        {
            float invStd = 1f / MathF.Sqrt(S(runningVar)[ch] + eps);
            float scale = S(gamma)[ch] * invStd;
            float shift = S(beta)[ch] - S(runningMean)[ch] * scale;
            for (int i = 0; i < n; i++)
            {
                int o = (i * c + ch) * hw;
                for (int j = 0; j < hw; j++)
                {
                    ys[o + j] = xs[o + j] * scale + shift;
                }
            }
        }
    }

    public static void BatchNormBackward(Accelerator acc, View<float> dy, View<float> x, View<float> gamma, View<float> saveMean, View<float> saveInvStd,
        View<float> dx, View<float> dgamma, View<float> dbeta, int n, int c, int hw)
    {
        RequireHost(acc);
        Parallel.For(0, c, ch =>
        {
            var xs = S(x);
            var dys = S(dy);
            float mean = S(saveMean)[ch];
            float invStd = S(saveInvStd)[ch];
            double sumDy = 0;
            double sumDyXhat = 0;
            for (int i = 0; i < n; i++)
            {
                int o = (i * c + ch) * hw;
                for (int j = 0; j < hw; j++)
                {
                    sumDy += dys[o + j];
                    sumDyXhat += dys[o + j] * (xs[o + j] - mean) * invStd;
                }
            }
            S(dgamma)[ch] = (float)sumDyXhat;
            S(dbeta)[ch] = (float)sumDy;
            int count = n * hw;
            float k = S(gamma)[ch] * invStd;
            float meanDy = (float)(sumDy / count);
            float meanDyXhat = (float)(sumDyXhat / count);
            var dxs = S(dx);
            for (int i = 0; i < n; i++)
            {
                int o = (i * c + ch) * hw;
                for (int j = 0; j < hw; j++)
                {
                    float xhat = (xs[o + j] - mean) * invStd;
                    dxs[o + j] = k * (dys[o + j] - meanDy - xhat * meanDyXhat);
                }
            }
        });
    }

    public static void BatchNormEvalBackward(Accelerator acc, View<float> dy, View<float> gamma, View<float> runningVar, View<float> dx, int n, int c, int hw, float eps)
    {
        RequireHost(acc);
        for (int ch = 0; ch < c; ch++)
        {
            float k = S(gamma)[ch] / MathF.Sqrt(S(runningVar)[ch] + eps);
            for (int i = 0; i < n; i++)
            {
                int o = (i * c + ch) * hw;
                for (int j = 0; j < hw; j++)
                {
                    S(dx)[o + j] = S(dy)[o + j] * k;
                }
            }
        }
    }

    public static void Relu(Accelerator acc, View<float> x, View<float> y, int length)
    {
        RequireHost(acc);
        var xs = S(x);
        var ys = S(y);
        for (int i = 0; i < length; i++)
        {
            ys[i] = xs[i] > 0 ? xs[i] : 0f;
        }
    }

    public static void ReluBackward(Accelerator acc, View<float> dy, View<float> y, View<float> dx, int length)
    {
        RequireHost(acc);
        var dys = S(dy);
        var ys = S(y);
        var dxs = S(dx);
        for (int i = 0; i < length; i++)
        {
            dxs[i] = ys[i] > 0 ? dys[i] : 0f;
        }
    }

    public static void Add(Accelerator acc, View<float> a, View<float> b, View<float> y, int length)
    {
        RequireHost(acc);
        var sa = S(a);
        var sb = S(b);
        var sy = S(y);
        for (int i = 0; i < length; i++)
        {
            sy[i] = sa[i] + sb[i];
        }
    }

    public static void MaxPool(Accelerator acc, View<float> x, View<float> y, View<int> indices, int n, int c, int h, int w, int p, int q)
    {
        RequireHost(acc);
        var xs = S(x);
        var ys = S(y);
        for (int nc = 0; nc < n * c; nc++)
        {
            for (int i = 0; i < p; i++)
            {
                for (int j = 0; j < q; j++)
                {
                    float best = float.NegativeInfinity;
                    for (int r = 0; r < 3; r++)
                    {
                        int hi = i * 2 - 1 + r;
                        for (int s = 0; s < 3; s++)
                        {
                            int wi = j * 2 - 1 + s;
                            if ((uint)hi < (uint)h && (uint)wi < (uint)w && xs[(nc * h + hi) * w + wi] > best)
                            {
                                best = xs[(nc * h + hi) * w + wi];
                            }
                        }
                    }
                    ys[(nc * p + i) * q + j] = best;
                }
            }
        }
    }

    public static void MaxPoolBackward(Accelerator acc, View<float> dy, View<float> x, View<int> indices, View<float> dx, int n, int c, int h, int w, int p, int q)
    {
        RequireHost(acc);
        var xs = S(x);
        var dxs = S(dx);
        var dys = S(dy);
        dxs.Clear();
        for (int nc = 0; nc < n * c; nc++)
        {
            for (int i = 0; i < p; i++)
            {
                for (int j = 0; j < q; j++)
                {
                    float best = float.NegativeInfinity;
                    int at = -1;
                    for (int r = 0; r < 3; r++)
                    {
                        int hi = i * 2 - 1 + r;
                        for (int s = 0; s < 3; s++)
                        {
                            int wi = j * 2 - 1 + s;
                            if ((uint)hi < (uint)h && (uint)wi < (uint)w && xs[(nc * h + hi) * w + wi] > best)
                            {
                                best = xs[(nc * h + hi) * w + wi];
                                at = (nc * h + hi) * w + wi;
                            }
                        }
                    }
                    dxs[at] += dys[(nc * p + i) * q + j];
                }
            }
        }
    }

    public static void GlobalAvgPool(Accelerator acc, View<float> x, View<float> y, int n, int c, int hw)
    {
        RequireHost(acc);
        for (int nc = 0; nc < n * c; nc++)
        {
            float sum = 0;
            foreach (float v in S(x).Slice(nc * hw, hw))
            {
                sum += v;
            }
            S(y)[nc] = sum / hw;
        }
    }

    public static void GlobalAvgPoolBackward(Accelerator acc, View<float> dy, View<float> dx, int n, int c, int hw)
    {
        RequireHost(acc);
        for (int nc = 0; nc < n * c; nc++)
        {
            S(dx).Slice(nc * hw, hw).Fill(S(dy)[nc] / hw);
        }
    }

    public static void Linear(Accelerator acc, View<float> x, View<float> w, View<float> b, View<float> y, int n, int inFeatures, int outFeatures)
    {
        RequireHost(acc);
        Gemm.Cpu(false, true, n, outFeatures, inFeatures, 1f, S(x), inFeatures, S(w), inFeatures, 0f, S(y), outFeatures);
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < outFeatures; j++)
            {
                S(y)[i * outFeatures + j] += S(b)[j];
            }
        }
    }

    public static void LinearBackwardData(Accelerator acc, View<float> dy, View<float> w, View<float> dx, int n, int inFeatures, int outFeatures)
    {
        RequireHost(acc);
        Gemm.Cpu(false, false, n, inFeatures, outFeatures, 1f, S(dy), outFeatures, S(w), inFeatures, 0f, S(dx), inFeatures);
    }

    public static void LinearBackwardWeight(Accelerator acc, View<float> x, View<float> dy, View<float> dw, View<float> db, int n, int inFeatures, int outFeatures)
    {
        RequireHost(acc);
        Gemm.Cpu(true, false, outFeatures, inFeatures, n, 1f, S(dy), outFeatures, S(x), inFeatures, 0f, S(dw), inFeatures);
        for (int j = 0; j < outFeatures; j++)
        {
            float sum = 0;
            for (int i = 0; i < n; i++)
            {
                sum += S(dy)[i * outFeatures + j];
            }
            S(db)[j] = sum;
        }
    }

    /// <summary>Mean softmax cross-entropy into <paramref name="loss"/>[0] and its gradient into dlogits.</summary>
    public static void CrossEntropy(Accelerator acc, View<float> logits, View<int> labels, View<float> dlogits, View<float> loss, int n, int k)
    {
        RequireHost(acc);
        double total = 0;
        for (int i = 0; i < n; i++)
        {
            var z = S(logits).Slice(i * k, k);
            int label = labels.AsSpan()[i];
            float max = float.NegativeInfinity;
            for (int j = 0; j < k; j++)
            {
                max = Math.Max(max, z[j]);
            }
            double sum = 0;
            for (int j = 0; j < k; j++)
            {
                sum += Math.Exp(z[j] - max);
            }
            double logSum = Math.Log(sum) + max;
            total += logSum - z[label];
            for (int j = 0; j < k; j++)
            {
                S(dlogits)[i * k + j] = (float)((Math.Exp(z[j] - logSum) - (j == label ? 1 : 0)) / n);
            }
        }
        S(loss)[0] = (float)(total / n);
    }

    /// <summary>PyTorch SGD: d = g + wd*w; m = momentum*m + d; w -= lr*m.</summary>
    public static void Sgd(Accelerator acc, View<float> w, View<float> g, View<float> m, int length, float lr, float momentum, float weightDecay)
    {
        RequireHost(acc);
        var ws = S(w);
        var gs = S(g);
        var ms = S(m);
        for (int i = 0; i < length; i++)
        {
            float d = gs[i] + weightDecay * ws[i];
            ms[i] = momentum * ms[i] + d;
            ws[i] -= lr * ms[i];
        }
    }
}
