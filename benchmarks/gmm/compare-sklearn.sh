#!/usr/bin/env bash
# EM for a full-covariance Gaussian mixture: scikit-learn vs `ilgpuoct bench gmm`, same data, same
# start (equal weights, K data points as means, identity precisions), same number of iterations.
# Usage: benchmarks/gmm/compare-sklearn.sh [--device cpu|cuda] [--n 4000] [--d 512] [--k 4] [--iters 20] [--openblas]
# Debian's numpy uses whatever libblas.so.3 the system selects (the reference BLAS unless an
# optimised one is installed); --openblas runs scikit-learn with OpenBLAS from
# libopenblas0-pthread through LD_LIBRARY_PATH without changing the system default.
set -euo pipefail
device=cpu; n=4000; d=512; k=4; iters=20; openblas=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --device) device="$2"; shift 2 ;;
    --n) n="$2"; shift 2 ;;
    --d) d="$2"; shift 2 ;;
    --k) k="$2"; shift 2 ;;
    --iters) iters="$2"; shift 2 ;;
    --openblas) openblas=/usr/lib/x86_64-linux-gnu/openblas-pthread; shift ;;
    *) echo "unknown argument $1 (use --device, --n, --d, --k, --iters, --openblas)" >&2; exit 2 ;;
  esac
done
root="$(cd "$(dirname "$0")/../.." && pwd)"
python=/usr/bin/python3
if ! "$python" -c "import sklearn" 2>/dev/null; then
  echo "installing python3-sklearn (Debian package)" >&2
  if [[ $(id -u) -eq 0 ]]; then apt-get install -y python3-sklearn >&2; else sudo apt-get install -y python3-sklearn >&2; fi
fi
if [[ -n "$openblas" && ! -e "$openblas/libblas.so.3" ]]; then
  echo "--openblas: $openblas/libblas.so.3 is missing; install it with: apt-get install libopenblas0-pthread" >&2
  exit 2
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
dotnet build "$root/src/Cli/IlgpuOct.Cli.csproj" -c Release -v q >&2
echo "== scikit-learn" >&2
LD_LIBRARY_PATH="${openblas}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$python" "$root/benchmarks/gmm/sklearn_em.py" --n "$n" --d "$d" --k "$k" --iters "$iters" --write-data "$work/data.safetensors" | tee "$work/sklearn.json"
echo "== ilgpuoct bench gmm --device $device" >&2
dotnet "$root/src/Cli/bin/Release/net10.0/ilgpuoct.dll" bench gmm --device "$device" --data "$work/data.safetensors" --iters "$iters" --json | tee "$work/ilgpuoct.json"
"$python" - "$work/sklearn.json" "$work/ilgpuoct.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
print(f"scikit-learn ({a['blas']}): {a['seconds']:.3f} s ({a['seconds_per_iteration']:.4f} s/iteration), lower bound {a['lower_bound']!r}")
print(f"ilgpuoct {b['device']}: {b['seconds']:.3f} s ({b['seconds_per_iteration']:.4f} s/iteration), lower bound {b['lower_bound']!r}")
print(f"lower-bound relative difference {abs(a['lower_bound'] - b['lower_bound']) / abs(a['lower_bound']):.3g}; speed ratio sklearn/ilgpuoct {a['seconds'] / b['seconds']:.2f}")
PY
