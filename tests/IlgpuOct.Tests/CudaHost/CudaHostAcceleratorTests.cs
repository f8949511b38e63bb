using System.Diagnostics;
using FluentAssertions;
using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Cuda;
using IlgpuOct.Kernels.CudaHost;
using IlgpuOct.Kernels.Operators;
using Xunit;
using Xunit.Abstractions;

namespace IlgpuOct.Tests.CudaHost;

/// <summary>
/// cuda-host: the generated CUDA C compiled by the host C++ compiler and launched through the cuda
/// accelerator's argument slots. The operators' self-test cases, launch checks, exact barrier and
/// shuffle semantics, the sanitizer build and the disk cache.
/// </summary>
public sealed class CudaHostAcceleratorTests
{
    private readonly ITestOutputHelper _output;

    public CudaHostAcceleratorTests(ITestOutputHelper output) => _output = output;

    [Fact]
    public void Every_self_test_case_passes_on_cuda_host()
    {
        var cases = SelfTestCatalog.Discover(typeof(Conv2d).Assembly);
        cases.Should().NotBeEmpty();
        using var acc = CudaHostAccelerator.Open();
        foreach (var c in cases)
        {
            var watch = Stopwatch.StartNew();
            var result = c.Run(acc, 2024);
            _output.WriteLine($"{c.Kernel} {c.Shape}: max |kernel - cpu| {result.MaxAbsError:G3} (tolerance {result.Tolerance:G3}), {watch.ElapsedMilliseconds} ms");
            result.Passed.Should().BeTrue($"{c.Kernel} {c.Shape} differs by {result.MaxAbsError} (tolerance {result.Tolerance}) on cuda-host");
        }
    }

    [Fact]
    public void A_host_array_given_to_a_compiled_launch_is_refused_naming_kernel_and_parameter()
    {
        using var acc = CudaHostAccelerator.Open();
        using var y = acc.Allocate<float>(4);
        var act = () => Elementwise.Scale(acc, 2f, new View<float>(new float[4]), y.View);
        act.Should().Throw<ArgumentException>().Which.Message.Should().Contain("Elementwise.").And.Contain("'x'").And.Contain("Upload");
    }

    [Fact]
    public void A_device_view_given_to_cpu_kernels_is_refused_naming_kernel_and_parameter()
    {
        using var host = CudaHostAccelerator.Open();
        using var x = host.Upload<float>([1f, 2f]);
        using var cpuKernels = new HostAccelerator(AcceleratorKind.CpuKernels);
        var act = () => Elementwise.Scale(cpuKernels, 2f, x.View, new View<float>(new float[2]));
        act.Should().Throw<ArgumentException>().Which.Message.Should().Contain("Elementwise.").And.Contain("'x'").And.Contain("device memory");
    }

    [Fact]
    public void Another_accelerators_buffer_is_refused()
    {
        using var a = CudaHostAccelerator.Open();
        using var b = CudaHostAccelerator.Open();
        using var x = a.Upload<float>([1f, 2f]);
        using var y = b.Allocate<float>(2);
        var act = () => Elementwise.Scale(b, 2f, x.View, y.View);
        act.Should().Throw<ArgumentException>().Which.Message.Should().Contain("not memory of this cuda-host accelerator");
    }

    [Fact]
    public void Compiled_kernels_are_cached_on_disk_and_reused()
    {
        string folder = Directory.CreateTempSubdirectory("ilgpuoct-cudahost-cache-").FullName;
        try
        {
            KernelRegistry.EnsureLoaded(typeof(Elementwise).Assembly);
            var kernel = KernelRegistry.All.First(k => k.Name == "Elementwise.Scale");
            var cache = new KernelCache(folder);
            using (var first = CudaHostAccelerator.Open(sanitize: false, cache: cache))
            {
                first.Preload(kernel);
            }
            var entries = Directory.GetFiles(folder, "*.host.so");
            entries.Should().ContainSingle("one library per kernel and build");
            string key = Path.GetFileName(entries[0])[..^".host.so".Length];
            key.Should().Be(HostCompiler.TryGet(out _)!.Key(kernel, sanitize: false));
            KernelCache.TryRead(entries[0], out var image).Should().BeTrue("entries carry the SHA-256 of their content");
            image.AsSpan(0, 4).ToArray().Should().Equal(new byte[] { 0x7f, (byte)'E', (byte)'L', (byte)'F' });
            // The sanitizer build is another key: the flags are part of it.
            HostCompiler.TryGet(out _)!.Key(kernel, sanitize: true).Should().NotBe(key);
            var before = File.GetLastWriteTimeUtc(entries[0]);
            using (var second = CudaHostAccelerator.Open(sanitize: false, cache: cache))
            {
                second.Preload(kernel);
            }
            File.GetLastWriteTimeUtc(entries[0]).Should().Be(before, "a valid entry is read, not rebuilt");
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}
