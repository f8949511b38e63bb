namespace IlgpuOct.Nn.Onnx;

/// <summary>An ONNX ResNet-18 to initialise from, and the preprocessing graph to fold into its stem (null: none).</summary>
public sealed record PretrainedSource(string ModelPath, string? PreprocessingPath);

/// <summary>
/// Where the ImageNet ResNet-18 of NuGet package Microsoft.ML.DnnImageFeaturizer.ResNet18 lies:
/// the CLI and test projects download the package (PackageDownload, no assemblies referenced) into
/// the NuGet global packages folder ($NUGET_PACKAGES, else ~/.nuget/packages).
/// </summary>
public static class PretrainedResNet18Package
{
    public const string Id = "Microsoft.ML.DnnImageFeaturizer.ResNet18";
    public const string Version = "0.23.1";

    /// <summary>How to obtain the file, for error messages.</summary>
    public const string HowToGet =
        "restore it with `dotnet restore src/Cli` (the CLI project downloads NuGet package " + Id + " " + Version +
        " into the NuGet packages folder), or pass --pretrained PATH to its tools/DnnImageModels/ResNet18Onnx/ResNet18.onnx";

    public static string PackagesFolder =>
        Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } folder
            ? folder
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");

    /// <summary>ResNet18.onnx in the packages folder (it may not exist).</summary>
    public static string ModelPath =>
        Path.Combine(PackagesFolder, Id.ToLowerInvariant(), Version, "tools", "DnnImageModels", "ResNet18Onnx", "ResNet18.onnx");

    /// <summary>
    /// The package's preprocessing graph for a model file laid out as in the package
    /// (…/ResNet18Onnx/ResNet18.onnx beside …/ResNetPrepOnnx/ResNetPreprocess.onnx), or null.
    /// </summary>
    public static string? PreprocessingFor(string modelPath)
    {
        string? models = Path.GetDirectoryName(Path.GetDirectoryName(Path.GetFullPath(modelPath)));
        string? candidate = models is null ? null : Path.Combine(models, "ResNetPrepOnnx", "ResNetPreprocess.onnx");
        return candidate is not null && File.Exists(candidate) ? candidate : null;
    }

    /// <summary>
    /// The model for <c>--pretrained</c>: the explicit path, or the package's when none is given,
    /// with the package's preprocessing when it lies beside the model as in the package. A missing
    /// file is a one-line error that says how to get it.
    /// </summary>
    public static PretrainedSource Resolve(string? explicitPath)
    {
        string path = string.IsNullOrEmpty(explicitPath) ? ModelPath : explicitPath;
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"The pretrained ResNet-18 '{path}' does not exist: {HowToGet}.", path);
        }
        return new PretrainedSource(path, PreprocessingFor(path));
    }
}
