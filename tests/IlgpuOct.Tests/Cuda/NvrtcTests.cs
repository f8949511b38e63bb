using FluentAssertions;
using IlgpuOct.Kernels.Cuda;
using Xunit;

namespace IlgpuOct.Tests.Cuda;

public sealed class NvrtcTests
{
    internal const string AddOneSource = """
        extern "C" __global__ void add_one(float* x, int x_length, int n)
        {
            int i = blockIdx.x * blockDim.x + threadIdx.x;
            if (i < n && i < x_length) { x[i] = x[i] + 1.0f; }
        }
        """;

    [NvrtcFact]
    public void Compiles_a_hand_written_kernel_to_cubin_for_sm_90()
    {
        var nvrtc = Nvrtc.Get();
        var result = nvrtc.Compile(AddOneSource, "Tests.AddOne", new NvrtcTarget(90, NvrtcOutput.Cubin));
        // A CUBIN is an ELF image.
        result.Image.Take(4).Should().Equal(new byte[] { 0x7f, (byte)'E', (byte)'L', (byte)'F' });
        result.Options.Should().Contain("--gpu-architecture=sm_90");
    }

    [NvrtcFact]
    public void Compiles_a_hand_written_kernel_to_ptx_with_the_entry_point()
    {
        var result = Nvrtc.Get().Compile(AddOneSource, "Tests.AddOne", new NvrtcTarget(90, NvrtcOutput.Ptx));
        result.PtxText.Should().Contain(".target sm_90").And.Contain(".entry add_one");
    }

    [NvrtcFact]
    public void A_broken_kernel_throws_with_the_kernel_name_options_and_nvrtc_log()
    {
        const string broken = """
            extern "C" __global__ void broken(float* x) { x[0] = undeclared_name + 1.0f; }
            """;
        var act = () => Nvrtc.Get().Compile(broken, "Tests.Broken", new NvrtcTarget(90, NvrtcOutput.Cubin));
        var error = act.Should().Throw<NvrtcCompileException>().Which;
        error.KernelName.Should().Be("Tests.Broken");
        error.Log.Should().Contain("undeclared_name");
        error.Message.Should().Contain("Tests.Broken").And.Contain("--gpu-architecture=sm_90").And.Contain("undeclared_name");
    }

    [NvrtcFact]
    public void Reports_its_version_and_the_architectures_it_supports()
    {
        var nvrtc = Nvrtc.Get();
        nvrtc.Version.Major.Should().BeGreaterThanOrEqualTo(11);
        nvrtc.SupportedArchitectures.Should().NotBeEmpty().And.BeInAscendingOrder();
    }

    [NvrtcFact]
    public void Chooses_cubin_for_a_known_architecture_and_ptx_below_an_unknown_one()
    {
        var nvrtc = Nvrtc.Get();
        int highest = nvrtc.SupportedArchitectures[^1];
        nvrtc.ChooseTarget(highest).Should().Be(new NvrtcTarget(highest, nvrtc.CanEmitCubin ? NvrtcOutput.Cubin : NvrtcOutput.Ptx));
        // A GPU newer than this NVRTC gets PTX for the newest architecture NVRTC knows (the driver JITs it forward).
        nvrtc.ChooseTarget(highest + 1).Should().Be(new NvrtcTarget(highest, NvrtcOutput.Ptx));
        var tooOld = () => nvrtc.ChooseTarget(nvrtc.SupportedArchitectures[0] - 1);
        tooOld.Should().Throw<NotSupportedException>().WithMessage("*cannot compile for*");
    }

    [NvrtcFact]
    public void Unused_helpers_do_not_fill_the_log_when_nvrtc_can_silence_them()
    {
        const string source = """
            static __device__ int unused_helper() { return 1; }
            extern "C" __global__ void only_kernel(float* x) { x[0] = 1.0f; }
            """;
        var nvrtc = Nvrtc.Get();
        var target = new NvrtcTarget(90, NvrtcOutput.Ptx);
        var result = nvrtc.Compile(source, "Tests.Unused", target);
        if (nvrtc.OptionsFor(target).Contains("--diag-suppress=177"))
        {
            result.Log.Should().NotContain("unused_helper");
        }
        else
        {
            result.Log.Should().Contain("unused_helper", "this NVRTC cannot silence warning 177, so it reports it");
        }
    }

    [Fact]
    public void Candidate_list_covers_the_versioned_sonames_and_the_cuda_folders()
    {
        var candidates = Nvrtc.Candidates();
        candidates.Should().Contain(["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2", "libnvrtc.so"]);
        candidates.Should().Contain("/usr/local/cuda/lib64/libnvrtc.so.12");
        candidates.Should().Contain("/usr/lib/x86_64-linux-gnu/libnvrtc.so.11.2");
    }
}
