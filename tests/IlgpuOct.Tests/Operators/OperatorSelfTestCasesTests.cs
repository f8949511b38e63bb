using System.Diagnostics;
using FluentAssertions;
using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Operators;
using Xunit;
using Xunit.Abstractions;

namespace IlgpuOct.Tests.Operators;

/// <summary>
/// The [SelfTests] cases of the ResNet-18 operators (what <c>ilgpuoct selftest --device cuda</c> runs)
/// pass on the cpu-kernels accelerator, so a GPU failure points at the device, not at the case.
/// </summary>
public sealed class OperatorSelfTestCasesTests
{
    private static readonly string[] Operators =
        ["Conv2d.", "BatchNorm2d.", "MaxPool2d.", "GlobalAvgPool.", "Linear.", "CrossEntropy.", "GuidedComplementEntropy.", "Sgd.", "BatchMetrics."];

    private readonly ITestOutputHelper _output;

    public OperatorSelfTestCasesTests(ITestOutputHelper output) => _output = output;

    [Fact]
    public void Every_operator_case_passes_on_cpu_kernels()
    {
        var cases = SelfTestCatalog.Discover(typeof(Conv2d).Assembly)
            .Where(c => Operators.Any(prefix => c.Kernel.StartsWith(prefix, StringComparison.Ordinal)))
            .ToArray();
        foreach (string prefix in Operators)
        {
            cases.Should().Contain(c => c.Kernel.StartsWith(prefix, StringComparison.Ordinal), $"{prefix} contributes self-tests");
        }
        using var acc = new HostAccelerator(AcceleratorKind.CpuKernels);
        foreach (var c in cases)
        {
            var watch = Stopwatch.StartNew();
            var result = c.Run(acc, 2024);
            _output.WriteLine($"{c.Kernel} {c.Shape}: max |kernel - cpu| {result.MaxAbsError:G3} (tolerance {result.Tolerance:G3}), {watch.ElapsedMilliseconds} ms");
            result.Passed.Should().BeTrue($"{c.Kernel} {c.Shape} differs by {result.MaxAbsError} (tolerance {result.Tolerance})");
        }
    }
}
