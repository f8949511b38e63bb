using System.CommandLine;
using System.Globalization;
using System.Numerics;

namespace IlgpuOct.Cli;

/// <summary>
/// Parse-time checks of option values: a value out of range (or not finite) is a parse error, so
/// the verb never starts and the message names the option, the value and the accepted range.
/// </summary>
internal static class OptionRules
{
    public static Option<T> InRange<T>(this Option<T> option, T min, T max)
        where T : struct, INumber<T>
    {
        option.Validators.Add(result =>
        {
            T value = result.GetValueOrDefault<T>();
            if (T.IsNaN(value) || value < min || value > max)
            {
                result.AddError($"{option.Name} must be in {Text(min)}..{Text(max)}; got {Text(value)}.");
            }
        });
        return option;
    }

    public static Option<T?> InRange<T>(this Option<T?> option, T min, T max)
        where T : struct, INumber<T>
    {
        option.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<T?>() is T value && (T.IsNaN(value) || value < min || value > max))
            {
                result.AddError($"{option.Name} must be in {Text(min)}..{Text(max)}; got {Text(value)}.");
            }
        });
        return option;
    }

    /// <summary>Every element of a list option in [min, max].</summary>
    public static Option<T[]> EachInRange<T>(this Option<T[]> option, T min, T max)
        where T : struct, INumber<T>
    {
        option.Validators.Add(result =>
        {
            foreach (T value in result.GetValueOrDefault<T[]>() ?? [])
            {
                if (T.IsNaN(value) || value < min || value > max)
                {
                    result.AddError($"every value of {option.Name} must be in {Text(min)}..{Text(max)}; got {Text(value)}.");
                    return;
                }
            }
        });
        return option;
    }

    /// <summary>A check over several options of a command (a product that must fit, a pair that must agree).</summary>
    public static void Require(this Command command, Func<System.CommandLine.Parsing.CommandResult, string?> check)
    {
        command.Validators.Add(result =>
        {
            string? error;
            try
            {
                error = check(result);
            }
            catch (InvalidOperationException)
            {
                return; // an option did not parse: the parser reports that error itself
            }
            if (error is not null)
            {
                result.AddError(error);
            }
        });
    }

    private static string Text<T>(T value)
        where T : INumber<T> => value is IFormattable f ? f.ToString(null, CultureInfo.InvariantCulture) : value.ToString() ?? "";
}
