using System.CommandLine;
using IlgpuOct.Nn.Onnx;

namespace IlgpuOct.Cli;

/// <summary><c>--pretrained [PATH]</c> of train and reproduce: start from ImageNet weights (ONNX ResNet-18, width 64).</summary>
internal static class PretrainedOption
{
    public static Option<string?> Create() => new("--pretrained")
    {
        Description = "Start from ImageNet weights: the ResNet-18 of NuGet package " + PretrainedResNet18Package.Id + " " + PretrainedResNet18Package.Version +
            " (restored with the CLI), or the ONNX file PATH. Needs width 64; the extra layer4 block is dropped, the preprocessing folded into conv1/bn1, RGB filters summed for gray images, fc seeded anew.",
        Arity = ArgumentArity.ZeroOrOne,
    };

    /// <summary>The weights asked for, or null when the option is absent; a missing file is a one-line error.</summary>
    public static PretrainedSource? Resolve(ParseResult parse, Option<string?> option) =>
        parse.GetResult(option) is null ? null : PretrainedResNet18Package.Resolve(parse.GetValue(option));
}
