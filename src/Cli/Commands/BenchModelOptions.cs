using System.CommandLine;
using IlgpuOct.Nn;

namespace IlgpuOct.Cli.Commands;

/// <summary>The ResNet-18 and image sizes of the model benchmarks (bench train, bench infer), with the check that one activation fits a tensor.</summary>
internal sealed class BenchModelOptions
{
    public BenchModelOptions(int minBatch, string unit, string units)
    {
        Resolution = new Option<int>("--resolution") { Description = "Image height and width.", DefaultValueFactory = _ => 64 }.InRange(16, 4096);
        Batch = new Option<int>("--batch") { Description = $"Images per {unit}.", DefaultValueFactory = _ => 32 }.InRange(minBatch, 65_536);
        Width = new Option<int>("--width") { Description = "Base width (64 = torchvision).", DefaultValueFactory = _ => 64 }.InRange(1, 4096);
        Channels = new Option<int>("--channels") { Description = "Input channels (1 or 3).", DefaultValueFactory = _ => 1 };
        Channels.AcceptOnlyFromAmong("1", "3");
        Classes = new Option<int>("--classes") { Description = "Classes.", DefaultValueFactory = _ => 4 }.InRange(2, 65_536);
        Steps = new Option<int>("--steps") { Description = $"Timed {units}.", DefaultValueFactory = _ => 5 }.InRange(1, 100_000);
        Warmup = new Option<int>("--warmup") { Description = $"Untimed {units} first (buffers, JIT, caches).", DefaultValueFactory = _ => 2 }.InRange(0, 100_000);
    }

    public Option<int> Resolution { get; }

    public Option<int> Batch { get; }

    public Option<int> Width { get; }

    public Option<int> Channels { get; }

    public Option<int> Classes { get; }

    public Option<int> Steps { get; }

    public Option<int> Warmup { get; }

    public IEnumerable<Option> All => [Resolution, Batch, Width, Channels, Classes, Steps, Warmup];

    public ResNetConfig Config(ParseResult parse) => new(parse.GetValue(Width), parse.GetValue(Channels), parse.GetValue(Classes));

    /// <summary>Adds the options and refuses sizes whose largest activation (conv1's output, batch x width x (resolution / 2)^2) exceeds one tensor.</summary>
    public void AddTo(Command command)
    {
        foreach (var option in All)
        {
            command.Options.Add(option);
        }
        command.Require(r =>
        {
            long elements = (long)r.GetValue(Batch) * r.GetValue(Width) * ((r.GetValue(Resolution) + 1) / 2) * ((r.GetValue(Resolution) + 1) / 2);
            return elements > int.MaxValue
                ? $"--batch {r.GetValue(Batch)} x --width {r.GetValue(Width)} x (--resolution {r.GetValue(Resolution)} / 2)^2 = {elements} activations, more than one tensor may hold ({int.MaxValue}); lower --batch, --width or --resolution."
                : null;
        });
    }
}
