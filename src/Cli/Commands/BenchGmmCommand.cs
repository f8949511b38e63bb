using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using IlgpuOct.Cli.Rendering;
using IlgpuOct.Defense.Density;
using IlgpuOct.Nn.IO;

namespace IlgpuOct.Cli.Commands;

/// <summary>
/// <c>ilgpuoct bench gmm</c>: a fixed number of EM iterations (tolerance 0) of a full-covariance
/// mixture from an explicit start (given weights and means, identity precisions), timed. The data
/// is synthetic and seeded, or read from a safetensors file with x, init.weights and init.means
/// (the golden layout; benchmarks/gmm/compare-sklearn.sh writes one so both sides fit the same data).
/// </summary>
internal static class BenchGmmCommand
{
    public static Command Create()
    {
        var device = CliRunner.DeviceOption("cpu");
        var json = CliRunner.JsonOption();
        var n = new Option<int>("--n") { Description = "Points (ignored with --data).", DefaultValueFactory = _ => 4000 }.InRange(2, 10_000_000);
        var d = new Option<int>("--d") { Description = "Features (ignored with --data).", DefaultValueFactory = _ => 512 }.InRange(1, 65_536);
        var k = new Option<int>("--k") { Description = "Components (ignored with --data).", DefaultValueFactory = _ => 4 }.InRange(1, 4096);
        var iters = new Option<int>("--iters") { Description = "EM iterations to run (tolerance 0, so exactly this many).", DefaultValueFactory = _ => 20 }.InRange(1, 100_000);
        var seed = new Option<int>("--seed") { Description = "Seed of the synthetic data and start.", DefaultValueFactory = _ => 0 };
        var data = new Option<string?>("--data") { Description = "safetensors file with x (N, D), init.weights (K), init.means (K, D)." };
        var command = new Command("gmm", "Time EM for a full-covariance Gaussian mixture (N x D features, K components).")
        {
            device, json, n, d, k, iters, seed, data,
        };
        command.Require(r =>
        {
            long n0 = r.GetValue(n), d0 = r.GetValue(d), k0 = r.GetValue(k);
            if (k0 > n0)
            {
                return $"--k {k0} is more than --n {n0}; every component needs a point.";
            }
            long largest = Math.Max(n0 * d0, Math.Max(k0 * d0 * d0, n0 * k0));
            return largest > Array.MaxLength / 8
                ? $"--n {n0} --d {d0} --k {k0} need arrays of {largest} values (N x D, K x D x D, N x K), more than fit ({Array.MaxLength / 8}); lower --n, --d or --k."
                : null;
        });
        CliRunner.SetAction(command, (parse, token) =>
        {
            int iterations = parse.GetValue(iters);
            if (iterations < 1)
            {
                throw new ArgumentException($"--iters is {iterations}; use 1 or more.");
            }
            var (x, rows, features, weights, means) = parse.GetValue(data) is { } path
                ? Read(path)
                : Synthetic(parse.GetValue(n), parse.GetValue(d), parse.GetValue(k), parse.GetValue(seed));
            int components = weights.Length;
            using var accelerator = CliRunner.OpenDevice(parse.GetValue(device)!);
            var gmm = new GaussianMixture(new GaussianMixtureOptions
            {
                Components = components,
                CovarianceType = CovarianceType.Full,
                Tolerance = 0,
                MaxIterations = iterations,
                Start = new GaussianMixtureStart(weights, means),
            });
            var watch = Stopwatch.StartNew();
            gmm.Fit(x, rows, features, accelerator, cancellationToken: token);
            double seconds = watch.Elapsed.TotalSeconds;
            // Per iteration: E-step (x - mu) L per component ~ N D^2 (triangular L), M-step weighted Gram ~ N D^2.
            double gflop = 2.0 * iterations * components * rows * (double)features * features / 1e9;
            var result = new BenchGmmResult(accelerator.Id, accelerator.Name, rows, features, components, gmm.NIter,
                seconds, seconds / gmm.NIter, gflop / seconds, gmm.LowerBound);
            if (parse.GetValue(json))
            {
                Ui.WriteJson(result);
            }
            else
            {
                var inv = CultureInfo.InvariantCulture;
                Ui.Table("EM for a full-covariance Gaussian mixture", ["device", "N x D", "K", "iterations", "seconds", "s / iteration", "GFLOP/s (approx.)", "lower bound"],
                [[result.Device, $"{rows} x {features}", components.ToString(inv), gmm.NIter.ToString(inv), seconds.ToString("F3", inv),
                    result.SecondsPerIteration.ToString("F4", inv), result.GflopPerSecond.ToString("F2", inv), gmm.LowerBound.ToString("R", inv)]]);
            }
            return CliRunner.Ok;
        });
        return command;
    }

    private static (float[] X, int N, int D, double[] Weights, double[] Means) Read(string path)
    {
        var fields = new SafeTensorFields(SafeTensorFile.Read(path), "EM benchmark file");
        int[] shape = fields.HasTensor("x") ? fields.File["x"].Shape : [];
        if (shape.Length != 2 || shape[0] < 2 || shape[1] < 1)
        {
            throw fields.Error("tensor 'x'", $"it is {(fields.HasTensor("x") ? $"[{string.Join(", ", shape)}]" : "missing")}, expected (N >= 2, D >= 1)");
        }
        int rows = shape[0], features = shape[1];
        int[] weightShape = fields.HasTensor("init.weights") ? fields.File["init.weights"].Shape : [];
        int components = weightShape.Length == 1 && weightShape[0] >= 1 && weightShape[0] <= rows ? weightShape[0]
            : throw fields.Error("tensor 'init.weights'", $"it is missing or not (K) with 1 <= K <= N = {rows}");
        fields.Product("tensor 'init.means'", Array.MaxLength / 8, components, features, features);
        float[] x = Array.ConvertAll(fields.Doubles("x", finite: true, rows, features), v => (float)v);
        return (x, rows, features, fields.Doubles("init.weights", finite: true, components), fields.Doubles("init.means", finite: true, components, features));
    }

    // K clusters with random centres (spread 2) and per-feature noise scales in [0.5, 1.5]; the start
    // is equal weights and the means of K seeded random points.
    internal static (float[] X, int N, int D, double[] Weights, double[] Means) Synthetic(int n, int d, int k, int seed)
    {
        if (n < 2 || d < 1 || k < 1 || k > n)
        {
            throw new ArgumentException($"--n {n} --d {d} --k {k}: need N >= 2, D >= 1 and 1 <= K <= N.");
        }
        var random = new Random(seed);
        double Gaussian() => Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
        var centres = new double[k * d];
        for (int i = 0; i < centres.Length; i++)
        {
            centres[i] = 2 * Gaussian();
        }
        var scales = new double[d];
        for (int j = 0; j < d; j++)
        {
            scales[j] = 0.5 + random.NextDouble();
        }
        var x = new float[n * d];
        for (int i = 0; i < n; i++)
        {
            int c = i % k;
            for (int j = 0; j < d; j++)
            {
                x[i * d + j] = (float)(centres[c * d + j] + scales[j] * Gaussian());
            }
        }
        var means = new double[k * d];
        for (int c = 0; c < k; c++)
        {
            int row = random.Next(n);
            for (int j = 0; j < d; j++)
            {
                means[c * d + j] = x[row * d + j];
            }
        }
        return (x, n, d, Enumerable.Repeat(1.0 / k, k).ToArray(), means);
    }

    private sealed record BenchGmmResult(string Device, string DeviceName, int N, int D, int K, int Iterations,
        double Seconds, double SecondsPerIteration, double GflopPerSecond, double LowerBound);
}
