using FluentAssertions;
using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Operators;
using Xunit;

namespace IlgpuOct.Tests.Kernels;

/// <summary>The autotuner's selection and cache with a fake timer (no GPU: the timer is a table).</summary>
public sealed class AutotunerTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("ilgpuoct-autotune-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private string CacheFile => Path.Combine(_folder, "tuning", "autotune-gemm.json");

    /// <summary>A fake timer: the given milliseconds per candidate, recording every call.</summary>
    private static Func<string, double> Timer(Dictionary<string, double> times, List<string> calls) => name =>
    {
        calls.Add(name);
        return times[name];
    };

    [Fact]
    public void The_fastest_candidate_wins_and_each_is_timed_once()
    {
        var tuner = new Autotuner(CacheFile);
        var calls = new List<string>();
        var times = new Dictionary<string, double> { ["Gemm2Tiled64"] = 3.0, ["Gemm3Tiled128"] = 1.5, ["Gemm4WarpTiled"] = 2.0 };
        tuner.Choose("H100 (sm_90)", "p1", ["Gemm2Tiled64", "Gemm3Tiled128", "Gemm4WarpTiled"], Timer(times, calls)).Should().Be("Gemm3Tiled128");
        calls.Should().Equal("Gemm2Tiled64", "Gemm3Tiled128", "Gemm4WarpTiled");
    }

    [Fact]
    public void A_tie_keeps_the_earlier_candidate()
    {
        var tuner = new Autotuner(CacheFile);
        var times = new Dictionary<string, double> { ["a"] = 1.0, ["b"] = 1.0 };
        tuner.Choose("dev", "p", ["a", "b"], Timer(times, [])).Should().Be("a");
    }

    [Fact]
    public void A_cached_winner_is_not_timed_again_in_this_process_or_the_next()
    {
        var times = new Dictionary<string, double> { ["a"] = 2.0, ["b"] = 1.0 };
        var first = new List<string>();
        new Autotuner(CacheFile).Choose("dev", "p", ["a", "b"], Timer(times, first)).Should().Be("b");
        first.Should().HaveCount(2);
        File.Exists(CacheFile).Should().BeTrue();
        Directory.GetFiles(Path.GetDirectoryName(CacheFile)!).Should().Equal(CacheFile); // no temporary left

        var tuner = new Autotuner(CacheFile);
        var later = new List<string>();
        times["b"] = 5.0; // would now lose: the cache must answer without timing
        tuner.Choose("dev", "p", ["a", "b"], Timer(times, later)).Should().Be("b");
        tuner.Choose("dev", "p", ["a", "b"], Timer(times, later)).Should().Be("b");
        later.Should().BeEmpty();
    }

    [Fact]
    public void Devices_and_problems_are_tuned_separately()
    {
        var tuner = new Autotuner(CacheFile);
        var calls = new List<string>();
        tuner.Choose("dev1", "p", ["a", "b"], Timer(new() { ["a"] = 1, ["b"] = 2 }, calls)).Should().Be("a");
        tuner.Choose("dev2", "p", ["a", "b"], Timer(new() { ["a"] = 2, ["b"] = 1 }, calls)).Should().Be("b");
        tuner.Choose("dev1", "q", ["a", "b"], Timer(new() { ["a"] = 2, ["b"] = 1 }, calls)).Should().Be("b");
        calls.Should().HaveCount(6);
        var reread = new Autotuner(CacheFile);
        var none = new List<string>();
        reread.Choose("dev1", "p", ["a", "b"], Timer(new() { ["a"] = 9, ["b"] = 1 }, none)).Should().Be("a");
        reread.Choose("dev2", "p", ["a", "b"], Timer(new() { ["a"] = 1, ["b"] = 9 }, none)).Should().Be("b");
        none.Should().BeEmpty();
    }

    [Fact]
    public void A_cached_winner_that_is_no_longer_a_candidate_or_a_damaged_file_means_timing_again()
    {
        new Autotuner(CacheFile).Choose("dev", "p", ["a", "b"], Timer(new() { ["a"] = 2, ["b"] = 1 }, [])).Should().Be("b");
        var calls = new List<string>();
        new Autotuner(CacheFile).Choose("dev", "p", ["a", "c"], Timer(new() { ["a"] = 2, ["c"] = 3 }, calls)).Should().Be("a");
        calls.Should().Equal("a", "c");

        File.WriteAllText(CacheFile, "{ not json");
        var again = new List<string>();
        new Autotuner(CacheFile).Choose("dev", "p", ["a", "b"], Timer(new() { ["a"] = 2, ["b"] = 1 }, again)).Should().Be("b");
        again.Should().HaveCount(2);
    }

    // ResNet-18 layer4 at 64x64 input, batch 64: a 512 x 256 output, 4608 deep (small output, long reduction).
    private static readonly Conv2dShape Layer4 = new(64, 512, 2, 2, 512, 3, 1, 1);

    [Fact]
    public void Conv_candidates_are_each_kernel_variant_unsplit_and_split_with_the_default_first()
    {
        Conv2d.DefaultVariant(ConvPass.Forward, Layer4).Should().Be(new ConvVariant(ConvKernel.ConvWarpTiled, 1));
        Conv2d.TunedVariants(ConvPass.Forward, Layer4).Select(v => v.ToString()).Should().Equal(
            "ConvWarpTiled splits=1", "ConvWarpTiled splits=9", "ConvWarpTiled128 splits=1", "ConvWarpTiled128 splits=9",
            "ConvWarpTiled64 splits=1", "ConvWarpTiled64 splits=9");
        // The weight gradient's default is already split; a reduction too short to split gives one candidate per kernel.
        var layer1 = new Conv2dShape(64, 64, 56, 56, 64, 3, 1, 1);
        Conv2d.DefaultVariant(ConvPass.BackwardWeight, layer1).Should().Be(new ConvVariant(ConvKernel.ConvWarpTiled, 102));
        Conv2d.TunedVariants(ConvPass.BackwardWeight, layer1)[0].Should().Be(new ConvVariant(ConvKernel.ConvWarpTiled, 102));
        Conv2d.TunedVariants(ConvPass.Forward, new Conv2dShape(1, 3, 8, 8, 4, 3, 1, 1)).Should().HaveCount(3);
        Conv2d.TuningProblem(ConvPass.BackwardData, Layer4, false, true).Should().Be("conv2d BackwardData x(64,512,2,2) w(512,512,3,3) stride=1 pad=1 fp32 float4=01");
    }

    [Fact]
    public void Conv_choice_is_the_fastest_candidate_cached_per_device_pass_and_shape()
    {
        string file = Path.Combine(_folder, "tuning", "autotune-conv.json");
        var calls = new List<ConvVariant>();
        double Time(ConvVariant v)
        {
            calls.Add(v);
            return v == new ConvVariant(ConvKernel.ConvWarpTiled64, 9) ? 0.5 : 1.0 + calls.Count;
        }
        var winner = Conv2d.Choose(new Autotuner(file), "H200 (sm_90)", ConvPass.Forward, Layer4, true, true, Time);
        winner.Should().Be(new ConvVariant(ConvKernel.ConvWarpTiled64, 9));
        calls.Should().Equal(Conv2d.TunedVariants(ConvPass.Forward, Layer4), "each candidate is timed once");

        // Another process: the cache answers; another pass of the same shape is tuned on its own.
        calls.Clear();
        var again = new Autotuner(file);
        Conv2d.Choose(again, "H200 (sm_90)", ConvPass.Forward, Layer4, true, true, Time).Should().Be(winner);
        calls.Should().BeEmpty();
        Conv2d.Choose(again, "H200 (sm_90)", ConvPass.BackwardWeight, Layer4, true, true, _ => 1.0)
            .Should().Be(Conv2d.DefaultVariant(ConvPass.BackwardWeight, Layer4), "a tie keeps the default");
        File.ReadAllText(file).Should().Contain(Conv2d.TuningProblem(ConvPass.Forward, Layer4, true, true)).And.Contain("ConvWarpTiled64 splits=9");
    }

    [Fact]
    public void Conv_variants_read_back_as_written_and_bad_text_is_a_clear_error()
    {
        foreach (var v in Conv2d.TunedVariants(ConvPass.Forward, Layer4))
        {
            ConvVariant.Parse(v.ToString()).Should().Be(v);
        }
        ConvVariant.Parse("ConvWarpTiled128").Should().Be(new ConvVariant(ConvKernel.ConvWarpTiled128, 0));
        foreach (string bad in new[] { "", "Conv", "3", "ConvWarpTiled splits=-1", "ConvWarpTiled splits=x", "ConvWarpTiled 4" })
        {
            var parse = () => ConvVariant.Parse(bad);
            parse.Should().Throw<FormatException>().WithMessage("*splits=N*");
        }
    }

    [Fact]
    public void Gemm_tunes_its_tiled_variants_under_a_key_that_names_the_float4_paths()
    {
        Gemm.TunedVariants.Should().NotContain(GemmVariant.Gemm1Naive).And.Contain(GemmVariant.Gemm4WarpTiled);
        Gemm.TuningProblem(true, false, 64, 128, 576, true, false, true).Should().Be("sgemm TN m=64 n=128 k=576 float4=101");
    }
}
