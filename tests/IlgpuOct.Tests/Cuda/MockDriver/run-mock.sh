#!/usr/bin/env bash
# Builds the mock libcuda.so.1 and runs the CUDA tests and `ilgpuoct devices` against it, so the
# driver binding's marshalling (handles, 8-byte argument slots, JIT options, context binding) is
# exercised without a GPU. Needs gcc and a built test project. Usage: [CONFIGURATION=Release] run-mock.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../../.." && pwd)"
config="${CONFIGURATION:-Debug}"
lib="$(mktemp -d)"
trap 'rm -rf "$lib"' EXIT
gcc -shared -fPIC -O1 -Wall -Wl,-soname,libcuda.so.1 -o "$lib/libcuda.so.1" "$here/mock_cuda.c"
export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export ILGPUOCT_CACHE="$lib/cache"
dotnet test "$root/tests/IlgpuOct.Tests" -c "$config" --no-build --filter "FullyQualifiedName~IlgpuOct.Tests.Cuda.&FullyQualifiedName!~AllKernels"
"$root/src/Cli/bin/$config/net10.0/ilgpuoct" devices
# Generated launchers end to end (upload, float scalar + view slots, download, compare with the CPU):
"$root/src/Cli/bin/$config/net10.0/ilgpuoct" selftest --device cuda --filter Elementwise.Axpy
"$root/src/Cli/bin/$config/net10.0/ilgpuoct" selftest --device cuda --filter Elementwise.Scale
