using IlgpuOct.Kernels;
using IlgpuOct.Nn;
using IlgpuOct.Nn.Training;

namespace IlgpuOct.Cli.Commands;

/// <summary>One ResNet-18 training step (forward, cross-entropy, backward, SGD, loss read-back) on seeded random images: what <c>bench train</c> times and <c>profile train</c> profiles.</summary>
internal sealed class TrainStepWorkload : IDisposable
{
    private readonly Accelerator _accelerator;
    private readonly ResNet18 _model;
    private readonly Tensor _images; // (N, C, H, W)
    private readonly DeviceBuffer<int> _labels; // (N)
    private readonly StepBuffers _buffers;
    private readonly NaturalTraining _mode = new();
    private readonly SgdOptimizer _sgd = new();

    public TrainStepWorkload(Accelerator accelerator, ResNetConfig config, int resolution, int batch)
    {
        if (resolution < 16 || batch < 2)
        {
            throw new ArgumentException($"--resolution {resolution} --batch {batch}: use a resolution >= 16 and a batch >= 2.");
        }
        _accelerator = accelerator;
        _model = new ResNet18(accelerator, config, seed: 0);
        var pixels = BenchInputs.Images(batch * config.InChannels * resolution * resolution);
        _images = Tensor.FromHost(accelerator, pixels, batch, config.InChannels, resolution, resolution);
        _labels = accelerator.Upload<int>(Enumerable.Range(0, batch).Select(i => i % config.NumClasses).ToArray());
        _buffers = new StepBuffers(accelerator);
    }

    public void Step(int index)
    {
        var batch = new TrainingBatch(_model, _images, _labels.View, 0, index, 0);
        _mode.ComputeGradients(batch, _buffers);
        _sgd.Step(_model.Parameters, 0.01f);
        _accelerator.Download(_buffers.Loss.View); // the loss read-back is part of a real step
    }

    public void Dispose()
    {
        _buffers.Dispose();
        _labels.Dispose();
        _images.Dispose();
        _model.Dispose();
    }
}
