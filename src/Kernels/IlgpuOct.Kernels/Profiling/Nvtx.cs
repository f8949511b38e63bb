using System.Runtime.InteropServices;
using System.Text;

namespace IlgpuOct.Kernels.Profiling;

/// <summary>NVTX ranges from libnvToolsExt.so.1 (the CUDA toolkit, or PyTorch's nvidia-nvtx wheel), so Nsight Systems names operator spans.</summary>
internal sealed unsafe class Nvtx
{
    private readonly delegate* unmanaged<byte*, int> _push;
    private readonly delegate* unmanaged<int> _pop;

    private Nvtx(delegate* unmanaged<byte*, int> push, delegate* unmanaged<int> pop)
    {
        _push = push;
        _pop = pop;
    }

    /// <summary>The library, or null with the reason when it cannot be loaded.</summary>
    public static Nvtx? TryLoad(out string reason)
    {
        foreach (string? name in new[] { Environment.GetEnvironmentVariable("ILGPUOCT_NVTX"), "libnvToolsExt.so.1", "libnvToolsExt.so", "/usr/local/cuda/lib64/libnvToolsExt.so.1" })
        {
            if (string.IsNullOrEmpty(name) || !NativeLibrary.TryLoad(name, out nint handle))
            {
                continue;
            }
            if (NativeLibrary.TryGetExport(handle, "nvtxRangePushA", out nint push) && NativeLibrary.TryGetExport(handle, "nvtxRangePop", out nint pop))
            {
                reason = name;
                return new Nvtx((delegate* unmanaged<byte*, int>)push, (delegate* unmanaged<int>)pop);
            }
        }
        reason = "libnvToolsExt.so.1 not found (set ILGPUOCT_NVTX to its path for Nsight Systems ranges)";
        return null;
    }

    public void Push(string name)
    {
        int count = Encoding.UTF8.GetByteCount(name);
        byte* text = stackalloc byte[count + 1];
        Encoding.UTF8.GetBytes(name, new Span<byte>(text, count));
        text[count] = 0;
        _push(text);
    }

    public void Pop() => _pop();
}
