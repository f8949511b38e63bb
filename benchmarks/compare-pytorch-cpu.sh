#!/usr/bin/env bash
# Compares a full ResNet-18 training step (forward, cross-entropy, backward, SGD) in PyTorch on the
# CPU (2 threads) with `ilgpuoct bench train --device cpu`, at 64x64 and 224x224, batch 32,
# 1 input channel, 4 classes. Prints both images/s figures and their ratio (ours / PyTorch).
# Usage: benchmarks/compare-pytorch-cpu.sh [--batch 32] [--steps 5] [--warmup 2] [--resolutions "64 224"]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
batch=32
steps=5
warmup=2
resolutions="64 224"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --batch) batch="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --warmup) warmup="$2"; shift 2 ;;
    --resolutions) resolutions="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

# Debian's packages install into the system interpreter (/usr/bin/python3), which a pyenv shim may hide.
find_python() {
  for candidate in python3 /usr/bin/python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c "import torch, torchvision" 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  return 1
}
if ! py=$(find_python); then
  echo "installing Debian's python3-torch and python3-torchvision" >&2
  if [[ $(id -u) -eq 0 ]]; then apt-get install -y python3-torch python3-torchvision >&2
  else sudo apt-get install -y python3-torch python3-torchvision >&2; fi
  py=$(find_python) || { echo "torch is still not importable after the install" >&2; exit 1; }
fi

dotnet build "$root/src/Cli" -c Release -v q >&2
ours_bin="$root/src/Cli/bin/Release/net10.0/ilgpuoct.dll"

field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }

printf "%-10s %-6s %-16s %-16s %-8s\n" resolution batch "pytorch img/s" "ilgpuoct img/s" ratio
for r in $resolutions; do
  torch_json=$("$py" "$here/pytorch_train_step.py" --resolution "$r" --batch "$batch" --steps "$steps" --warmup "$warmup" --threads 2)
  ours_json=$(dotnet "$ours_bin" bench train --device cpu --resolution "$r" --batch "$batch" --width 64 --channels 1 --classes 4 --steps "$steps" --warmup "$warmup" --json 2>/dev/null)
  torch_ips=$(echo "$torch_json" | field images_per_second)
  ours_ips=$(echo "$ours_json" | field images_per_second)
  ratio=$(python3 -c "print(f'{$ours_ips / $torch_ips:.2f}')")
  printf "%-10s %-6s %-16.2f %-16.2f %-8s\n" "${r}x${r}" "$batch" "$torch_ips" "$ours_ips" "$ratio"
done
