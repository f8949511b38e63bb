using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Operators;

namespace IlgpuOct.Nn;

/// <summary>
/// 2-d batch normalisation as PyTorch: training mode normalises with the batch statistics and
/// updates the running ones (momentum 0.1, unbiased variance); evaluation mode uses the running ones.
/// With <see cref="FusedRelu"/> the layer is BN followed by ReLU (its output is max(BN(x), 0)): one
/// operator in training (<see cref="BatchNorm2d.ForwardRelu"/>, <see cref="BatchNorm2d.BackwardRelu"/>) and in
/// evaluation (<see cref="BatchNorm2d.ForwardInferenceRelu"/>, <see cref="BatchNorm2d.BackwardInferenceRelu"/>), so no
/// separate activation buffer exists.
/// </summary>
public sealed class BatchNorm2dLayer : Layer
{
    private readonly Tensor _savedMean; // (C) batch mean of the last training forward
    private readonly Tensor _savedInvStd; // (C) 1/sqrt(batch variance + eps) of the last training forward
    private readonly Tensor _scratchGamma; // (C) dgamma sink when parameter gradients are not wanted
    private readonly Tensor _scratchBeta; // (C) dbeta sink when parameter gradients are not wanted
    private Tensor? _input; // (N, C, H, W), not owned
    private Tensor? _output; // (N, C, H, W), rectified when FusedRelu
    private Tensor? _inputGrad; // (N, C, H, W)
    private bool _lastForwardTraining;

    public BatchNorm2dLayer(Accelerator accelerator, string name, int channels, float eps = 1e-5f, float momentum = 0.1f, bool fusedRelu = false)
        : base(accelerator)
    {
        FusedRelu = fusedRelu;
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(channels);
        Channels = channels;
        Eps = eps;
        Momentum = momentum;
        Name = name;
        Weight = new Parameter(name + ".weight", accelerator, channels);
        Bias = new Parameter(name + ".bias", accelerator, channels);
        RunningMean = new StateBuffer(name + ".running_mean", Tensor.Zeros(accelerator, channels));
        RunningVar = new StateBuffer(name + ".running_var", Tensor.Zeros(accelerator, channels));
        _savedMean = Tensor.Zeros(accelerator, channels);
        _savedInvStd = Tensor.Zeros(accelerator, channels);
        _scratchGamma = Tensor.Zeros(accelerator, channels);
        _scratchBeta = Tensor.Zeros(accelerator, channels);
        ResetParameters();
    }

    public string Name { get; }

    public int Channels { get; }

    public float Eps { get; }

    public float Momentum { get; }

    /// <summary>Whether a ReLU follows the normalisation inside this layer (torchvision's bn1 + relu).</summary>
    public bool FusedRelu { get; }

    public Parameter Weight { get; } // (C) gamma

    public Parameter Bias { get; } // (C) beta

    public StateBuffer RunningMean { get; } // (C)

    public StateBuffer RunningVar { get; } // (C)

    /// <summary>Training forwards so far (torchvision's num_batches_tracked).</summary>
    public long BatchesTracked { get; set; }

    public override IEnumerable<Parameter> Parameters => [Weight, Bias];

    public override IEnumerable<StateBuffer> Buffers => [RunningMean, RunningVar];

    /// <summary>Weight 1, bias 0, running mean 0, running variance 1.</summary>
    public void ResetParameters()
    {
        var ones = new float[Channels];
        Array.Fill(ones, 1f);
        Weight.Value.Upload(ones);
        Bias.Value.Zero();
        RunningMean.Value.Zero();
        RunningVar.Value.Upload(ones);
        BatchesTracked = 0;
    }

