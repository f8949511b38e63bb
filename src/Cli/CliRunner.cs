using System.CommandLine;
using System.Runtime.InteropServices;
using IlgpuOct.Kernels;
using IlgpuOct.Kernels.Operators;
using IlgpuOct.Cli.Rendering;

namespace IlgpuOct.Cli;

/// <summary>
/// Shared options and the one place where exceptions become one-line messages and exit codes.
/// Exit codes: 0 ok; 1 the run failed (device, kernel, diverged training); 2 bad usage (an option
/// out of range, inputs that do not fit together); 3 an input file is not valid; 4 a file or folder
/// does not exist; 5 access denied; 6 another I/O failure (disk full, a path that cannot be
/// written); 70 an internal error (a bug: please report it with --verbose); 130 interrupted.
/// </summary>
internal static class CliRunner
{
    public const int Ok = 0;
    public const int Failed = 1;
    public const int BadInput = 2;
    public const int InvalidFile = 3;
    public const int NotFound = 4;
    public const int AccessDenied = 5;
    public const int IoFailure = 6;
    public const int Internal = 70;
    public const int Cancelled = 130;

    /// <summary>One line per exit code, for --help.</summary>
    public const string ExitCodeHelp =
        "Exit codes: 0 ok, 1 run failed, 2 bad usage, 3 invalid input file, 4 not found, 5 access denied, 6 I/O failure (e.g. disk full), 70 internal error, 130 interrupted. Add --verbose for a stack trace.";

    /// <summary>On every verb: print the stack trace of a failure as well as its one-line message.</summary>
    public static readonly Option<bool> Verbose = new("--verbose")
    {
        Description = "On failure, also print the exception's stack trace.",
        Recursive = true,
    };

    public static Option<string> DeviceOption(string defaultValue = "auto")
    {
        var option = new Option<string>("--device")
        {
            Description = "auto | cuda | cpu | cpu-kernels | cuda-host",
            DefaultValueFactory = _ => defaultValue,
        };
        option.AcceptOnlyFromAmong(DeviceSelection.Names);
        return option;
    }

    /// <summary>--precision fp32|tf32|bf16: the arithmetic of matrix products (GEMM, convolutions); read by the operators through <see cref="Accelerator.Precision"/>.</summary>
    public static Option<string> PrecisionOption()
    {
        var option = new Option<string>("--precision")
        {
            Description = "Matrix products: fp32 (default, the golden path) | tf32 | bf16 (tensor cores, FP32 accumulation; cuda sm_80+, checked on cpu-kernels and cuda-host; refused on cpu).",
            DefaultValueFactory = _ => "fp32",
        };
        option.AcceptOnlyFromAmong("fp32", "tf32", "bf16");
        return option;
    }

    /// <summary>--conv-kernel: the FP32 convolution kernel of every pass, as bench gemm's --variant for the GEMM (applied by <see cref="ApplyConvKernel"/>).</summary>
    public static Option<string> ConvKernelOption()
    {
        var option = new Option<string>("--conv-kernel")
        {
            Description = "FP32 convolution kernel: auto (default: autotuned per pass and shape on cuda, ConvWarpTiled elsewhere) | ConvWarpTiled (64x128 tiles) | ConvWarpTiled128 (128x128) | ConvWarpTiled64 (64x64, fewer registers); the shape's default split of the reduction.",
            DefaultValueFactory = _ => "auto",
        };
        option.AcceptOnlyFromAmong("auto", nameof(ConvKernel.ConvWarpTiled), nameof(ConvKernel.ConvWarpTiled128), nameof(ConvKernel.ConvWarpTiled64));
        return option;
    }

    /// <summary>Makes every convolution pass of this process run the kernel --conv-kernel names (Conv2d.ForcedKernel).</summary>
    public static void ApplyConvKernel(ParseResult parse, Option<string> option) =>
        Conv2d.ForcedKernel = parse.GetValue(option) is { } name && name != "auto" ? Enum.Parse<ConvKernel>(name) : ConvKernel.Auto;

    public static Option<bool> JsonOption() => new("--json") { Description = "Print the result as JSON instead of a table." };

    /// <summary>Skip the data set's SHA-256 check (it reads the whole file once).</summary>
    public static Option<bool> NoVerifyOption() => new("--no-verify") { Description = "Do not recompute the data set's SHA-256 before using it (it reads the whole file once)." };

    /// <summary>CPU threads of the cpu engine; the same seed and thread count give identical results.</summary>
    public static Option<int> ThreadsOption() => new Option<int>("--threads")
    {
        Description = "CPU threads of the cpu engine (default: all logical processors); the same seed and --threads give bit-identical results.",
        DefaultValueFactory = _ => Environment.ProcessorCount,
    }.InRange(1, 1024);

