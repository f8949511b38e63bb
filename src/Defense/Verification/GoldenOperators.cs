using System.Globalization;
using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Operators;
using IlgpuOct.Kernels.Verification;
using IlgpuOct.Nn.IO;

namespace IlgpuOct.Defense.Verification;

/// <summary>One golden case (e.g. conv.2 forward and gradients) on one accelerator: every tensor's comparison.</summary>
public sealed record GoldenCaseResult(string Case, string Shape, IReadOnlyList<TensorComparison> Comparisons)
{
    public bool Passed => Comparisons.All(c => c.Passed);

    public override string ToString() => $"{Case} {Shape}: " + string.Join("; ", Comparisons.Select(c => c.ToString()));
}

/// <summary>A named golden check: runs on any accelerator (inputs uploaded, outputs downloaded).</summary>
public sealed record GoldenCheck(string Name, Func<Accelerator, GoldenCaseResult> Run);

/// <summary>
/// The operator checks against ops.safetensors (PyTorch): each reads its shapes and settings from the
/// file, runs the operator's forward and backward on the accelerator and compares every output with
/// the tolerances the golden tests hold them to. The xunit tests and <c>ilgpuoct verify</c> both run these.
/// </summary>
public static class GoldenOperators
{
    public const string FileName = "ops.safetensors";

    /// <summary>Every check of the file: conv.0..count-1, bn, maxpool, avgpool, linear, xent, gce.</summary>
    public static IReadOnlyList<GoldenCheck> All(SafeTensorFile ops)
    {
        var checks = new List<GoldenCheck>();
        int count = int.Parse(ops.Metadata["conv.count"], CultureInfo.InvariantCulture);
        for (int i = 0; i < count; i++)
        {
            int index = i;
            checks.Add(new GoldenCheck($"ops.conv.{index}", acc => Conv(acc, ops, index)));
        }
        checks.Add(new GoldenCheck("ops.bn", acc => BatchNorm(acc, ops)));
        checks.Add(new GoldenCheck("ops.maxpool", acc => MaxPool(acc, ops)));
        checks.Add(new GoldenCheck("ops.avgpool", acc => AvgPool(acc, ops)));
        checks.Add(new GoldenCheck("ops.linear", acc => LinearLayer(acc, ops)));
        checks.Add(new GoldenCheck("ops.xent", acc => CrossEntropyLoss(acc, ops)));
        checks.Add(new GoldenCheck("ops.gce", acc => GuidedComplement(acc, ops)));
        return checks;
    }