    public override Tensor Forward(Tensor x, bool training)
    {
        RequireRank(x, 4, nameof(BatchNorm2dLayer));
        if (x.Dim(1) != Channels)
        {
            throw new ArgumentException($"{Name} expects {Channels} channels; got shape {Tensor.ShapeText(x.Shape)}.", nameof(x));
        }
        var s = Shape(x);
        var y = Tensor.ReuseLargest(ref _output, Accelerator, x.Shape);
        if (training)
        {
            if (s.CountPerChannel < 2)
            {
                throw new ArgumentException($"{Name}: training-mode batch norm needs more than one value per channel; got shape {Tensor.ShapeText(x.Shape)}. Use a batch of 2 or more.", nameof(x));
            }
            if (FusedRelu)
            {
                BatchNorm2d.ForwardRelu(Accelerator, s, x.View, Weight.Value.View, Bias.Value.View, RunningMean.Value.View, RunningVar.Value.View,
                    y.View, _savedMean.View, _savedInvStd.View, Momentum, Eps);
            }
            else
            {
                BatchNorm2d.ForwardTraining(Accelerator, s, x.View, Weight.Value.View, Bias.Value.View, RunningMean.Value.View, RunningVar.Value.View,
                    y.View, _savedMean.View, _savedInvStd.View, Momentum, Eps);
            }
            RunningMean.Value.MarkWritten();
            RunningVar.Value.MarkWritten();
            BatchesTracked++;
        }
        else
        {
            if (FusedRelu)
            {
                BatchNorm2d.ForwardInferenceRelu(Accelerator, s, x.View, Weight.Value.View, Bias.Value.View, RunningMean.Value.View, RunningVar.Value.View, y.View, Eps);
            }
            else
            {
                BatchNorm2d.ForwardInference(Accelerator, s, x.View, Weight.Value.View, Bias.Value.View, RunningMean.Value.View, RunningVar.Value.View, y.View, Eps);
            }
        }
        _input = x;
        _lastForwardTraining = training;
        return y;
    }

    public override Tensor? Backward(Tensor dy, bool weightGradients, bool inputGradient = true)
    {
        var x = RequireForward(_input, Name);
        var s = Shape(x);
        var dx = Tensor.ReuseLargest(ref _inputGrad, Accelerator, x.Shape);
        if (_lastForwardTraining)
        {
            // dgamma and dbeta fall out of the same two reductions dx needs, so they are always computed.
            var dgamma = (weightGradients ? Weight.Grad : _scratchGamma).View;
            var dbeta = (weightGradients ? Bias.Grad : _scratchBeta).View;
            if (FusedRelu)
            {
                BatchNorm2d.BackwardRelu(Accelerator, s, x.View, _output!.View, dy.View, Weight.Value.View, _savedMean.View, _savedInvStd.View, dx.View, dgamma, dbeta);
            }
            else
            {
                BatchNorm2d.BackwardTraining(Accelerator, s, x.View, dy.View, Weight.Value.View, _savedMean.View, _savedInvStd.View, dx.View, dgamma, dbeta);
            }
        }
        else
        {
            if (weightGradients)
            {
                throw new InvalidOperationException($"{Name}: parameter gradients after an evaluation-mode forward are not supported; train with a training-mode forward, or ask for the input gradient only.");
            }
            if (FusedRelu)
            {
                // The output is rectified: y > 0 exactly where the ReLU passed its input.
                BatchNorm2d.BackwardInferenceRelu(Accelerator, s, _output!.View, dy.View, Weight.Value.View, RunningVar.Value.View, dx.View, Eps);
            }
            else
            {
                BatchNorm2d.BackwardInference(Accelerator, s, dy.View, Weight.Value.View, RunningVar.Value.View, dx.View, Eps);
            }
        }
        return inputGradient ? dx : null;
    }

    private static BatchNorm2dShape Shape(Tensor x) => new(x.Dim(0), x.Dim(1), x.Dim(2), x.Dim(3));

    protected override void Dispose(bool disposing)
    {
        Weight.Dispose();
        Bias.Dispose();
        RunningMean.Dispose();
        RunningVar.Dispose();
        _savedMean.Dispose();
        _savedInvStd.Dispose();
        _scratchGamma.Dispose();
        _scratchBeta.Dispose();
        _output?.Dispose();
        _inputGrad?.Dispose();
    }
}
