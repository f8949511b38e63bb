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

/// <summary>Names: C-safe identifiers and containing-type chains.</summary>
internal static class Names
{
    private static readonly HashSet<string> Reserved = new(StringComparer.Ordinal)
    {
        "auto", "register", "signed", "unsigned", "union", "typedef", "inline", "restrict", "template", "typename", "friend",
        "mutable", "export", "asm", "and", "or", "not", "xor", "bitand", "bitor", "compl", "not_eq", "or_eq", "xor_eq", "and_eq",
        "constexpr", "decltype", "noexcept", "nullptr", "static_assert", "thread_local", "alignas", "alignof", "wchar_t",
        "char16_t", "char32_t", "dynamic_cast", "reinterpret_cast", "static_cast", "const_cast", "typeid", "main",
        "threadIdx", "blockIdx", "blockDim", "gridDim", "warpSize", "min", "max", "abs", "signbit", "isnan", "isinf",
    };

    public static string Local(string name)
    {
        var s = Sanitize(name);
        return Reserved.Contains(s) || s.StartsWith("ioct_", StringComparison.Ordinal) || s.StartsWith("__", StringComparison.Ordinal) ? s + "_" : s;
    }

    public static string Sanitize(string name)
    {
        var sb = new StringBuilder(name.Length);
        foreach (char ch in name)
        {
            if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_')
            {
                sb.Append(ch);
            }
            else
            {
                sb.Append("_u").Append(((int)ch).ToString("x4", CultureInfo.InvariantCulture));
            }
        }
        return sb.ToString();
    }

    public static IEnumerable<string> ContainingTypes(INamedTypeSymbol type)
    {
        var chain = new List<string>();
        for (var t = type; t is not null; t = t.ContainingType)
        {
            chain.Insert(0, t.Name);
        }
        return chain;
    }
}
