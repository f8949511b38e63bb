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

/// <summary>C# types of the kernel language and their CUDA C spellings.</summary>
internal static class TypeFacts
{
    public static bool IsKernelContext(ITypeSymbol? t) => t?.ToDisplayString() == CudaTranslator.KernelsNamespace + ".KernelContext";

    public static ITypeSymbol? ViewElement(ITypeSymbol t) =>
        t is INamedTypeSymbol { IsGenericType: true, Name: "View", TypeArguments.Length: 1 } n && n.ContainingNamespace.ToDisplayString() == CudaTranslator.KernelsNamespace
            ? n.TypeArguments[0] : null;

    public static ITypeSymbol? SpanElement(ITypeSymbol t) =>
        t is INamedTypeSymbol { IsGenericType: true, Name: "Span" or "ReadOnlySpan", TypeArguments.Length: 1 } n && n.ContainingNamespace.ToDisplayString() == "System"
            ? n.TypeArguments[0] : null;

    public static string? ScalarCType(ITypeSymbol t) => t.SpecialType switch
    {
        SpecialType.System_Single => "float",
        SpecialType.System_Double => "double",
        SpecialType.System_Int32 => "int",
        SpecialType.System_UInt32 => "unsigned int",
        SpecialType.System_Int64 => "long long",
        SpecialType.System_UInt64 => "unsigned long long",
        SpecialType.System_Byte => "unsigned char",
        SpecialType.System_Boolean => "bool",
        _ => null,
    };

    /// <summary>Kernel scalar parameters (what the launcher can pack).</summary>
    public static string? ParameterCType(ITypeSymbol t) => t.SpecialType switch
    {
        SpecialType.System_Single or SpecialType.System_Double or SpecialType.System_Int32 or SpecialType.System_UInt32
            or SpecialType.System_Int64 or SpecialType.System_Boolean => ScalarCType(t),
        _ => null,
    };

    public static string? ViewElementCType(ITypeSymbol t) => t.SpecialType switch
    {
        SpecialType.System_Single or SpecialType.System_Double or SpecialType.System_Int32 or SpecialType.System_UInt32
            or SpecialType.System_Int64 or SpecialType.System_Byte => ScalarCType(t),
        _ => null,
    };

    /// <summary>The kernel API's 128-bit vector (<c>IlgpuOct.Kernels.Float4</c>): a local, helper parameter or return value, never a view element.</summary>
    public static bool IsFloat4(ITypeSymbol? t) => t?.ToDisplayString() == CudaTranslator.KernelsNamespace + ".Float4";

    /// <summary>The CUDA spelling of <see cref="IsFloat4"/> (defined by the prelude piece "float4").</summary>
    public const string Float4CType = "ioct_float4";

    public static int SizeOf(ITypeSymbol t) => t.SpecialType switch
    {
        SpecialType.System_Double or SpecialType.System_Int64 or SpecialType.System_UInt64 => 8,
        SpecialType.System_Byte or SpecialType.System_Boolean => 1,
        _ => 4,
    };
}
