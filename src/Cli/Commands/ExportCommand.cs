using System.CommandLine;
using System.Globalization;
using IlgpuOct.Cli.Rendering;
using IlgpuOct.Nn.Checkpoints;
using IlgpuOct.Nn.Onnx;

namespace IlgpuOct.Cli.Commands;

/// <summary><c>ilgpuoct export --model CKPT --onnx FILE</c>: a trained ResNet-18 as a standard ONNX model (evaluation mode).</summary>
internal static class ExportCommand
{
    public static Command Create()
    {
        var command = new Command("export", $"Write a checkpoint's ResNet-18 in evaluation mode as an ONNX model (operator set {ResNetOnnxExport.Opset}, BatchNormalization nodes with the running statistics; input '{ResNetOnnxExport.InputName}' (batch, C, H, W) pixels in [0, 1], output '{ResNetOnnxExport.OutputName}').");
        var model = new Option<string>("--model") { Description = "Checkpoint (.safetensors) written by `ilgpuoct train`.", Required = true };
        var onnx = new Option<string>("--onnx") { Description = "ONNX file to write (atomically).", Required = true };
        command.Options.Add(model);
        command.Options.Add(onnx);
        CliRunner.SetAction(command, (parse, _) =>
        {
            string output = parse.GetValue(onnx)!;
            using var accelerator = CliRunner.OpenDevice("cpu");
            var (network, info) = Checkpoint.Open(accelerator, parse.GetValue(model)!);
            using (network)
            {
                var exported = ResNetOnnxExport.Export(network);
                OnnxFile.Write(output, exported);
                CliConsole.Current.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"wrote {Path.GetFullPath(output)}: ResNet-18 width {info.Config.Width}, {info.Config.InChannels} channel(s), {info.Config.NumClasses} classes, opset {ResNetOnnxExport.Opset}"));
            }
            return CliRunner.Ok;
        });
        return command;
    }
}
