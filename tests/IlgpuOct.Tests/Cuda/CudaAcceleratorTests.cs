using FluentAssertions;
using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Cuda;
using Xunit;

namespace IlgpuOct.Tests.Cuda;

/// <summary>Launch plumbing that can be checked without a GPU, and (where one exists) a real launch.</summary>
public sealed class CudaAcceleratorTests
{
    private static readonly KernelDefinition AddOne = new(
        "Tests.AddOne", "add_one", NvrtcTests.AddOneSource, "", "float* x, int x_length, int n", false, false, 0, "test-1");

    [Fact]
    public void Argument_count_must_match_the_cuda_parameter_list()
    {
        CudaAccelerator.CheckArgumentCount(AddOne, 3);
        var tooFew = () => CudaAccelerator.CheckArgumentCount(AddOne, 2);
        tooFew.Should().Throw<ArgumentException>().WithMessage("*takes 3 CUDA parameters (float* x, int x_length, int n) but was given 2*");
        var none = new KernelDefinition("Tests.None", "none", "", "", "", false, false, 0, "test-1");
        CudaAccelerator.CheckArgumentCount(none, 0);
        var extra = () => CudaAccelerator.CheckArgumentCount(none, 1);
        extra.Should().Throw<ArgumentException>().WithMessage("*takes no parameters*");
    }

    [Fact]
    public void Int_arguments_sit_in_the_low_four_bytes_of_their_slot()
    {
        // cuLaunchKernel reads an int parameter as the first 4 bytes behind its pointer.
        ulong slot = KernelArgs.Pack(-2);
        BitConverter.GetBytes(slot).Take(4).Should().Equal(BitConverter.GetBytes(-2));
        KernelArgs.Pack(1.5f).Should().Be(BitConverter.SingleToUInt32Bits(1.5f));
    }

    [CudaFact]
    public void Launch_copy_clear_and_timer_work_on_the_gpu()
    {
        using var accelerator = (CudaAccelerator)DeviceSelection.Open("cuda", out _);
        var host = Enumerable.Range(0, 1000).Select(i => (float)i).ToArray();
        using var buffer = accelerator.Upload<float>(host);
        using var timer = accelerator.CreateTimer();
        timer.Start();
        accelerator.LaunchCompiled(AddOne, LaunchConfig.For1D(host.Length, 128),
            [buffer.View.DevicePointer, KernelArgs.Pack(buffer.Length), KernelArgs.Pack(host.Length - 1)]);
        timer.Stop();
        var result = accelerator.Download(buffer.View);
        var expected = host.Select((v, i) => i < host.Length - 1 ? v + 1 : v).ToArray();
        result.Should().Equal(expected);
        timer.ElapsedMilliseconds.Should().BeGreaterThanOrEqualTo(0);

        using var copy = accelerator.Allocate<float>(host.Length);
        accelerator.Copy(buffer.View, copy.View);
        accelerator.Download(copy.View).Should().Equal(expected);
        accelerator.Clear(copy.View.Slice(10, 20));
        var cleared = accelerator.Download(copy.View);
        cleared.Skip(10).Take(20).Should().OnlyContain(v => v == 0f);
        cleared[9].Should().Be(expected[9]);
        cleared[30].Should().Be(expected[30]);
        accelerator.GetMemoryInfo().TotalBytes.Should().BeGreaterThan(0);
    }

    [CudaFact]
    public void Dynamic_shared_memory_above_48_KB_is_opted_in_and_beyond_the_device_limit_refused()
    {
        using var accelerator = (CudaAccelerator)DeviceSelection.Open("cuda", out _);
        var host = new float[64];
        using var buffer = accelerator.Upload<float>(host);
        ulong[] slots = [buffer.View.DevicePointer, KernelArgs.Pack(buffer.Length), KernelArgs.Pack(host.Length)];
        int optIn = accelerator.Device.MaxSharedMemoryPerBlockOptin;
        if (optIn > 64 * 1024)
        {
            accelerator.LaunchCompiled(AddOne, LaunchConfig.For1D(host.Length, 64, 64 * 1024), slots);
            accelerator.Download(buffer.View).Should().OnlyContain(v => v == 1f);
        }
        var tooMuch = () => accelerator.LaunchCompiled(AddOne, LaunchConfig.For1D(host.Length, 64, optIn + 1024), slots);
        tooMuch.Should().Throw<ArgumentOutOfRangeException>().WithMessage("*Tests.AddOne*dynamic shared memory*");
    }
}
