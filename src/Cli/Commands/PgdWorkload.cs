using IlgpuOct.Defense.Attacks;
using IlgpuOct.Kernels;
using IlgpuOct.Nn;

namespace IlgpuOct.Cli.Commands;

/// <summary>One untargeted L-infinity PGD batch (eps 0.005, no random start) against a seeded, untrained ResNet-18 on seeded random images: what <c>bench pgd</c> times and <c>profile attack</c> profiles.</summary>
internal sealed class PgdWorkload : IDisposable
{
    private readonly ResNet18 _model;
    private readonly ResNetClassifier _classifier;
    private readonly CrossEntropyObjective _objective;
    private readonly float[] _images; // (N, 1, H, W)
    private readonly int[] _shape;
    private readonly int[] _labels; // (N)

    public PgdWorkload(Accelerator accelerator, int width, int resolution, int batch, int steps)
    {
        if (resolution < 16 || batch < 1 || steps < 1)
        {
            throw new ArgumentException($"--resolution {resolution} --batch {batch} --pgd-steps {steps}: use a resolution >= 16, a batch >= 1 and 1 step or more.");
        }
        Options = new PgdOptions { Epsilon = 0.005f, Steps = steps };
        Batch = batch;
        _model = new ResNet18(accelerator, new ResNetConfig(width, 1, 2), seed: 0);
        _classifier = new ResNetClassifier(_model);
        _objective = new CrossEntropyObjective(_classifier);
        _images = BenchInputs.Images(batch * resolution * resolution);
        _shape = [batch, 1, resolution, resolution];
        _labels = Enumerable.Range(0, batch).Select(i => i % 2).ToArray();
    }

    public PgdOptions Options { get; }

    public int Batch { get; }

    /// <summary>One forward pass: compiles and loads the forward kernels.</summary>
    public void WarmUp() => _classifier.Logits(_images, _shape);

    public AttackResult Run(CancellationToken token) =>
        Pgd.Run(_objective, _images, _shape, AttackGoal.Untargeted(_labels), Options, cancellationToken: token);

    public void Dispose()
    {
        _objective.Dispose();
        _classifier.Dispose();
        _model.Dispose();
    }
}
