using System.CommandLine;
using System.Diagnostics;
using IlgpuOct.Cli.Rendering;
using IlgpuOct.Nn.Data;

namespace IlgpuOct.Cli.Commands;

/// <summary><c>ilgpuoct data generate|import|info|preview</c>: make, inspect and look at data set files.</summary>
internal static class DataCommand
{
    public static Command Create()
    {
        var data = new Command("data", "Make, inspect and look at data set files (synthetic OCT, MedMNIST .npz, Kermany OCT folders).");
        data.Subcommands.Add(Generate());
        data.Subcommands.Add(Import());
        data.Subcommands.Add(Info());
        data.Subcommands.Add(Preview());
        return data;
    }

    /// <summary>Most images one split option may ask for.</summary>
    private const int MaxImages = 10_000_000;

    private sealed record SplitOptions(Option<int?> Train, Option<int?> Unlabeled, Option<int?> Val, Option<int?> Test)
    {
        public static SplitOptions AddTo(Command command, string what)
        {
            var options = new SplitOptions(
                new Option<int?>("--train") { Description = $"Training images{what} (paper: 4000)." }.InRange(0, MaxImages),
                new Option<int?>("--unlabeled") { Description = $"Unlabeled images{what} (paper: 1000)." }.InRange(0, MaxImages),
                new Option<int?>("--val") { Description = $"Validation images{what} (default 500)." }.InRange(0, MaxImages),
                new Option<int?>("--test") { Description = $"Test images{what} (paper: 1000)." }.InRange(0, MaxImages));
            command.Options.Add(options.Train);
            command.Options.Add(options.Unlabeled);
            command.Options.Add(options.Val);
            command.Options.Add(options.Test);
            return options;
        }

        /// <summary>Explicit sizes win; otherwise a total count is spread in the paper's 8:2:1:2 proportions; otherwise the paper's sizes.</summary>
        public IReadOnlyList<(string Name, int Count)> Resolve(ParseResult parse, int? total, long bytesPerImage)
        {
            var paper = BalancedSplits.PaperSizes;
            var given = new[] { parse.GetValue(Train), parse.GetValue(Unlabeled), parse.GetValue(Val), parse.GetValue(Test) };
            int[] spread = total is int t ? Spread(t, paper.Select(p => p.Count).ToArray()) : paper.Select(p => p.Count).ToArray();
            var sizes = new List<(string, int)>();
            for (int i = 0; i < paper.Count; i++)
            {
                int size = given[i] ?? spread[i];
                if (size < 0)
                {
                    throw new ArgumentException($"--{paper[i].Name} must not be negative (got {size}).");
                }
                sizes.Add((paper[i].Name, size));
            }
            if (sizes.Sum(s => (long)s.Item2) == 0)
            {
                throw new ArgumentException("All split sizes are zero; give --count or at least one of --train/--unlabeled/--val/--test.");
            }
            foreach (var (name, size) in sizes)
            {
                if (size * bytesPerImage > Array.MaxLength)
                {
                    throw new ArgumentException(
                        $"The {name} split would hold {size} images x {bytesPerImage} bytes = {size * bytesPerImage} bytes, more than one split may hold ({Array.MaxLength}); lower --{name} (or --count) or --resolution.");
                }
            }
            return sizes;
        }

        /// <summary>Splits <paramref name="total"/> in proportion to <paramref name="weights"/>, largest remainders first, so the parts add up exactly.</summary>
        private static int[] Spread(int total, int[] weights)
        {
            if (total < 0)
            {
                throw new ArgumentException($"--count must not be negative (got {total}).");
            }
            double sum = weights.Sum();
            var exact = weights.Select(w => total * w / sum).ToArray();
            var parts = exact.Select(e => (int)Math.Floor(e)).ToArray();
            foreach (int i in Enumerable.Range(0, weights.Length).OrderByDescending(i => exact[i] - parts[i]).ThenBy(i => i).Take(total - parts.Sum()))
            {
                parts[i]++;
            }
            return parts;
        }
    }

