using System.Numerics;

namespace IlgpuOct.Kernels.Cpu;

/// <summary>
/// The float64 register-blocked GEMM micro-kernel (3 rows x 4 vectors) of the host engines: the float64
/// mixture path (scikit-learn's precision) builds its Gram matrices and Mahalanobis products on it.
/// The float32 GEMM is <see cref="SgemmEngine"/>.
/// </summary>
public static class DgemmMicroKernel
{
    /// <summary>A 3 x 4-vector tile of float64 accumulators.</summary>
    public struct RegisterTile
    {
        public Vector<double> R00, R01, R02, R03, R10, R11, R12, R13, R20, R21, R22, R23;
    }

    /// <summary>
    /// tile[r][v] = sum_{k in [k0, k1)} a[o_r + k * aStep] * b[k * ldb + j0 + v * Vector.Count ..] for r &lt; 3,
    /// v &lt; 4: rows of A read with any stride (row- or column-major), B rows contiguous and padded to 4 vectors.
    /// The accumulators stay locals so the JIT keeps them in registers; the tile is written once at the end.
    /// </summary>
    public static void MultiplyTile(double[] a, int o0, int o1, int o2, int aStep, double[] b, int ldb, int j0, int k0, int k1, out RegisterTile tile)
    {
        int vc = Vector<double>.Count;
        Vector<double> a00 = default, a01 = default, a02 = default, a03 = default;
        Vector<double> a10 = default, a11 = default, a12 = default, a13 = default;
        Vector<double> a20 = default, a21 = default, a22 = default, a23 = default;
        var bSpan = b.AsSpan();
        for (int k = k0; k < k1; k++)
        {
            var bRow = bSpan.Slice(k * ldb + j0, 4 * vc);
            var b0 = new Vector<double>(bRow);
            var b1 = new Vector<double>(bRow[vc..]);
            var b2 = new Vector<double>(bRow[(2 * vc)..]);
            var b3 = new Vector<double>(bRow[(3 * vc)..]);
            int ka = k * aStep;
            var x0 = new Vector<double>(a[o0 + ka]);
            var x1 = new Vector<double>(a[o1 + ka]);
            var x2 = new Vector<double>(a[o2 + ka]);
            a00 = Vector.FusedMultiplyAdd(x0, b0, a00);
            a01 = Vector.FusedMultiplyAdd(x0, b1, a01);
            a02 = Vector.FusedMultiplyAdd(x0, b2, a02);
            a03 = Vector.FusedMultiplyAdd(x0, b3, a03);
            a10 = Vector.FusedMultiplyAdd(x1, b0, a10);
            a11 = Vector.FusedMultiplyAdd(x1, b1, a11);
            a12 = Vector.FusedMultiplyAdd(x1, b2, a12);
            a13 = Vector.FusedMultiplyAdd(x1, b3, a13);
            a20 = Vector.FusedMultiplyAdd(x2, b0, a20);
            a21 = Vector.FusedMultiplyAdd(x2, b1, a21);
            a22 = Vector.FusedMultiplyAdd(x2, b2, a22);
            a23 = Vector.FusedMultiplyAdd(x2, b3, a23);
        }
        tile = new RegisterTile
        {
            R00 = a00, R01 = a01, R02 = a02, R03 = a03,
            R10 = a10, R11 = a11, R12 = a12, R13 = a13,
            R20 = a20, R21 = a21, R22 = a22, R23 = a23,
        };
    }
}
