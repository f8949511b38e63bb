using FluentAssertions;
using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Cuda;
using IlgpuOct.Kernels.Operators;
using IlgpuOct.Kernels.Profiling;
using Xunit;

namespace IlgpuOct.Tests.Cuda;

/// <summary>Profile mode on cuda: each launch between two CUDA events (run on a GPU, or on the mock driver through run-mock.sh).</summary>
public sealed class CudaProfileTests
{
    [CudaFact]
    public void Every_launch_in_profile_mode_is_timed_by_events_and_costed_by_its_operator()
    {
        using var accelerator = (CudaAccelerator)DeviceSelection.Open("cuda", out _);
        var host = Enumerable.Range(0, 4096).Select(i => (float)i).ToArray();
        using var x = accelerator.Upload<float>(host);
        using var y = accelerator.Upload<float>(host);
        Elementwise.Axpy(accelerator, 2f, x.View, y.View); // compiles and loads outside the profile
        var profiler = new Profiler();
        accelerator.Profiler = profiler;
        for (int i = 0; i < 3; i++)
        {
            Elementwise.Axpy(accelerator, 2f, x.View, y.View);
        }
        Elementwise.Scale(accelerator, 0.5f, x.View, y.View);
        accelerator.Profiler = null;
        profiler.Launches.Should().BeEmpty("event times are read when the report resolves them");

        var roofline = accelerator.Roofline(out string reason);
        roofline.Should().NotBeNull(reason);
        var report = ProfileReport.Build("axpy", accelerator.Name, 1, 1.0, profiler, roofline);
        profiler.Launches.Should().HaveCount(4).And.OnlyContain(l => l.Milliseconds >= 0);
        report.Granularity.Should().Be("kernel");
        var axpy = report.Rows.Single(r => r.Name == KernelRegistry.Find("Elementwise.Axpy")!.Name);
        axpy.Count.Should().Be(3);
        axpy.Operators.Should().Be("Elementwise.Axpy");
        axpy.FlopsPerLaunch.Should().Be(2.0 * host.Length);
        axpy.BytesPerLaunch.Should().Be(12.0 * host.Length);
        report.Rows.Single(r => r.Name == KernelRegistry.Find("Elementwise.Scale")!.Name).Count.Should().Be(1);
        accelerator.Download(y.View)[10].Should().Be(5f);
    }

    [CudaFact]
    public void The_roofline_comes_from_the_device_attributes_and_the_architecture_table()
    {
        using var accelerator = (CudaAccelerator)DeviceSelection.Open("cuda", out _);
        var roofline = accelerator.Roofline(out string reason);
        if (GpuArchitecture.Find(accelerator.Device.ComputeCapability) is not { } arch)
        {
            roofline.Should().BeNull();
            reason.Should().Contain($"sm_{accelerator.Device.ComputeCapability}");
            return;
        }
        roofline.Should().NotBeNull(reason);
        // On an SM at 1-2.5 GHz the FP32 peak lies between these bounds.
        double lanes = accelerator.Device.MultiprocessorCount * arch.Fp32LanesPerSm * 2.0;
        roofline!.PeakGflops.Should().BeInRange(lanes * 0.5, lanes * 3.0);
        roofline.Source.Should().Contain($"{accelerator.Device.MultiprocessorCount} SMs");
    }
}
