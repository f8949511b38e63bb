#!/usr/bin/env bash
# Builds ilgpuoct as one self-contained Linux x64 file for GPU machines.
#
# The result (publish/linux-x64/ilgpuoct) needs no .NET install. On the GPU machine it needs only
#   - the NVIDIA driver (libcuda.so.1, e.g. driver 525+ for an H100), and
#   - NVRTC (libnvrtc.so.12 / .13 / .11.2 from the CUDA toolkit or a distribution package), found on
#     the loader path, in $CUDA_PATH/lib64, /usr/local/cuda/lib64, or named by ILGPUOCT_NVRTC=/path.
# Copy the file over and run:
#   ./ilgpuoct devices && ./ilgpuoct selftest --device cuda && ./ilgpuoct bench gemm --device cuda
# Useful there: ILGPUOCT_CUDA_SYNC=1 (wait after each launch so a fault names its kernel),
# ILGPUOCT_CUDA_DEVICE=N (pick a GPU), ILGPUOCT_CACHE=/dir (compiled-kernel cache; default
# ~/.cache/ilgpuoct/kernels), ILGPUOCT_NO_KERNEL_CACHE=1 (always compile).
#
# Usage: scripts/publish-gpu.sh [output-folder]   (default publish/linux-x64; fails above 60 MB)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/publish/linux-x64}"
limit_mb=60

cd "$root"
dotnet publish src/Cli -c Release -r linux-x64 --self-contained \
  -p:PublishSingleFile=true -p:EnableCompressionInSingleFile=true -p:IncludeNativeLibrariesForSelfExtract=true \
  -p:DebugType=none \
  -o "$out"

binary="$out/ilgpuoct"
if [[ ! -x "$binary" ]]; then
  echo "error: $binary was not produced" >&2
  exit 1
fi
bytes=$(stat -c %s "$binary")
mb=$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }')
echo "published $binary: $mb MB ($bytes bytes)"
if (( bytes > limit_mb * 1048576 )); then
  echo "error: $binary is $mb MB, above the $limit_mb MB limit; look for new dependencies or disabled trimming of resources" >&2
  exit 1
fi
