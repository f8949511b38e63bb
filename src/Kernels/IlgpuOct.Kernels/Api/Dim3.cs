namespace IlgpuOct.Kernels;

/// <summary>A CUDA-style 3-d extent or index (x fastest).</summary>
public readonly record struct Dim3(int X, int Y = 1, int Z = 1)
{
    public long Volume => (long)X * Y * Z;

    public static implicit operator Dim3(int x) => new(x);

    public override string ToString() => Y == 1 && Z == 1 ? $"{X}" : $"({X},{Y},{Z})";
}