    /// <summary>Parses "stride=2,padding=3" into its pairs (keys are case-sensitive).</summary>
    public static Dictionary<string, string> Settings(string text)
    {
        var settings = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            int eq = part.IndexOf('=', StringComparison.Ordinal);
            if (eq > 0)
            {
                settings[part[..eq].Trim()] = part[(eq + 1)..].Trim();
            }
        }
        return settings;
    }

    public static int Int(Dictionary<string, string> settings, string key) =>
        settings.TryGetValue(key, out var value)
            ? int.Parse(value, CultureInfo.InvariantCulture)
            : throw new KeyNotFoundException($"Golden metadata lacks '{key}' (has {string.Join(", ", settings.Keys)}).");

    public static GoldenCaseResult Conv(Accelerator acc, SafeTensorFile file, int index)
    {
        var settings = Settings(file.Metadata[$"conv.{index}"]);
        var x = file[$"conv.{index}.x"];
        var w = file[$"conv.{index}.w"];
        var s = new Conv2dShape(x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3], w.Shape[0], w.Shape[2], Int(settings, "stride"), Int(settings, "padding"));
        RequireShape(file, $"conv.{index}.w", s.OutC, s.InC, s.Kernel, s.Kernel);
        RequireShape(file, $"conv.{index}.y", s.N, s.OutC, s.OutH, s.OutW);
        using var io = new DeviceArrays(acc);
        var xs = io.Upload(x.ToFloat());
        var ws = io.Upload(w.ToFloat());
        var dy = io.Upload(file[$"conv.{index}.dy"].ToFloat());
        var y = io.Allocate(s.OutputLength);
        var dx = io.Allocate(s.InputLength);
        var dw = io.Allocate(s.WeightLength);
        Conv2d.Forward(acc, s, xs, ws, y);
        Conv2d.BackwardData(acc, s, ws, dy, dx);
        Conv2d.BackwardWeight(acc, s, xs, dy, dw);
        return new GoldenCaseResult($"conv.{index}", Dims(file, $"conv.{index}.x", $"conv.{index}.w") + $" stride {s.Stride} padding {s.Padding}",
        [
            Comparison.Compare($"conv.{index}.y", acc.Download(y), file[$"conv.{index}.y"].ToFloat(), atol: 1e-4, rtol: 1e-4, maxRelativeL2: 1e-4),
            Comparison.Compare($"conv.{index}.dx", acc.Download(dx), file[$"conv.{index}.dx"].ToFloat(), atol: 1e-4, rtol: 1e-3, maxRelativeL2: 1e-3),
            Comparison.Compare($"conv.{index}.dw", acc.Download(dw), file[$"conv.{index}.dw"].ToFloat(), atol: 1e-4, rtol: 1e-3, maxRelativeL2: 1e-3),
        ]);
    }

    public static GoldenCaseResult BatchNorm(Accelerator acc, SafeTensorFile file)
    {
        var settings = Settings(file.Metadata["bn"]);
        float momentum = float.Parse(settings["momentum"], CultureInfo.InvariantCulture);
        float eps = float.Parse(settings["eps"], CultureInfo.InvariantCulture);
        var xt = file["bn.x"];
        var s = new BatchNorm2dShape(xt.Shape[0], xt.Shape[1], xt.Shape[2], xt.Shape[3]);
        using var io = new DeviceArrays(acc);
        var x = io.Upload(xt.ToFloat());
        var gamma = io.Upload(file["bn.gamma"].ToFloat());
        var beta = io.Upload(file["bn.beta"].ToFloat());
        var dy = io.Upload(file["bn.dy"].ToFloat());
        var runningMean = io.Upload(file["bn.running_mean"].ToFloat());
        var runningVar = io.Upload(file["bn.running_var"].ToFloat());
        var y = io.Allocate(s.Length);
        var dx = io.Allocate(s.Length);
        var saveMean = io.Allocate(s.C);
        var saveInvStd = io.Allocate(s.C);
        var dgamma = io.Allocate(s.C);
        var dbeta = io.Allocate(s.C);
        BatchNorm2d.ForwardTraining(acc, s, x, gamma, beta, runningMean, runningVar, y, saveMean, saveInvStd, momentum, eps);
        BatchNorm2d.BackwardTraining(acc, s, x, dy, gamma, saveMean, saveInvStd, dx, dgamma, dbeta);
        return new GoldenCaseResult("bn", Dims(file, "bn.x"),
        [
            Comparison.Compare("bn.y", acc.Download(y), file["bn.y"].ToFloat(), atol: 1e-5, rtol: 1e-4, maxRelativeL2: 1e-4),
            Comparison.Compare("bn.running_mean.after", acc.Download(runningMean), file["bn.running_mean.after"].ToFloat(), atol: 1e-6, rtol: 1e-5, maxRelativeL2: 1e-4),
            Comparison.Compare("bn.running_var.after", acc.Download(runningVar), file["bn.running_var.after"].ToFloat(), atol: 1e-6, rtol: 1e-5, maxRelativeL2: 1e-4),
            Comparison.Compare("bn.dx", acc.Download(dx), file["bn.dx"].ToFloat(), atol: 1e-5, rtol: 1e-3, maxRelativeL2: 1e-3),
            Comparison.Compare("bn.dgamma", acc.Download(dgamma), file["bn.dgamma"].ToFloat(), atol: 1e-5, rtol: 1e-3, maxRelativeL2: 1e-3),
            Comparison.Compare("bn.dbeta", acc.Download(dbeta), file["bn.dbeta"].ToFloat(), atol: 1e-5, rtol: 1e-3, maxRelativeL2: 1e-3),
        ]);
    }

    public static GoldenCaseResult MaxPool(Accelerator acc, SafeTensorFile file)
    {
        var settings = Settings(file.Metadata["maxpool"]);
        var xt = file["maxpool.x"];
        var s = new MaxPool2dShape(xt.Shape[0], xt.Shape[1], xt.Shape[2], xt.Shape[3], Int(settings, "kernel"), Int(settings, "stride"), Int(settings, "padding"));
        RequireShape(file, "maxpool.y", s.N, s.C, s.OutH, s.OutW);
        using var io = new DeviceArrays(acc);
        var x = io.Upload(xt.ToFloat());
        var dy = io.Upload(file["maxpool.dy"].ToFloat());
        var y = io.Allocate(s.OutputLength);
        using var indices = acc.Allocate<int>(s.OutputLength);
        var dx = io.Allocate(s.InputLength);
        MaxPool2d.Forward(acc, s, x, y, indices.View);
        MaxPool2d.Backward(acc, s, dy, indices.View, dx);
        return new GoldenCaseResult("maxpool", Dims(file, "maxpool.x") + $" kernel {s.Kernel} stride {s.Stride} padding {s.Padding}",
        [
            Comparison.Compare("maxpool.y (a selection, so exact)", acc.Download(y), file["maxpool.y"].ToFloat(), atol: 0, rtol: 0, maxRelativeL2: 1e-4),
            Comparison.Compare("maxpool.dx", acc.Download(dx), file["maxpool.dx"].ToFloat(), atol: 1e-6, rtol: 1e-6, maxRelativeL2: 1e-3),
        ]);
    }

    public static GoldenCaseResult AvgPool(Accelerator acc, SafeTensorFile file)
    {
        var xt = file["avgpool.x"];
        var s = new GlobalAvgPoolShape(xt.Shape[0], xt.Shape[1], xt.Shape[2], xt.Shape[3]);
        RequireShape(file, "avgpool.y", s.N, s.C);
        using var io = new DeviceArrays(acc);
        var x = io.Upload(xt.ToFloat());
        var dy = io.Upload(file["avgpool.dy"].ToFloat());
        var y = io.Allocate(s.OutputLength);
        var dx = io.Allocate(s.InputLength);
        GlobalAvgPool.Forward(acc, s, x, y);
        GlobalAvgPool.Backward(acc, s, dy, dx);
        return new GoldenCaseResult("avgpool", Dims(file, "avgpool.x"),
        [
            Comparison.Compare("avgpool.y", acc.Download(y), file["avgpool.y"].ToFloat(), atol: 1e-6, rtol: 1e-5, maxRelativeL2: 1e-4),
            Comparison.Compare("avgpool.dx", acc.Download(dx), file["avgpool.dx"].ToFloat(), atol: 1e-7, rtol: 1e-6, maxRelativeL2: 1e-3),
        ]);
    }

    public static GoldenCaseResult LinearLayer(Accelerator acc, SafeTensorFile file)
    {
        var xt = file["linear.x"];
        var wt = file["linear.w"];
        var s = new LinearShape(xt.Shape[0], xt.Shape[1], wt.Shape[0]);
        RequireShape(file, "linear.w", s.Out, s.In);
        using var io = new DeviceArrays(acc);
        var x = io.Upload(xt.ToFloat());
        var w = io.Upload(wt.ToFloat());
        var b = io.Upload(file["linear.b"].ToFloat());
        var dy = io.Upload(file["linear.dy"].ToFloat());
        var y = io.Allocate(s.OutputLength);
        var dx = io.Allocate(s.InputLength);
        var dw = io.Allocate(s.WeightLength);
        var db = io.Allocate(s.Out);
        Linear.Forward(acc, s, x, w, b, y);
        Linear.Backward(acc, s, x, w, dy, dx, dw, db);
        return new GoldenCaseResult("linear", Dims(file, "linear.x", "linear.w"),
        [
            Comparison.Compare("linear.y", acc.Download(y), file["linear.y"].ToFloat(), atol: 1e-5, rtol: 1e-4, maxRelativeL2: 1e-4),
            Comparison.Compare("linear.dx", acc.Download(dx), file["linear.dx"].ToFloat(), atol: 1e-5, rtol: 1e-3, maxRelativeL2: 1e-3),
            Comparison.Compare("linear.dw", acc.Download(dw), file["linear.dw"].ToFloat(), atol: 1e-5, rtol: 1e-3, maxRelativeL2: 1e-3),
            Comparison.Compare("linear.db", acc.Download(db), file["linear.db"].ToFloat(), atol: 1e-5, rtol: 1e-3, maxRelativeL2: 1e-3),
        ]);
    }

    public static GoldenCaseResult CrossEntropyLoss(Accelerator acc, SafeTensorFile file) =>
        Loss(acc, file, "xent", gradientRtol: 1e-4, (a, s, logits, labels, loss, dlogits) => CrossEntropy.Compute(a, s, logits, labels, loss, dlogits));

    public static GoldenCaseResult GuidedComplement(Accelerator acc, SafeTensorFile file)
    {
        if (!file.Metadata["gce"].Contains("alpha=1/3", StringComparison.Ordinal))
        {
            throw new InvalidDataException($"{FileName}: gce metadata '{file.Metadata["gce"]}' is not alpha=1/3, the implementation's alpha.");
        }
        return Loss(acc, file, "gce", gradientRtol: 1e-3, (a, s, logits, labels, loss, dlogits) => GuidedComplementEntropy.Compute(a, s, logits, labels, loss, dlogits));
    }

    private delegate void LossFunction(Accelerator acc, LogitsShape s, View<float> logits, View<int> labels, View<float> loss, View<float> dlogits);

    private static GoldenCaseResult Loss(Accelerator acc, SafeTensorFile file, string key, double gradientRtol, LossFunction compute)
    {
        var lt = file[$"{key}.logits"];
        var s = new LogitsShape(lt.Shape[0], lt.Shape[1]);
        using var io = new DeviceArrays(acc);
        var logits = io.Upload(lt.ToFloat());
        using var labels = acc.Upload<int>(file[$"{key}.labels"].ToInt32());
        var loss = io.Allocate(1);
        var dlogits = io.Allocate(s.Length);
        compute(acc, s, logits, labels.View, loss, dlogits);
        return new GoldenCaseResult(key, Dims(file, $"{key}.logits"),
        [
            Comparison.Compare($"{key}.loss", acc.Download(loss), file[$"{key}.loss"].ToFloat(), atol: 1e-6, rtol: 1e-5, maxRelativeL2: 1e-4),
            Comparison.Compare($"{key}.dlogits", acc.Download(dlogits), file[$"{key}.dlogits"].ToFloat(), atol: 1e-6, rtol: gradientRtol, maxRelativeL2: 1e-3),
        ]);
    }

    /// <summary>"x[2, 3, 17, 17] w[5, 3, 7, 7]" for the named tensors.</summary>
    private static string Dims(SafeTensorFile file, params string[] keys) =>
        string.Join(" ", keys.Select(k => $"{k[(k.LastIndexOf('.') + 1)..]}[{string.Join(", ", file[k].Shape)}]"));

    private static void RequireShape(SafeTensorFile file, string key, params int[] expected)
    {
        var shape = file[key].Shape;
        if (!shape.SequenceEqual(expected))
        {
            throw new InvalidDataException($"{FileName}: {key} has shape [{string.Join(", ", shape)}]; the other tensors of its group imply [{string.Join(", ", expected)}].");
        }
    }

    /// <summary>Float buffers on the accelerator, freed together.</summary>
    private sealed class DeviceArrays(Accelerator acc) : IDisposable
    {
        private readonly List<IDisposable> _buffers = [];

        public View<float> Upload(float[] values)
        {
            var buffer = acc.Upload<float>(values);
            _buffers.Add(buffer);
            return buffer.View;
        }

        public View<float> Allocate(int length)
        {
            var buffer = acc.Allocate<float>(length);
            _buffers.Add(buffer);
            return buffer.View;
        }

        public void Dispose() => _buffers.ForEach(b => b.Dispose());
    }
}
