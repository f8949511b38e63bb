using System.CommandLine;
using IlgpuOct.Kernels;

namespace IlgpuOct.Cli;

/// <summary>Shared options and the one place where exceptions become messages and exit codes.</summary>
internal static class CliRunner
{
    public const int Ok = 0;
    public const int Failed = 1;
    public const int BadInput = 2;
    public const int Cancelled = 130;

    public static Option<string> DeviceOption(string defaultValue = "auto")
    {
        var option = new Option<string>("--device")
        {
            Description = "auto | cuda | cpu | cpu-kernels",
            DefaultValueFactory = _ => defaultValue,
        };
        option.AcceptOnlyFromAmong(DeviceSelection.Names);
        return option;
    }

    public static Option<bool> JsonOption() => new("--json") { Description = "Print the result as JSON instead of a table." };

    /// <summary>Sets an action that maps failures to clear messages on stderr and non-zero exit codes.</summary>
    public static void SetAction(Command command, Func<ParseResult, CancellationToken, int> action)
    {
        command.SetAction((parse, token) => Task.FromResult(Run(() => action(parse, token))));
    }

    public static int Run(Func<int> action)
    {
        try
        {
            return action();
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine("cancelled");
            return Cancelled;
        }
        catch (Exception e) when (e is ArgumentException or InvalidDataException or FileNotFoundException or DirectoryNotFoundException or AcceleratorUnavailableException or FormatException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return BadInput;
        }
        catch (Exception e) when (e is KernelExecutionException or InvalidOperationException or IOException or DllNotFoundException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            if (Environment.GetEnvironmentVariable("ILGPUOCT_DEBUG") == "1")
            {
                Console.Error.WriteLine(e);
            }
            return Failed;
        }
    }

    /// <summary>Opens the device and prints the one-line notice of what was chosen and why (to stderr, so --json stays clean).</summary>
    public static Accelerator OpenDevice(string name)
    {
        var accelerator = DeviceSelection.Open(name, out string notice);
        Console.Error.WriteLine(notice);
        if (accelerator is HostAccelerator { Sanitize: true, Kind: AcceleratorKind.CpuKernels })
        {
            Console.Error.WriteLine($"sanitizers: racecheck and initcheck of shared memory on ({HostAccelerator.SanitizeVariable}=1); synccheck and signed-overflow checks are always on");
        }
        return accelerator;
    }
}
