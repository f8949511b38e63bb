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

/// <summary>
/// Names: C-safe identifiers and containing-type chains. A user identifier keeps its spelling when it is
/// "ordinary" (ASCII, not a C/C++/CUDA keyword or a function the generated code calls, not starting with
/// <c>ioct</c> or <c>__</c>, not ending with <c>_</c> or <c>_length</c>); any other gets a trailing <c>_</c>. Generated
/// names start with <c>ioct</c> and never end with <c>_</c>, and length companions end with <c>_length</c>,
/// so the mapping is one-to-one and no user name can alias a generated or reserved one.
/// </summary>
internal static class Names
{
    public const string LengthSuffix = "_length";

    private static readonly HashSet<string> Reserved = new(new[]
    {
        // C and C++ keywords and alternative tokens (C# allows most of them as identifiers, some with @).
        "alignas", "alignof", "and", "and_eq", "asm", "auto", "bitand", "bitor", "bool", "break", "case", "catch", "char",
        "char8_t", "char16_t", "char32_t", "class", "compl", "concept", "const", "consteval", "constexpr", "constinit",
        "const_cast", "continue", "co_await", "co_return", "co_yield", "decltype", "default", "delete", "do", "double",
        "dynamic_cast", "else", "enum", "explicit", "export", "extern", "false", "float", "for", "friend", "goto", "if",
        "inline", "int", "long", "mutable", "namespace", "new", "noexcept", "not", "not_eq", "nullptr", "operator", "or",
        "or_eq", "private", "protected", "public", "register", "reinterpret_cast", "requires", "restrict", "return", "short",
        "signed", "sizeof", "static", "static_assert", "static_cast", "struct", "switch", "template", "this", "thread_local",
        "throw", "true", "try", "typedef", "typeid", "typename", "union", "unsigned", "using", "virtual", "void", "volatile",
        "wchar_t", "while", "xor", "xor_eq", "main", "NULL", "size_t", "ptrdiff_t",
        // CUDA built-ins, vector types and functions the generated code or CUDA's own headers use.
        "threadIdx", "blockIdx", "blockDim", "gridDim", "warpSize", "dim3", "min", "max", "abs", "signbit", "isnan", "isinf",
        "isfinite", "fmodf", "fmod", "fminf", "fmaxf", "fmin", "fmax", "atomicAdd", "atomicSub", "atomicMin", "atomicMax",
        "atomicCAS", "atomicExch", "atomicAnd", "atomicOr", "atomicXor", "atomicInc", "atomicDec", "asm", "printf", "malloc",
        "free", "memcpy", "memset", "assert", "clock", "clock64",
        "char1", "char2", "char3", "char4", "uchar1", "uchar2", "uchar3", "uchar4", "short1", "short2", "short3", "short4",
        "ushort1", "ushort2", "ushort3", "ushort4", "int1", "int2", "int3", "int4", "uint1", "uint2", "uint3", "uint4",
        "long1", "long2", "long3", "long4", "ulong1", "ulong2", "ulong3", "ulong4", "longlong1", "longlong2", "ulonglong1",
        "ulonglong2", "float1", "float2", "float3", "float4", "double1", "double2", "double3", "double4", "half", "half2",
    }.Concat(IntrinsicMap.CudaNames), StringComparer.Ordinal);

    /// <summary>The CUDA C spelling of a user identifier (local or parameter); see the class summary.</summary>
    public static string Local(string name)
    {
        if (!IsPlainAscii(name))
        {
            // Escape '_' too so the spelling is one-to-one; the 'ioctx_' head and '_x' tail keep it apart from the rest.
            return "ioctx_" + Escape(name, escapeUnderscore: true) + "_x";
        }
        // '__' names belong to C++ and CUDA (__syncthreads, __global__, __shfl_sync).
        bool ordinary = !Reserved.Contains(name) && !name.StartsWith("ioct", StringComparison.Ordinal) && !name.StartsWith("__", StringComparison.Ordinal)
            && !name.EndsWith("_", StringComparison.Ordinal) && !name.EndsWith(LengthSuffix, StringComparison.Ordinal);
        return ordinary ? name : name + "_";
    }

    /// <summary>The length companion of an array-like name (view parameter, dynamic shared memory).</summary>
    public static string Length(string cudaName) => cudaName + LengthSuffix;

    private static bool IsPlainAscii(string name) =>
        name.All(ch => (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_');

    public static string Sanitize(string name) => Escape(name, escapeUnderscore: false);

    private static string Escape(string name, bool escapeUnderscore)
    {
        var sb = new StringBuilder(name.Length);
        foreach (char ch in name)
        {
            if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || (ch == '_' && !escapeUnderscore))
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

    /// <summary>The CUDA entry point: namespace, containing types and method, so no two kernels share a symbol.</summary>
    public static string EntryPoint(INamespaceSymbol ns, IEnumerable<string> types, string method)
    {
        var parts = new List<string>();
        if (!ns.IsGlobalNamespace)
        {
            parts.AddRange(ns.ToDisplayString().Split('.'));
        }
        parts.AddRange(types);
        parts.Add(method);
        string name = "ioct_" + Sanitize(string.Join("_", parts));
        return name.EndsWith("_", StringComparison.Ordinal) ? name + "k" : name;
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