    private static Command Generate()
    {
        var command = new Command("generate", "Render the synthetic retinal OCT data set (CNV, DME, DRUSEN, NORMAL), seeded and class-balanced.");
        var classes = new Option<string>("--classes") { Description = "Which synthetic set: oct (the only one).", DefaultValueFactory = _ => "oct" };
        classes.AcceptOnlyFromAmong("oct");
        var count = new Option<int?>("--count") { Description = "Total images, spread over train/unlabeled/val/test as 8:2:1:2 (default: the paper's 4000/1000/500/1000)." }.InRange(0, MaxImages);
        var resolution = new Option<int>("--resolution") { Description = "Image height and width in pixels (8..4096).", DefaultValueFactory = _ => 64 }.InRange(8, 4096);
        var seed = new Option<int>("--seed") { Description = "Seed; the same seed gives identical bytes.", DefaultValueFactory = _ => 0 };
        var minSeverity = new Option<float>("--min-severity") { Description = "Floor of the pathology's severity in [0, 1): 0 lets lesions fade to nearly invisible (hardest); reproduce's quick profile uses 0.35.", DefaultValueFactory = _ => 0f };
        var output = new Option<string>("--out") { Description = "Data set file to write.", Required = true };
        command.Options.Add(classes);
        command.Options.Add(count);
        command.Options.Add(resolution);
        command.Options.Add(seed);
        command.Options.Add(minSeverity);
        var splits = SplitOptions.AddTo(command, " (balanced over the classes)");
        command.Options.Add(output);
        CliRunner.SetAction(command, (parse, token) =>
        {
            int r = parse.GetValue(resolution);
            var sizes = splits.Resolve(parse, parse.GetValue(count), (long)r * r);
            string path = parse.GetValue(output)!;
            var clock = Stopwatch.StartNew();
            var content = WithProgress(progress => SyntheticOct.Generate(r, r, sizes, parse.GetValue(seed), progress, token, parse.GetValue(minSeverity)));
            double seconds = clock.Elapsed.TotalSeconds;
            DatasetFile.Write(path, content);
            CliConsole.Current.WriteLine($"generated {content.ImageCount} images {r}x{r} in {seconds:F2} s ({content.ImageCount / Math.Max(seconds, 1e-9):F0} images/s), wrote {path}");
            using var file = DatasetFile.Open(path);
            PrintSummary(file, checksumOk: null);
            return CliRunner.Ok;
        });
        return command;
    }

