using FluentAssertions;
using IlgpuOct.Cli;
using IlgpuOct.Kernels.Cuda;
using Xunit;

namespace IlgpuOct.Tests.Cuda;

public sealed class AllKernelsCompileTests
{
    [NvrtcFact]
    public void Every_registered_kernel_compiles_for_sm_90()
    {
        var kernels = KernelAssemblies.LoadKernels();
        kernels.Should().NotBeEmpty("the source generator registers every [Kernel] method");
        var nvrtc = Nvrtc.Get();
        var target = nvrtc.ChooseTarget(90);
        var failures = new System.Collections.Concurrent.ConcurrentBag<string>();
        Parallel.ForEach(kernels, kernel =>
        {
            try
            {
                nvrtc.Compile(kernel.CudaSource, kernel.Name, target).Image.Should().NotBeEmpty();
            }
            catch (NvrtcCompileException e)
            {
                failures.Add(e.Message);
            }
        });
        failures.Should().BeEmpty();
    }

    [Theory]
    [InlineData("sm_90", 90)]
    [InlineData("compute_80", 80)]
    [InlineData("89", 89)]
    public void Arch_option_accepts_the_usual_spellings(string text, int expected) =>
        IlgpuOct.Cli.Commands.KernelsCommand.ParseArch(text).Should().Be(expected);

    [Fact]
    public void Arch_option_rejects_nonsense_with_an_example()
    {
        var act = () => IlgpuOct.Cli.Commands.KernelsCommand.ParseArch("hopper");
        act.Should().Throw<ArgumentException>().WithMessage("*sm_90*");
    }
}
