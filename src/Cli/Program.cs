using System.CommandLine;

namespace IlgpuOct.Cli;

public static class Program
{
    public static int Main(string[] args)
    {
        var root = new RootCommand("IlgpuOct: adversarially robust medical-image classifiers on GPU kernels of their own.");
        foreach (var command in CommandCatalog.Create())
        {
            root.Subcommands.Add(command);
        }
        return root.Parse(args).Invoke();
    }
}
