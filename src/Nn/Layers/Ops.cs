using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Operators;

namespace IlgpuOct.Nn;

/// <summary>Shape of one convolution: input (N, C, H, W), weight (K, C, R, R), output (N, K, P, Q).</summary>
public readonly record struct ConvGeometry(int N, int C, int H, int W, int K, int R, int Stride, int Padding)
{
    public int P => (H + 2 * Padding - R) / Stride + 1;

    public int Q => (W + 2 * Padding - R) / Stride + 1;

    public Conv2dShape ToShape() => new(N, C, H, W, K, R, Stride, Padding);
}

/// <summary>
/// The one place where layers call operators; each forwards to the operator's dispatcher (CPU
/// implementation on the cpu engine, kernels on cpu-kernels and CUDA).
/// </summary>
internal static class Ops
{
    public static void Conv2dForward(Accelerator acc, View<float> x, View<float> w, View<float> y, ConvGeometry g) =>
        Kernels.Operators.Conv2d.Forward(acc, g.ToShape(), x, w, y);

    public static void Conv2dBackwardData(Accelerator acc, View<float> dy, View<float> w, View<float> dx, ConvGeometry g) =>
        Kernels.Operators.Conv2d.BackwardData(acc, g.ToShape(), w, dy, dx);

    public static void Conv2dBackwardWeight(Accelerator acc, View<float> x, View<float> dy, View<float> dw, ConvGeometry g) =>
        Kernels.Operators.Conv2d.BackwardWeight(acc, g.ToShape(), x, dy, dw);

    private static BatchNorm2dShape BnShape(int n, int c, int hw) => new(n, c, hw, 1);

    public static void BatchNormTrain(Accelerator acc, View<float> x, View<float> gamma, View<float> beta, View<float> y,
        View<float> saveMean, View<float> saveInvStd, View<float> runningMean, View<float> runningVar, int n, int c, int hw, float momentum, float eps) =>
        Kernels.Operators.BatchNorm2d.ForwardTraining(acc, BnShape(n, c, hw), x, gamma, beta, runningMean, runningVar, y, saveMean, saveInvStd, momentum, eps);

    public static void BatchNormEval(Accelerator acc, View<float> x, View<float> gamma, View<float> beta, View<float> runningMean, View<float> runningVar,
        View<float> y, int n, int c, int hw, float eps) =>
        Kernels.Operators.BatchNorm2d.ForwardInference(acc, BnShape(n, c, hw), x, gamma, beta, runningMean, runningVar, y, eps);

    public static void BatchNormBackward(Accelerator acc, View<float> dy, View<float> x, View<float> gamma, View<float> saveMean, View<float> saveInvStd,
        View<float> dx, View<float> dgamma, View<float> dbeta, int n, int c, int hw) =>
        Kernels.Operators.BatchNorm2d.BackwardTraining(acc, BnShape(n, c, hw), x, dy, gamma, saveMean, saveInvStd, dx, dgamma, dbeta);

    public static void BatchNormEvalBackward(Accelerator acc, View<float> dy, View<float> gamma, View<float> runningVar, View<float> dx, int n, int c, int hw, float eps) =>
        Kernels.Operators.BatchNorm2d.BackwardInference(acc, BnShape(n, c, hw), dy, gamma, runningVar, dx, eps);

    public static void Relu(Accelerator acc, View<float> x, View<float> y) => Elementwise.ReluForward(acc, x, y);

    /// <summary>dx = dy where y &gt; 0: the output gives the same mask as the input (y &gt; 0 exactly where x &gt; 0).</summary>
    public static void ReluBackward(Accelerator acc, View<float> dy, View<float> y, View<float> dx) => Elementwise.ReluBackward(acc, y, dy, dx);

    public static void Add(Accelerator acc, View<float> a, View<float> b, View<float> y) => Elementwise.Add(acc, a, b, y);

    public static void MaxPool(Accelerator acc, View<float> x, View<float> y, View<int> indices, int n, int c, int h, int w, int p, int q) =>
        Kernels.Operators.MaxPool2d.Forward(acc, new MaxPool2dShape(n, c, h, w), x, y, indices);

    public static void MaxPoolBackward(Accelerator acc, View<float> dy, View<float> x, View<int> indices, View<float> dx, int n, int c, int h, int w, int p, int q) =>
        Kernels.Operators.MaxPool2d.Backward(acc, new MaxPool2dShape(n, c, h, w), dy, indices, dx);

    public static void GlobalAvgPool(Accelerator acc, View<float> x, View<float> y, int n, int c, int hw) =>
        Kernels.Operators.GlobalAvgPool.Forward(acc, new GlobalAvgPoolShape(n, c, hw, 1), x, y);

    public static void GlobalAvgPoolBackward(Accelerator acc, View<float> dy, View<float> dx, int n, int c, int hw) =>
        Kernels.Operators.GlobalAvgPool.Backward(acc, new GlobalAvgPoolShape(n, c, hw, 1), dy, dx);

    public static void Linear(Accelerator acc, View<float> x, View<float> w, View<float> b, View<float> y, int n, int inFeatures, int outFeatures) =>
        Kernels.Operators.Linear.Forward(acc, new LinearShape(n, inFeatures, outFeatures), x, w, b, y);

    /// <summary>dw, db always; dx unless it is empty.</summary>
    public static void LinearBackward(Accelerator acc, View<float> x, View<float> w, View<float> dy, View<float> dx, View<float> dw, View<float> db, int n, int inFeatures, int outFeatures) =>
        Kernels.Operators.Linear.Backward(acc, new LinearShape(n, inFeatures, outFeatures), x, w, dy, dx, dw, db);

    /// <summary>Mean softmax cross-entropy into <paramref name="loss"/>[0] and its gradient into dlogits.</summary>
    public static void CrossEntropy(Accelerator acc, View<float> logits, View<int> labels, View<float> dlogits, View<float> loss, int n, int k) =>
        Kernels.Operators.CrossEntropy.Compute(acc, new LogitsShape(n, k), logits, labels, loss, dlogits);

    /// <summary>PyTorch SGD: d = g + wd*w; m = momentum*m + d; w -= lr*m.</summary>
    public static void Sgd(Accelerator acc, View<float> w, View<float> g, View<float> m, int length, float lr, float momentum, float weightDecay) =>
        Kernels.Operators.Sgd.Step(acc, w, g, m, new SgdSettings(lr, momentum, weightDecay));
}
