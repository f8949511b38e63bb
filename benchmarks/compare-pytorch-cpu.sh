#!/usr/bin/env bash
# The cpu engine against PyTorch on the CPU (Debian's build: oneDNN, OpenBLAS), ONNX Runtime
# (inference) and scikit-learn (EM), measured fairly: before EACH measurement the machine must be
# quiet (1-minute load average, less this script's own recent runs, below --max-load, and no other
# process above --max-process-cpu % of a CPU), else it waits up to --wait seconds and refuses;
# engines alternate (ours, PyTorch, ours, PyTorch, ...) for --pairs pairs; it prints a markdown
# table (median, min-max, ratio) and writes JSON with the PyTorch build, the BLAS actually loaded,
# the CPU model, its SIMD width, the thread counts and the load before every measurement.
#
# Rows: training step at 64x64 and 224x224 (batch 32, 1 channel, 4 classes, width 64), eval-mode
# inference at both (needs `ilgpuoct bench infer --engine cpu|onnxruntime`; skipped with a note when
# the build lacks it), PGD-10 at 64x64 (same model and step rule as `ilgpuoct bench pgd`), EM of a
# full-covariance mixture 4000x512, K=4, 10 iterations (scikit-learn GaussianMixture).
#
# Usage: benchmarks/compare-pytorch-cpu.sh [--quick] [--pairs 5] [--threads 2] [--max-load 0.6]
#          [--max-process-cpu 10] [--wait 600] [--only train,infer,pgd,gmm] [--json FILE] [--no-build]
# --quick is a smoke test (1 pair, batch 8, 64x64 only, tiny EM); its figures mean nothing.
# A --max-load above 0.6 (or --max-process-cpu above 10) marks the figures LOADED.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
json="$root/benchmarks/compare-pytorch-cpu.json"
build=1
pass=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --json) json="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    --quick|--swap-order) pass+=("$1"); shift ;;
    --pairs|--threads|--batch|--max-load|--max-process-cpu|--wait|--only) pass+=("$1" "$2"); shift 2 ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

# Debian's packages install into the system interpreter (/usr/bin/python3), which a pyenv shim may hide.
py=""
for candidate in /usr/bin/python3 python3; do
  if command -v "$candidate" >/dev/null && "$candidate" -c "import torch, torchvision, sklearn" 2>/dev/null; then
    py="$candidate"; break
  fi
done
if [[ -z "$py" ]]; then
  echo "no python3 imports torch, torchvision and sklearn; install them with: apt-get install python3-torch python3-torchvision python3-sklearn libopenblas0-pthread" >&2
  exit 2
fi

if [[ $build -eq 1 ]]; then
  dotnet build "$root/src/Cli" -c Release -v q >&2
fi
exec "$py" "$here/compare_pytorch_cpu.py" --python "$py" --ours-dll "$root/src/Cli/bin/Release/net10.0/ilgpuoct.dll" --json "$json" "${pass[@]}"
