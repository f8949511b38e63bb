using IlgpuOct.Nn.IO;

namespace IlgpuOct.Defense.Detection;

/// <summary>
/// Reading a detector file: the checked view every detector's FromFile reads its metadata and
/// tensors through, so a damaged or foreign file is an InvalidFileFormatException naming the file
/// and the field, never a parse or key error.
/// </summary>
internal static class DetectorFile
{
    public const string FormatName = "detector file";

    /// <summary>The most classes and features a detector file may declare.</summary>
    public const int MaxClasses = 1 << 16;
    public const int MaxFeatures = 1 << 16;

    public static SafeTensorFields Open(string path)
    {
        var fields = new SafeTensorFields(SafeTensorFile.Read(path), FormatName);
        if (!fields.Has("format") || fields.Text("format") != FeatureDetector.Format)
        {
            throw fields.Error("__metadata__ 'format'", $"it is {(fields.Has("format") ? $"'{fields.Text("format")}'" : "missing")}, expected '{FeatureDetector.Format}' (make one with `ilgpuoct detect fit`)");
        }
        return fields;
    }

    /// <summary>Classes, features, threshold and clean rejection rate, each within its range.</summary>
    public static (int Classes, int Features, double Threshold, double Rate) BaseMetadata(SafeTensorFields fields)
    {
        int classes = fields.Int("classes", 2, MaxClasses);
        int features = fields.Int("features", 1, MaxFeatures);
        double threshold = fields.Double("threshold", allowInfinite: true);
        double rate = fields.Double("clean_rejection_rate", 0, 1);
        return (classes, features, threshold, rate);
    }
}
