using System.Security.Cryptography;
using FluentAssertions;
using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Cuda;
using Xunit;

namespace IlgpuOct.Tests.Cuda;

public sealed class KernelCacheTests : IDisposable
{
    private static readonly KernelDefinition AddOne = new(
        "Tests.AddOne", "add_one", NvrtcTests.AddOneSource, "", "float* x, int x_length, int n", false, false, 0, "test-1");

    private readonly string _folder = Path.Combine(Path.GetTempPath(), "ilgpuoct-cache-test-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_folder))
        {
            Directory.Delete(_folder, recursive: true);
        }
    }

    [NvrtcFact]
    public void Miss_stores_a_hashed_entry_and_the_next_lookup_hits_it()
    {
        var nvrtc = Nvrtc.Get();
        var cache = new KernelCache(_folder);
        var target = new NvrtcTarget(90, NvrtcOutput.Cubin);

        var first = cache.GetOrCompile(AddOne, nvrtc, target, 12040, 90, out var firstOutcome);
        var second = cache.GetOrCompile(AddOne, nvrtc, target, 12040, 90, out var secondOutcome);

        firstOutcome.Should().Be(KernelCacheOutcome.Miss);
        secondOutcome.Should().Be(KernelCacheOutcome.Hit);
        second.Should().Equal(first);
        var files = Directory.GetFiles(_folder);
        files.Should().ContainSingle().Which.Should().EndWith(".cubin");
        var content = File.ReadAllBytes(files[0]);
        content.AsSpan(0, 32).ToArray().Should().Equal(SHA256.HashData(first));
        content.AsSpan(32).ToArray().Should().Equal(first);
    }

    [NvrtcFact]
    public void A_corrupt_entry_is_compiled_again_and_overwritten()
    {
        var nvrtc = Nvrtc.Get();
        var cache = new KernelCache(_folder);
        var target = new NvrtcTarget(90, NvrtcOutput.Ptx);
        var good = cache.GetOrCompile(AddOne, nvrtc, target, 12040, 90, out _);
        string path = Directory.GetFiles(_folder).Should().ContainSingle().Which;
        var bytes = File.ReadAllBytes(path);
        bytes[^5] ^= 0x5a;
        File.WriteAllBytes(path, bytes);

        var repaired = cache.GetOrCompile(AddOne, nvrtc, target, 12040, 90, out var outcome);

        outcome.Should().Be(KernelCacheOutcome.Repaired);
        repaired.Should().Equal(good);
        KernelCache.TryRead(path, out var onDisk).Should().BeTrue();
        onDisk.Should().Equal(good);
    }

    [NvrtcFact]
    public void A_truncated_entry_is_compiled_again()
    {
        var nvrtc = Nvrtc.Get();
        var cache = new KernelCache(_folder);
        var target = new NvrtcTarget(90, NvrtcOutput.Cubin);
        cache.GetOrCompile(AddOne, nvrtc, target, 12040, 90, out _);
        string path = Directory.GetFiles(_folder).Single();
        File.WriteAllBytes(path, File.ReadAllBytes(path).AsSpan(0, 20).ToArray());

        cache.GetOrCompile(AddOne, nvrtc, target, 12040, 90, out var outcome);

        outcome.Should().Be(KernelCacheOutcome.Repaired);
        KernelCache.TryRead(path, out _).Should().BeTrue();
    }

    [NvrtcFact]
    public void A_disabled_cache_compiles_and_writes_nothing()
    {
        var cache = new KernelCache(_folder, enabled: false);
        var image = cache.GetOrCompile(AddOne, Nvrtc.Get(), new NvrtcTarget(90, NvrtcOutput.Cubin), 12040, 90, out var outcome);
        outcome.Should().Be(KernelCacheOutcome.Bypassed);
        image.Should().NotBeEmpty();
        Directory.Exists(_folder).Should().BeFalse();
    }

    [Fact]
    public void Key_changes_with_every_input_that_changes_the_image()
    {
        string[] options = ["--gpu-architecture=sm_90"];
        var version = new Version(12, 4);
        string baseline = KernelCache.Key(AddOne, options, version, 12040, 90);
        var otherSource = new KernelDefinition(AddOne.Name, AddOne.EntryPoint, AddOne.CudaSource + "\n", "", AddOne.Parameters, false, false, 0, "test-1");
        var otherGenerator = new KernelDefinition(AddOne.Name, AddOne.EntryPoint, AddOne.CudaSource, "", AddOne.Parameters, false, false, 0, "test-2");

        string[] variants =
        [
            KernelCache.Key(otherSource, options, version, 12040, 90),
            KernelCache.Key(AddOne, ["--gpu-architecture=sm_80"], version, 12040, 90),
            KernelCache.Key(AddOne, options, new Version(12, 5), 12040, 90),
            KernelCache.Key(AddOne, options, version, 12050, 90),
            KernelCache.Key(AddOne, options, version, 12040, 89),
            KernelCache.Key(otherGenerator, options, version, 12040, 90),
        ];

        KernelCache.Key(AddOne, options, version, 12040, 90).Should().Be(baseline);
        baseline.Should().MatchRegex("^[0-9a-f]{64}$");
        variants.Should().OnlyHaveUniqueItems().And.NotContain(baseline);
    }

    [Fact]
    public void Default_folder_follows_ILGPUOCT_CACHE()
    {
        string? saved = Environment.GetEnvironmentVariable("ILGPUOCT_CACHE");
        try
        {
            Environment.SetEnvironmentVariable("ILGPUOCT_CACHE", _folder);
            KernelCache.DefaultDirectory().Should().Be(_folder);
            Environment.SetEnvironmentVariable("ILGPUOCT_CACHE", null);
            KernelCache.DefaultDirectory().Should().EndWith(Path.Combine("ilgpuoct", "kernels"));
        }
        finally
        {
            Environment.SetEnvironmentVariable("ILGPUOCT_CACHE", saved);
        }
    }
}
