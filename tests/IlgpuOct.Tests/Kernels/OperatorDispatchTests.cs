using FluentAssertions;
using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Operators;
using Xunit;

namespace IlgpuOct.Tests.Kernels;

/// <summary>The one dispatch point: which engine each accelerator gets, and the observer seeing every operator call.</summary>
public sealed class OperatorDispatchTests
{
    private sealed class RecordingObserver : IOperatorObserver
    {
        public List<(string Name, OperatorEngine Engine)> Calls { get; } = [];

        public void Observe(Accelerator accelerator, string operatorName, OperatorEngine engine, Action call)
        {
            Calls.Add((operatorName, engine));
            call();
        }
    }

    [Theory]
    [InlineData(AcceleratorKind.Cpu, OperatorEngine.Cpu)]
    [InlineData(AcceleratorKind.CpuKernels, OperatorEngine.Kernels)]
    public void Engine_follows_the_accelerator_kind(AcceleratorKind kind, OperatorEngine expected)
    {
        using var acc = new HostAccelerator(kind);
        OperatorDispatch.EngineFor(acc).Should().Be(expected);
    }

    [Theory]
    [InlineData(AcceleratorKind.Cpu, OperatorEngine.Cpu)]
    [InlineData(AcceleratorKind.CpuKernels, OperatorEngine.Kernels)]
    public void Observer_sees_each_operator_call_by_name_and_the_call_still_runs(AcceleratorKind kind, OperatorEngine engine)
    {
        using var acc = new HostAccelerator(kind);
        var observer = new RecordingObserver();
        acc.OperatorObserver = observer;
        var s = new GlobalAvgPoolShape(2, 3, 2, 2);
        float[] x = [.. Enumerable.Range(0, s.InputLength).Select(i => (float)i)];
        var y = new float[s.OutputLength];
        GlobalAvgPool.Forward(acc, s, new View<float>(x), new View<float>(y));
        Elementwise.Scale(acc, 2f, new View<float>(y), new View<float>(y));

        observer.Calls.Should().Equal(("GlobalAvgPool.Forward", engine), ("Elementwise.Scale", engine));
        y.Should().Equal(Enumerable.Range(0, s.OutputLength).Select(p => 2f * (4 * p + 1.5f)));
    }

    [Fact]
    public void Without_an_observer_the_operator_runs_directly()
    {
        using var acc = new HostAccelerator(AcceleratorKind.Cpu);
        float[] x = [1, -2, 3];
        var y = new float[3];
        OperatorDispatch.Run(acc, "Test.Relu", () => Elementwise.ReluForwardCpu(x, y), () => throw new InvalidOperationException("the cpu accelerator must not run kernels"));
        y.Should().Equal(1f, 0f, 3f);
    }
}