    /// <summary>Sets an action that maps failures to one-line messages on stderr and distinct exit codes.</summary>
    public static void SetAction(Command command, Func<ParseResult, CancellationToken, int> action)
    {
        command.SetAction((parse, _) =>
        {
            bool verbose = parse.GetValue(Verbose);
            return Task.FromResult(Run(() =>
            {
                if (command.Options.OfType<Option<int>>().FirstOrDefault(o => o.Name == "--threads") is { } threads)
                {
                    Gemm.CpuMaxThreads = parse.GetValue(threads);
                }
                return action(parse, Interruption.Token);
            }, verbose));
        });
    }

    public static int Run(Func<int> action, bool verbose = false)
    {
        try
        {
            return action();
        }
        catch (Exception e)
        {
            var (code, message) = Classify(e);
            CliConsole.Current.ErrorLine($"error: {OneLine(message)}");
            if (verbose)
            {
                CliConsole.Current.ErrorLine(e.ToString());
            }
            else if (code == Internal)
            {
                CliConsole.Current.ErrorLine("error: this is a bug; run again with --verbose for the stack trace and report it.");
            }
            // No sweep of pending temporaries here: each AtomicFile.Write removes its own on failure, and
            // a sweep would also delete the temporaries of writes still running on other threads (seen as
            // a flaky "could not find file .last.safetensors.*.tmp" when CLI tests ran beside training tests).
            return code;
        }
    }

    /// <summary>The exit code and message of a failure (an aggregate with one cause counts as that cause).</summary>
    public static (int Code, string Message) Classify(Exception e)
    {
        while (e is AggregateException { InnerExceptions.Count: >= 1 } aggregate)
        {
            e = aggregate.Flatten().InnerExceptions[0];
        }
        while (e is System.Reflection.TargetInvocationException { InnerException: { } inner })
        {
            e = inner;
        }
        return e switch
        {
            OperationCanceledException => (Cancelled, "interrupted"),
            InvalidFileFormatException or InvalidDataException or System.Text.Json.JsonException => (InvalidFile, e.Message),
            FileNotFoundException or DirectoryNotFoundException => (NotFound, e.Message),
            UnauthorizedAccessException => (AccessDenied, $"{e.Message} Check the permissions or choose another path."),
            PathTooLongException => (BadInput, e.Message),
            IOException when IsDiskFull(e) => (IoFailure, $"the disk is full ({e.Message}); free some space and run again (training continues with --resume)."),
            IOException => (IoFailure, e.Message),
            ArgumentException a => (BadInput, WithoutParameterName(a)),
            FormatException or AcceleratorUnavailableException => (BadInput, e.Message),
            OutOfMemoryException => (Failed, "out of memory: lower --batch, --width, --resolution or the number of images."),
            KernelExecutionException or InvalidOperationException or DllNotFoundException or NotSupportedException or ExternalException => (Failed, e.Message),
            _ when e.GetType().Name.EndsWith("DivergedException", StringComparison.Ordinal) => (Failed, e.Message),
            _ => (Internal, $"internal error ({e.GetType().Name}): {e.Message}"),
        };
    }

    /// <summary>Messages span one line: line breaks become "; ".</summary>
    public static string OneLine(string message) =>
        string.Join("; ", message.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));

    private static bool IsDiskFull(Exception e) =>
        (e.HResult & 0xFFFF) is 28 or 0x70 or 0x27 || e.Message.Contains("No space left", StringComparison.OrdinalIgnoreCase);

    /// <summary>ArgumentException appends " (Parameter 'x')", which means nothing to a user.</summary>
    private static string WithoutParameterName(ArgumentException e)
    {
        string message = e.Message;
        if (e.ParamName is { } name)
        {
            message = message.Replace($" (Parameter '{name}')", "", StringComparison.Ordinal);
        }
        return e is ArgumentOutOfRangeException { ActualValue: { } actual } && !message.Contains(actual.ToString() ?? "", StringComparison.Ordinal)
            ? $"{message} (got {actual})"
            : message;
    }

    /// <summary>Opens the device and prints the one-line notice of what was chosen and why (to stderr, so --json stays clean).</summary>
    /// <summary>Opens the device and sets its matrix-product precision (a one-line error where the device cannot run it).</summary>
    public static Accelerator OpenDevice(string name, string precision)
    {
        var accelerator = OpenDevice(name);
        try
        {
            accelerator.Precision = Accelerator.ParsePrecision(precision);
        }
        catch
        {
            accelerator.Dispose();
            throw;
        }
        if (accelerator.Precision != MatmulPrecision.Fp32)
        {
            CliConsole.Current.ErrorLine($"precision: {Accelerator.PrecisionName(accelerator.Precision)} matrix products on tensor cores (FP32 accumulation); results differ from fp32 within the format's rounding");
        }
        return accelerator;
    }

    public static Accelerator OpenDevice(string name)
    {
        var accelerator = DeviceSelection.Open(name, out string notice);
        CliConsole.Current.ErrorLine(notice);
        if (accelerator is HostAccelerator { Sanitize: true, Kind: AcceleratorKind.CpuKernels })
        {
            CliConsole.Current.ErrorLine($"sanitizers: racecheck and initcheck of shared memory on ({HostAccelerator.SanitizeVariable}=1); synccheck and signed-overflow checks are always on");
        }
        return accelerator;
    }
}
