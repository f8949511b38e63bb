namespace IlgpuOct.Kernels;

/// <summary>
/// One more kernel from the body of a <see cref="KernelAttribute"/> method: the generator translates the
/// same body again with the named <c>const</c> fields replaced by the given values inside that body (not
/// in the helpers it calls), and emits it as its own kernel <c>{Name}</c> (launcher <c>{Name}Kernel</c>,
/// own CUDA entry point, launch bounds, static shared memory and cpu-kernels copy with the same values).
/// A tile shape per problem size thus costs an attribute, not a second copy of the kernel.
/// <example><c>[KernelVariant("Gemm2Tiled64", nameof(TiledPer), 4, nameof(TiledK), 16)]</c></example>
/// Overrides are pairs of a const field name of the kernel's class and an int or bool value. A helper
/// that reads an overridden constant, a constant in the body derived from one, an unknown name or a
/// name the body never reads is error IOCT0050: pass such values to helpers as arguments.
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = true, Inherited = false)]
public sealed class KernelVariantAttribute : Attribute
{
    /// <param name="name">The variant's kernel name (an identifier, unique in the class).</param>
    /// <param name="constantOverrides">Alternating const field names (<c>nameof</c>) and their values in this variant.</param>
    public KernelVariantAttribute(string name, params object[] constantOverrides)
    {
        Name = name;
        ConstantOverrides = constantOverrides;
    }

    /// <summary>The variant's kernel name.</summary>
    public string Name { get; }

    /// <summary>Alternating const field names and values.</summary>
    public IReadOnlyList<object> ConstantOverrides { get; }

    /// <summary>This variant's <see cref="KernelAttribute.MaxThreadsPerBlock"/>; 0: the kernel's.</summary>
    public int MaxThreadsPerBlock { get; set; }

    /// <summary>This variant's <see cref="KernelAttribute.MinBlocksPerMultiprocessor"/>; 0: the kernel's.</summary>
    public int MinBlocksPerMultiprocessor { get; set; }
}
