using System;
using System.Collections;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Text;

namespace IlgpuOct.Kernels.Generator;

/// <summary>An immutable array compared by value, so pipeline outputs cache correctly.</summary>
internal readonly struct EquatableArray<T> : IEquatable<EquatableArray<T>>, IEnumerable<T> where T : IEquatable<T>
{
    private readonly T[]? _items;

    public EquatableArray(IEnumerable<T> items) => _items = items.ToArray();

    public int Count => _items?.Length ?? 0;

    public bool Equals(EquatableArray<T> other)
    {
        var a = _items ?? Array.Empty<T>();
        var b = other._items ?? Array.Empty<T>();
        if (a.Length != b.Length)
        {
            return false;
        }
        for (int i = 0; i < a.Length; i++)
        {
            if (!a[i].Equals(b[i]))
            {
                return false;
            }
        }
        return true;
    }

    public override bool Equals(object? obj) => obj is EquatableArray<T> other && Equals(other);

    public override int GetHashCode()
    {
        int hash = 17;
        foreach (var item in _items ?? Array.Empty<T>())
        {
            hash = unchecked(hash * 31 + item.GetHashCode());
        }
        return hash;
    }

    public IEnumerator<T> GetEnumerator() => ((IEnumerable<T>)(_items ?? Array.Empty<T>())).GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}

/// <summary>A diagnostic without Roslyn objects (locations as file/span), so it can be cached.</summary>
internal sealed class DiagnosticInfo : IEquatable<DiagnosticInfo>
{
    public DiagnosticInfo(DiagnosticDescriptor descriptor, Location? location, params string[] args)
    {
        Id = descriptor.Id;
        Args = string.Join("\u0001", args);
        if (location is not null && location.IsInSource)
        {
            FilePath = location.SourceTree?.FilePath ?? "";
            Span = location.SourceSpan;
            LineSpan = location.GetLineSpan().Span;
        }
    }

    public string Id { get; }

    public string Args { get; }

    public string? FilePath { get; }

    public TextSpan Span { get; }

    public LinePositionSpan LineSpan { get; }

    public Diagnostic ToDiagnostic()
    {
        var location = FilePath is null ? Location.None : Location.Create(FilePath, Span, LineSpan);
        object[] args = Args.Length == 0 ? Array.Empty<object>() : Args.Split('\u0001');
        return Diagnostic.Create(DiagnosticDescriptors.ById(Id), location, args);
    }

    public bool Equals(DiagnosticInfo? other) =>
        other is not null && Id == other.Id && Args == other.Args && FilePath == other.FilePath && Span == other.Span && LineSpan == other.LineSpan;

    public override bool Equals(object? obj) => Equals(obj as DiagnosticInfo);

    public override int GetHashCode() => unchecked(Id.GetHashCode() * 31 + Args.GetHashCode() * 7 + Span.GetHashCode());
}

/// <summary>What one [Kernel] method produces: the generated C# file (or nothing) and diagnostics. Pure strings.</summary>
internal sealed class KernelOutput : IEquatable<KernelOutput>
{
    public KernelOutput(string hintName, string? source, string? registration, IEnumerable<DiagnosticInfo> diagnostics)
    {
        HintName = hintName;
        Source = source;
        Registration = registration;
        Diagnostics = new EquatableArray<DiagnosticInfo>(diagnostics);
    }

    public string HintName { get; }

    /// <summary>The generated C# (launcher, definition, iterator); null when the kernel has errors.</summary>
    public string? Source { get; }

    /// <summary>Fully qualified expression of the definition for the module initializer, or null.</summary>
    public string? Registration { get; }

    public EquatableArray<DiagnosticInfo> Diagnostics { get; }

    public bool Equals(KernelOutput? other) =>
        other is not null && HintName == other.HintName && Source == other.Source && Registration == other.Registration && Diagnostics.Equals(other.Diagnostics);

    public override bool Equals(object? obj) => Equals(obj as KernelOutput);

    public override int GetHashCode() => unchecked(HintName.GetHashCode() * 31 + (Source?.GetHashCode() ?? 0));
}
