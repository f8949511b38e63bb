using FluentAssertions;
using IlgpuOct.Defense.Experiments;
using IlgpuOct.Kernels;
using Xunit;

namespace IlgpuOct.Tests.Experiments;

public sealed class ReproduceProfileTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), $"ilgpuoct-profile-{Guid.NewGuid():N}");

    public void Dispose()
    {
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, true);
        }
    }

    [Fact]
    public void ProfilesByNameValidateAndTheQuickOneRunsThreeSeeds()
    {
        foreach (string name in new[] { "quick", "pneumonia", "paper", "micro" })
        {
            var profile = ReproduceProfile.ByName(name);
            profile.Name.Should().Be(name);
            profile.Validate();
        }
        ReproduceProfile.Quick.Seeds.Should().Equal(0, 1, 2);
        ReproduceProfile.Quick.AdaptiveLambdas.Should().Contain(0, "lambda 0 (plain PGD) is in every sweep, so the adaptive attack is never weaker than PGD on the held-out images");
        ReproduceProfile.Pneumonia.DefaultDataPath.Should().EndWith("pneumoniamnist.npz");
        var unknown = () => ReproduceProfile.ByName("huge");
        unknown.Should().Throw<ArgumentException>().WithMessage("*quick, pneumonia, paper or micro*");
    }

    [Fact]
    public void LocateDataLooksInTheWorkingFolderThenAboveTheBinaries()
    {
        string nested = Path.Combine(_dir, "repo", "src", "bin");
        Directory.CreateDirectory(nested);
        Directory.CreateDirectory(Path.Combine(_dir, "shared"));
        string file = Path.Combine(_dir, "shared", "x.npz");
        File.WriteAllText(file, "");
        ReproduceProfile.LocateData("../shared/x.npz", Path.Combine(_dir, "repo"), "/").Should().Be(file, "found from the working folder");
        ReproduceProfile.LocateData("../shared/x.npz", "/", nested).Should().Be(file, "found from a folder above the binaries");
        var missing = () => ReproduceProfile.LocateData("../shared/none.npz", Path.Combine(_dir, "repo"), nested);
        missing.Should().Throw<FileNotFoundException>().WithMessage("*--data*");
    }

    [Fact]
    public void ANpzIsImportedIntoTheRunAndGceIsNotApplicableToTwoClasses()
    {
        string npz = ReproduceProfile.LocateData(ReproduceProfile.Pneumonia.DefaultDataPath!, Environment.CurrentDirectory, AppContext.BaseDirectory);
        var profile = ReproduceProfile.Micro with { Modes = ["nt", "gce"], AdaptiveEpsilons = [], CwConstants = [], FgsmEpsilons = [] };
        using var acc = DeviceSelection.Open("cpu", out _);
        var results = Reproduce.Run(acc, new ReproduceOptions { Profile = profile, DataPath = npz, OutputDirectory = _dir, Seed = 2 });
        results.DataSource.Should().StartWith("medmnist-npz pneumoniamnist.npz");
        results.ClassNames.Should().Equal("normal", "pneumonia");
        File.Exists(Path.Combine(_dir, "data.dat")).Should().BeTrue("the .npz is imported into the run folder");
        results.Models.Single(m => m.Mode == "gce").Skipped.Should().Contain("at least 3 classes");
        results.Models.Single(m => m.Mode == "nt").Skipped.Should().BeNull();
        results.Notes.Should().Contain(n => n.StartsWith("GCE skipped", StringComparison.Ordinal));
    }
}