    private static Command Import()
    {
        var command = new Command("import", "Convert a MedMNIST .npz or a Kermany OCT folder (CNV/DME/DRUSEN/NORMAL) into a data set file.");
        var source = new Option<string>("--source") { Description = "A MedMNIST .npz file, or a folder with CNV/DME/DRUSEN/NORMAL sub-folders (optionally under train/ and test/) or CNV-xxx.jpeg files.", Required = true };
        var resolution = new Option<int>("--resolution") { Description = "Output height and width in pixels.", DefaultValueFactory = _ => 64 }.InRange(8, 4096);
        var resize = new Option<int?>("--resize") { Description = "Resize the shorter side to this before cropping (default: --crop)." }.InRange(8, 16_384);
        var crop = new Option<int?>("--crop") { Description = "Center crop to this square before the final resize (paper profile: --resize 256 --crop 224 --resolution 224; default: --resolution)." }.InRange(8, 16_384);
        var channels = new Option<int>("--channels") { Description = "1 (grayscale) or 3 (keep/make RGB).", DefaultValueFactory = _ => 1 };
        channels.AcceptOnlyFromAmong("1", "3");
        channels.AcceptOnlyFromAmong("1", "3");
        var unlabeledFraction = new Option<double>("--unlabeled-fraction") { Description = ".npz: fraction of each class of the train split moved to 'unlabeled' (stratified, seeded).", DefaultValueFactory = _ => 0.0 }.InRange(0.0, 0.99);
        var classNames = new Option<string?>("--class-names") { Description = ".npz: comma-separated class names in label order (default: known MedMNIST names by file name, else class_0..)." };
        var strict = new Option<bool>("--strict") { Description = "Kermany folder: fail on the first unreadable JPEG instead of skipping it with a warning." };
        var seed = new Option<int>("--seed") { Description = "Seed for sampling and the unlabeled split.", DefaultValueFactory = _ => 0 };
        var output = new Option<string>("--out") { Description = "Data set file to write.", Required = true };
        command.Options.Add(source);
        command.Options.Add(resolution);
        command.Options.Add(resize);
        command.Options.Add(crop);
        command.Options.Add(channels);
        command.Options.Add(unlabeledFraction);
        command.Options.Add(classNames);
        var splits = SplitOptions.AddTo(command, " sampled from a Kermany folder, balanced");
        command.Options.Add(strict);
        command.Options.Add(seed);
        command.Options.Add(output);
        CliRunner.SetAction(command, (parse, token) =>
        {
            var preprocess = new Preprocess(parse.GetValue(resolution), parse.GetValue(resize), parse.GetValue(crop), parse.GetValue(channels));
            string sourcePath = parse.GetValue(source)!;
            string path = parse.GetValue(output)!;
            int seedValue = parse.GetValue(seed);
            ImportResult result;
            if (File.Exists(sourcePath))
            {
                string? names = parse.GetValue(classNames);
                var options = new NpzImportOptions(preprocess, parse.GetValue(unlabeledFraction), seedValue, names?.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries));
                result = WithProgress(progress => NpzImport.Import(sourcePath, options, progress, token));
            }
            else if (Directory.Exists(sourcePath))
            {
                var options = new KermanyImportOptions(preprocess, splits.Resolve(parse, null, (long)preprocess.Channels * preprocess.Resolution * preprocess.Resolution), seedValue, parse.GetValue(strict));
                result = WithProgress(progress => KermanyFolder.Import(sourcePath, options, progress, token));
            }
            else
            {
                throw new FileNotFoundException($"--source '{sourcePath}' is neither a file nor a folder.", sourcePath);
            }
            foreach (var warning in result.Warnings)
            {
                CliConsole.Current.ErrorLine($"warning: {warning.Path}: {warning.Message}");
            }
            DatasetFile.Write(path, result.Content);
            CliConsole.Current.WriteLine($"imported {result.Content.ImageCount} images from {sourcePath}; {result.Warnings.Count} skipped with warnings; wrote {path}");
            using var file = DatasetFile.Open(path);
            PrintSummary(file, checksumOk: null);
            return CliRunner.Ok;
        });
        return command;
    }

    private static Command Info()
    {
        var command = new Command("info", "Show a data set file: shape, classes, split sizes per class, source, checksum.");
        var fileArgument = new Argument<string>("file") { Description = "The data set file." };
        var noVerify = new Option<bool>("--no-verify") { Description = "Skip recomputing the payload SHA-256 (faster on large files)." };
        var json = CliRunner.JsonOption();
        command.Arguments.Add(fileArgument);
        command.Options.Add(noVerify);
        command.Options.Add(json);
        CliRunner.SetAction(command, (parse, token) =>
        {
            bool verify = !parse.GetValue(noVerify);
            using var file = DatasetFile.Open(parse.GetValue(fileArgument)!, verifyChecksum: verify);
            if (parse.GetValue(json))
            {
                Ui.WriteJson(new
                {
                    file.Path,
                    file.Version,
                    file.Channels,
                    file.Height,
                    file.Width,
                    ClassNames = file.ClassNames,
                    file.Source,
                    Sha256 = file.Checksum,
                    ChecksumVerified = verify,
                    Splits = file.Splits.Select(s => new
                    {
                        s.Name,
                        s.Count,
                        PerClass = s.ClassCounts().Select((n, c) => new KeyValuePair<string, int>(file.ClassNames[c], n)).ToDictionary(),
                    }).ToArray(),
                });
            }
            else
            {
                PrintSummary(file, verify ? true : null);
            }
            return CliRunner.Ok;
        });
        return command;
    }

    private static Command Preview()
    {
        var command = new Command("preview", "Write a PNG contact sheet of a data set: one row per class.");
        var dataOption = new Option<string>("--data") { Description = "The data set file.", Required = true };
        var output = new Option<string>("--out") { Description = "PNG file to write.", Required = true };
        var split = new Option<string?>("--split") { Description = "Which split (default: the first)." };
        var perClass = new Option<int>("--per-class") { Description = "Images per class (columns).", DefaultValueFactory = _ => 8 }.InRange(1, 256);
        var scale = new Option<int>("--scale") { Description = "Integer zoom of each image.", DefaultValueFactory = _ => 1 }.InRange(1, 16);
        command.Options.Add(dataOption);
        command.Options.Add(output);
        command.Options.Add(split);
        command.Options.Add(perClass);
        command.Options.Add(scale);
        CliRunner.SetAction(command, (parse, token) =>
        {
            using var file = DatasetFile.Open(parse.GetValue(dataOption)!);
            string? splitName = parse.GetValue(split);
            var chosen = splitName is null ? file.Splits[0] : file.Split(splitName);
            var (pixels, width, height, channels) = ContactSheet.Build(chosen, parse.GetValue(perClass), parse.GetValue(scale));
            string path = parse.GetValue(output)!;
            Png.Write(path, pixels, width, height, channels);
            CliConsole.Current.WriteLine($"wrote {path} ({width}x{height}): split '{chosen.Name}', rows top to bottom: {string.Join(", ", file.ClassNames)}");
            return CliRunner.Ok;
        });
        return command;
    }

    private static void PrintSummary(DatasetFile file, bool? checksumOk)
    {
        CliConsole.Current.WriteLine($"{file.Path}: {file.ImageCount} images, {file.Channels}x{file.Height}x{file.Width} uint8, {file.ClassCount} classes, format v{file.Version}");
        CliConsole.Current.WriteLine($"source: {file.Source}");
        CliConsole.Current.WriteLine($"sha256: {file.Checksum}{checksumOk switch { true => " (verified)", _ => " (not verified)" }}");
        var headers = new List<string> { "split", "images" };
        headers.AddRange(file.ClassNames);
        Ui.Table(null, headers, file.Splits.Select(s =>
        {
            var row = new List<string> { s.Name, s.Count.ToString() };
            row.AddRange(s.ClassCounts().Select(c => c.ToString()));
            return (IReadOnlyList<string>)row;
        }));
    }

    /// <summary>Runs a data operation with the CLI's progress view: a bar on a terminal, a line per stage and per 5 s otherwise.</summary>
    private static T WithProgress<T>(Func<IProgress<DataProgress>, T> run)
    {
        var console = CliConsole.Current;
        string? lastStage = null;
        var lines = ProgressView.Throttled<DataProgress>(console, TimeSpan.FromSeconds(5), p =>
        {
            bool newStage = p.Stage != lastStage;
            lastStage = p.Stage;
            return newStage || p.Done == p.Total;
        }, p => $"{p.Stage}: {p.Done}/{p.Total}");
        return ProgressView.WithBar(console, p => (p.Done, p.Total, p.Stage), lines, run);
    }
}
