using System.Runtime.InteropServices;
using IlgpuOct.Kernels;
using IlgpuOct.Cli.Rendering;

namespace IlgpuOct.Cli;

/// <summary>
/// Ctrl+C and SIGTERM: the first asks the running verb to stop at its next safe point (training
/// writes a checkpoint there); the second aborts at once, after removing this process's temporary
/// files, with exit code 130 and no stack trace.
/// </summary>
internal static class Interruption
{
    private static CancellationTokenSource _source = new();
    private static int _signals;

    public static CancellationToken Token => _source.Token;

    /// <summary>Listens for SIGINT/SIGTERM until the returned handle is disposed.</summary>
    public static IDisposable Listen()
    {
        _source = new CancellationTokenSource();
        _signals = 0;
        var registrations = new[]
        {
            PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal),
            PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal),
        };
        return new Registrations(registrations);
    }

    private static void OnSignal(PosixSignalContext context)
    {
        context.Cancel = true;
        if (Interlocked.Increment(ref _signals) == 1)
        {
            CliConsole.Current.ErrorLine("interrupt: stopping at the next safe point (a checkpoint is written where the verb supports it); press Ctrl+C again to abort now.");
            _source.Cancel();
            return;
        }
        CliConsole.Current.ErrorLine("aborted: second interrupt; temporary files removed, nothing else written.");
        AtomicFile.DeletePendingTemporaries(refuseNewWrites: true);
        Environment.Exit(CliRunner.Cancelled);
    }

    private sealed class Registrations(PosixSignalRegistration[] registrations) : IDisposable
    {
        public void Dispose()
        {
            foreach (var registration in registrations)
            {
                registration.Dispose();
            }
        }
    }
}
