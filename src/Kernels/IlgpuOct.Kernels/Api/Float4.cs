namespace IlgpuOct.Kernels;

/// <summary>
/// Four floats moved as one 128-bit access: <see cref="LoadAligned"/> is one <c>ld.global.v4.f32</c>
/// on the GPU (a <c>struct __align__(16) ioct_float4</c> in CUDA C). The element index must be a
/// multiple of 4 and the view's start 16-byte aligned; launchers check the start (and row strides)
/// with <see cref="IsAligned"/> and take a scalar path otherwise, and <c>cpu-kernels</c> fails any
/// misaligned call with the index, so a launcher that forgets the check fails its tests.
/// </summary>
public readonly struct Float4
{
    public readonly float X;
    public readonly float Y;
    public readonly float Z;
    public readonly float W;

    private Float4(float x, float y, float z, float w)
    {
        X = x;
        Y = y;
        Z = z;
        W = w;
    }

    /// <summary>v[index .. index + 3] in one access; index % 4 == 0 and a 16-byte-aligned view.</summary>
    public static Float4 LoadAligned(View<float> v, int index)
    {
        CheckAligned(v, index, nameof(LoadAligned));
        return new Float4(v[index], v[index + 1], v[index + 2], v[index + 3]);
    }

    /// <summary>Writes x, y, z, w to v[index .. index + 3] in one access; same alignment rules as <see cref="LoadAligned"/>.</summary>
    public static void StoreAligned(View<float> v, int index, float x, float y, float z, float w)
    {
        CheckAligned(v, index, nameof(StoreAligned));
        v[index] = x;
        v[index + 1] = y;
        v[index + 2] = z;
        v[index + 3] = w;
    }

    /// <summary>
    /// True when every row of a matrix in <paramref name="v"/> with row stride <paramref name="ld"/>
    /// starts 16-byte aligned: the view's start is aligned and ld is a multiple of 4 (host views: an
    /// element offset that is a multiple of 4 in their array, the alignment device buffers have).
    /// </summary>
    public static bool IsAligned(View<float> v, int ld)
    {
        if (ld % 4 != 0)
        {
            return false;
        }
        return v.HostArray is not null ? v.HostOffset % 4 == 0 : v.DevicePointer % 16 == 0;
    }

    private static void CheckAligned(View<float> v, int index, string call)
    {
        if (index % 4 != 0 || (v.HostArray is not null && v.HostOffset % 4 != 0))
        {
            throw new InvalidOperationException(
                $"Float4.{call} at element {index} of a view starting at element {v.HostOffset} of its array is not 16-byte aligned: the launcher must check Float4.IsAligned and take the scalar path.");
        }
        if ((uint)index > (uint)(v.Length - 4))
        {
            throw new IndexOutOfRangeException($"Float4.{call} reads elements {index}..{index + 3} of a view of {v.Length}.");
        }
    }
}
