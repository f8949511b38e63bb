using Microsoft.ML.OnnxRuntime;

namespace IlgpuOct.Cli;

/// <summary>
/// ONNX Runtime (CPU) running a model from memory with one float input and one float output,
/// sequential execution and a fixed number of intra-op threads: the peer that `bench infer` times
/// and the tests compare against.
/// </summary>
internal sealed class OnnxRuntimeSession : IDisposable
{
    private readonly InferenceSession _session;
    private readonly SessionOptions _options;
    private readonly string _input;
    private readonly string _output;

    public OnnxRuntimeSession(byte[] model, int intraOpThreads, string? output = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(intraOpThreads);
        _options = new SessionOptions
        {
            IntraOpNumThreads = intraOpThreads,
            InterOpNumThreads = 1,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
        };
        try
        {
            _session = new InferenceSession(model, _options);
        }
        catch
        {
            _options.Dispose();
            throw;
        }
        _input = _session.InputNames[0];
        _output = output ?? _session.OutputNames[0];
    }

    /// <summary>Runs the model on <paramref name="input"/> of <paramref name="shape"/> and returns the output's values.</summary>
    public float[] Run(float[] input, long[] shape)
    {
        using var value = OrtValue.CreateTensorValueFromMemory(input, shape);
        using var runOptions = new RunOptions();
        using var results = _session.Run(runOptions, [_input], [value], [_output]);
        return results[0].GetTensorDataAsSpan<float>().ToArray();
    }

    public void Dispose()
    {
        _session.Dispose();
        _options.Dispose();
    }
}
