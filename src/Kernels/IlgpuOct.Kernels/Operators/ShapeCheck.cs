namespace IlgpuOct.Kernels.Operators;

/// <summary>The argument check every operator makes on its buffers, with one message format.</summary>
internal static class ShapeCheck
{
    /// <summary>Throws when a buffer's element count does not match what the operator's shape record needs.</summary>
    public static void RequireLength(string operatorName, string shapeType, int actual, int expected, string name, string layout)
    {
        if (actual != expected)
        {
            throw new ArgumentException($"{operatorName}: {name} has {actual} elements but the shape needs {expected} {layout}; allocate it from the same {shapeType}.", name);
        }
    }
}
