using IlgpuOct.Kernels.Operators;

namespace IlgpuOct.Kernels.Profiling;

/// <summary>
/// The layer shapes of ResNet-18 in the paper's profile (batch 64, 1-channel 224 x 224 images, width
/// 64, 2 classes), from which the operators' [LaunchShapes] methods compute their launch configurations.
/// </summary>
public static class ResNet18Shapes
{
    public const int Batch = 64;
    public const int Resolution = 224;
    public const int Classes = 2;

    /// <summary>The stem and the first convolution of each stage, and a downsampling 1x1 convolution.</summary>
    public static IReadOnlyList<(string Layer, Conv2dShape Shape)> Convolutions { get; } =
    [
        ("conv1", new Conv2dShape(Batch, 1, Resolution, Resolution, 64, 7, 2, 3)),
        ("layer1", new Conv2dShape(Batch, 64, 56, 56, 64, 3, 1, 1)),
        ("layer2", new Conv2dShape(Batch, 64, 56, 56, 128, 3, 2, 1)),
        ("layer2.downsample", new Conv2dShape(Batch, 64, 56, 56, 128, 1, 2, 0)),
        ("layer3", new Conv2dShape(Batch, 128, 28, 28, 256, 3, 2, 1)),
        ("layer4", new Conv2dShape(Batch, 256, 14, 14, 512, 3, 2, 1)),
    ];

    /// <summary>Activation maps (N, C, H, W) after the stem and after each stage.</summary>
    public static IReadOnlyList<(string Layer, BatchNorm2dShape Shape)> Activations { get; } =
    [
        ("bn1", new BatchNorm2dShape(Batch, 64, 112, 112)),
        ("layer1", new BatchNorm2dShape(Batch, 64, 56, 56)),
        ("layer4", new BatchNorm2dShape(Batch, 512, 7, 7)),
    ];

    /// <summary>The classifier: 512 features to <see cref="Classes"/> logits.</summary>
    public static LinearShape Fc => new(Batch, 512, Classes);

    /// <summary>Parameters of ResNet-18 at width 64 with one input channel (SGD updates them all at once per tensor; the largest is layer4's 512x512x3x3).</summary>
    public const int LargestParameter = 512 * 512 * 3 * 3;
}
