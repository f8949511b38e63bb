using System.Runtime.InteropServices;
using FluentAssertions;
using IlgpuOct.Kernels;
using Xunit;

namespace IlgpuOct.Tests.Cuda;

public sealed class CudaProbeTests
{
    private static bool DriverInstalled => NativeLibrary.TryLoad("libcuda.so.1", out _);

    [Fact]
    public void Probe_opens_cuda_or_says_why_not()
    {
        bool opened = CudaProbe.TryOpen(out var accelerator, out string reason);
        using (accelerator)
        {
            if (!DriverInstalled)
            {
                opened.Should().BeFalse();
                reason.Should().Contain("libcuda.so.1 not found").And.Contain("install the NVIDIA driver");
            }
            else if (opened)
            {
                accelerator!.Kind.Should().Be(AcceleratorKind.Cuda);
                accelerator.Name.Should().MatchRegex(@"\(sm_\d+\)$");
            }
            else
            {
                reason.Should().NotBeNullOrWhiteSpace();
            }
        }
    }

    [Fact]
    public void Describe_never_throws_and_names_the_missing_driver()
    {
        var environment = CudaProbe.Describe();
        if (!DriverInstalled)
        {
            environment.DriverLoaded.Should().BeFalse();
            environment.Devices.Should().BeEmpty();
            environment.DriverProblem.Should().Contain("libcuda.so.1");
            environment.DriverVersionText.Should().Be("none");
        }
        else
        {
            environment.DriverLoaded.Should().BeTrue();
            (environment.Devices.Count > 0 || environment.DriverProblem is not null).Should().BeTrue("a driver either lists devices or says why not");
        }
    }

    [Fact]
    public void Auto_falls_back_to_cpu_with_the_reason_when_cuda_is_unusable()
    {
        if (CudaAvailability.Available(out _))
        {
            using var cuda = DeviceSelection.Open("auto", out string chosen);
            cuda.Kind.Should().Be(AcceleratorKind.Cuda);
            chosen.Should().Contain("cuda");
            return;
        }
        using var accelerator = DeviceSelection.Open("auto", out string notice);
        accelerator.Kind.Should().Be(AcceleratorKind.Cpu);
        notice.Should().StartWith("device: cpu, chosen by auto because");
        if (!DriverInstalled)
        {
            notice.Should().Contain("libcuda.so.1 not found");
        }
    }

    [Fact]
    public void Asking_for_cuda_without_it_throws_with_advice()
    {
        if (CudaAvailability.Available(out _))
        {
            using var cuda = DeviceSelection.Open("cuda", out _);
            cuda.Kind.Should().Be(AcceleratorKind.Cuda);
            return;
        }
        var act = () => DeviceSelection.Open("cuda", out _);
        var error = act.Should().Throw<AcceleratorUnavailableException>().Which;
        error.Message.Should().Contain("--device cpu").And.Contain("install the NVIDIA driver");
        if (!DriverInstalled)
        {
            error.Message.Should().Contain("libcuda.so.1 not found");
        }
    }
}
