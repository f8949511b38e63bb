namespace IlgpuOct.Kernels;

/// <summary>The implementations an operator can have.</summary>
public enum OperatorEngine
{
    /// <summary>The operator's CPU implementation (SIMD, multithreaded; float64 for the mixtures): the <c>cpu</c> engine and the kernels' reference.</summary>
    Cpu,

    /// <summary>The operator's [Kernel] bodies, launched on the accelerator (C# bodies on cpu-kernels, generated CUDA C elsewhere).</summary>
    Kernels,
}

/// <summary>
/// Sees every operator call that goes through <see cref="OperatorDispatch.Run"/> on the accelerator it
/// is attached to (<see cref="Accelerator.OperatorObserver"/>), for example to time it. The observer
/// must call <paramref name="call"/> exactly once.
/// </summary>
public interface IOperatorObserver
{
    void Observe(Accelerator accelerator, string operatorName, OperatorEngine engine, Action call);
}

/// <summary>
/// The one place that maps an accelerator to the engine operators run on. Every operator's public
/// entry point declares its engines once by calling <see cref="Run"/> with its CPU implementation
/// and its kernel path; a new accelerator kind is added to <see cref="EngineFor"/> and nowhere else.
/// </summary>
public static class OperatorDispatch
{
    /// <summary>
    /// <c>cpu</c> runs the CPU implementations; every other accelerator (cpu-kernels, cuda, and any
    /// accelerator that executes kernels, such as one running the generated CUDA C on the host) runs the kernels.
    /// </summary>
    public static OperatorEngine EngineFor(Accelerator accelerator)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        return accelerator.Kind == AcceleratorKind.Cpu ? OperatorEngine.Cpu : OperatorEngine.Kernels;
    }

    /// <summary>
    /// Runs operator <paramref name="operatorName"/> (e.g. "Conv2d.Forward") on the engine of
    /// <paramref name="accelerator"/>, through the accelerator's observer when one is attached, and,
    /// in profile mode (<see cref="Accelerator.Profiler"/>), as one operator call with its
    /// <paramref name="cost"/> (the operator's cost model: FLOPs and bytes of its own work).
    /// </summary>
    public static void Run(Accelerator accelerator, string operatorName, Profiling.OperatorCost? cost, Action cpu, Action kernels)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        var engine = EngineFor(accelerator);
        var call = engine == OperatorEngine.Cpu ? cpu : kernels;
        using var profiled = Profiling.OperatorScope.Enter(accelerator, operatorName, cost);
        var observer = accelerator.OperatorObserver;
        if (observer is null)
        {
            call();
            return;
        }
        observer.Observe(accelerator, operatorName, engine, call);
    }

    /// <summary>
    /// Runs an operator that only the cpu engine has (a layout the kernels never use, such as the bordered NHWC
    /// of the inference path) as <see cref="Run(Accelerator, string, Profiling.OperatorCost?, Action, Action)"/> does;
    /// on any other engine it throws, since no kernel exists for it.
    /// </summary>
    public static void RunCpu(Accelerator accelerator, string operatorName, Profiling.OperatorCost? cost, Action cpu)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        if (EngineFor(accelerator) != OperatorEngine.Cpu)
        {
            throw new NotSupportedException($"{operatorName} is an operator of the cpu engine only (no kernel exists for it); on {accelerator.Id} run the NCHW operators instead.");
        }
        Run(accelerator, operatorName, cost, cpu, cpu);
    }

    /// <summary>As <see cref="Run(Accelerator, string, Profiling.OperatorCost?, Action, Action)"/> for an operator without a cost model.</summary>
    public static void Run(Accelerator accelerator, string operatorName, Action cpu, Action kernels) => Run(accelerator, operatorName, null, cpu, kernels);

    /// <summary>As <see cref="Run"/> for an operator that returns a value (the engine's result).</summary>
    public static T Run<T>(Accelerator accelerator, string operatorName, Func<T> cpu, Func<T> kernels)
    {
        T result = default!;
        Run(accelerator, operatorName, () => result = cpu(), () => result = kernels());
        return result;
    }
}
