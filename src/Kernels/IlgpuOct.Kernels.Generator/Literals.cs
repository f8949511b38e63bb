using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text;
using System.Threading;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace IlgpuOct.Kernels.Generator;

/// <summary>Constant values as CUDA C literals of the target type (exact round-trip text).</summary>
internal static class Literals
{
    public static string? Format(object value, ITypeSymbol? target)
    {
        var special = target?.SpecialType ?? SpecialType.None;
        try
        {
            switch (special)
            {
                case SpecialType.System_Single:
                    return Float(Convert.ToSingle(value, CultureInfo.InvariantCulture));
                case SpecialType.System_Double:
                    return Double(Convert.ToDouble(value, CultureInfo.InvariantCulture));
                case SpecialType.System_Int32:
                    {
                        int v = Convert.ToInt32(value, CultureInfo.InvariantCulture);
                        return v == int.MinValue ? "(-2147483647 - 1)" : v < 0 ? "(" + v.ToString(CultureInfo.InvariantCulture) + ")" : v.ToString(CultureInfo.InvariantCulture);
                    }
                case SpecialType.System_UInt32:
                    return Convert.ToUInt32(value, CultureInfo.InvariantCulture).ToString(CultureInfo.InvariantCulture) + "u";
                case SpecialType.System_Int64:
                    {
                        long v = Convert.ToInt64(value, CultureInfo.InvariantCulture);
                        return v == long.MinValue ? "(-9223372036854775807LL - 1LL)" : v < 0 ? "(" + v.ToString(CultureInfo.InvariantCulture) + "LL)" : v.ToString(CultureInfo.InvariantCulture) + "LL";
                    }
                case SpecialType.System_UInt64:
                    return Convert.ToUInt64(value, CultureInfo.InvariantCulture).ToString(CultureInfo.InvariantCulture) + "ULL";
                case SpecialType.System_Byte:
                    return "((unsigned char)" + Convert.ToByte(value, CultureInfo.InvariantCulture).ToString(CultureInfo.InvariantCulture) + ")";
                case SpecialType.System_Boolean:
                    return (bool)value ? "true" : "false";
                default:
                    return null;
            }
        }
        catch (InvalidCastException)
        {
            return null;
        }
        catch (OverflowException)
        {
            return null;
        }
    }

    public static string Float(float v)
    {
        if (float.IsNaN(v))
        {
            // The payload and sign of the C# constant (float.NaN is 0xFFC00000 in .NET), not CUDA's canonical NaN.
            uint bits = BitConverter.ToUInt32(BitConverter.GetBytes(v), 0);
            return "__int_as_float((int)0x" + bits.ToString("x8", CultureInfo.InvariantCulture) + "u)";
        }
        if (float.IsPositiveInfinity(v))
        {
            return "__int_as_float(0x7f800000)";
        }
        if (float.IsNegativeInfinity(v))
        {
            return "__int_as_float((int)0xff800000)";
        }
        string s = v.ToString("R", CultureInfo.InvariantCulture);
        if (s.IndexOfAny(new[] { '.', 'E', 'e' }) < 0)
        {
            s += ".0";
        }
        s += "f";
        return v < 0 || s.StartsWith("-", StringComparison.Ordinal) ? "(" + s + ")" : s;
    }

    public static string Double(double v)
    {
        if (double.IsNaN(v))
        {
            ulong bits = BitConverter.ToUInt64(BitConverter.GetBytes(v), 0);
            return "__longlong_as_double((long long)0x" + bits.ToString("x16", CultureInfo.InvariantCulture) + "ULL)";
        }
        if (double.IsPositiveInfinity(v))
        {
            return "__longlong_as_double(0x7ff0000000000000LL)";
        }
        if (double.IsNegativeInfinity(v))
        {
            return "__longlong_as_double((long long)0xfff0000000000000ULL)";
        }
        string s = v.ToString("R", CultureInfo.InvariantCulture);
        if (s.IndexOfAny(new[] { '.', 'E', 'e' }) < 0)
        {
            s += ".0";
        }
        return v < 0 || s.StartsWith("-", StringComparison.Ordinal) ? "(" + s + ")" : s;
    }
}
