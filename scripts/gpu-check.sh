#!/usr/bin/env bash
# Everything a GPU machine can tell about ilgpuoct, in one command, within a time budget (default
# 480 s): writes OUTDIR/gpu-report.json and OUTDIR/gpu-report.md, plus each step's raw output under
# OUTDIR/steps/. Each step has its own timeout; a failed, timed-out or skipped step is recorded with
# its reason and the report is still written.
#
# Steps: devices; selftest --device cuda; verify --golden (the golden operator checks) on cuda;
# kernels report for the device's architecture; bench gemm beside torch.matmul FP32 (TF32 off) on the
# same shapes, and bench gemm --precision tf32 beside torch.matmul with TF32 on; bench train at 64x64 and 224x224 beside PyTorch eager FP32 (TF32 off) and AMP; EM
# beside scikit-learn (same data and start; skipped with a note without scikit-learn); PGD-10
# images/s beside a plain PyTorch PGD loop; profile train on cuda. Every ratio is measured in this run.
#
# Needs: the self-contained build of scripts/publish-gpu.sh (no .NET), the NVIDIA driver and NVRTC,
# python3; PyTorch with CUDA for the comparisons (skipped without it).
#
# Usage: scripts/gpu-check.sh OUTDIR
# Environment: ILGPUOCT_BIN   the ilgpuoct command (default publish/linux-x64/ilgpuoct beside this script;
#                             may be a command line such as "dotnet src/Cli/bin/Release/net10.0/ilgpuoct.dll")
#              ILGPUOCT_GOLDEN  golden folder (default ../shared/golden from the repository root)
#              GPU_CHECK_BUDGET seconds for all steps (default 480); PYTHON (default python3)
set -uo pipefail
if [[ $# -ne 1 ]]; then
  echo "usage: $0 OUTDIR" >&2
  exit 2
fi
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$1"
mkdir -p "$out/steps" || exit 2
out="$(cd "$out" && pwd)"
read -r -a bin <<<"${ILGPUOCT_BIN:-$root/publish/linux-x64/ilgpuoct}"
golden="${ILGPUOCT_GOLDEN:-$root/../shared/golden}"
python="${PYTHON:-python3}"
budget="${GPU_CHECK_BUDGET:-480}"
start=$(date +%s)
export CI=true # plain tables in the logs

# step NAME TIMEOUT COMMAND...: runs it with its own timeout (capped by the remaining budget) and
# records steps/NAME.{out,err,status}; status is "ok", "failed: ...", "timeout: ..." or "skipped: ...".
step() {
  local name="$1" limit="$2"
  shift 2
  local left=$(( budget - ($(date +%s) - start) ))
  if (( left < 5 )); then
    echo "skipped: the ${budget} s budget was used up before this step" >"$out/steps/$name.status"
    return 1
  fi
  (( limit > left )) && limit=$left
  echo "== $name (timeout ${limit} s): $*" >&2
  local t0=$(date +%s.%N)
  timeout --kill-after=5 "$limit" "$@" >"$out/steps/$name.out" 2>"$out/steps/$name.err"
  local rc=$?
  local seconds=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  echo "$seconds" >"$out/steps/$name.seconds"
  if (( rc == 0 )); then
    echo "ok" >"$out/steps/$name.status"
  elif (( rc == 124 || rc == 137 )); then
    echo "timeout: stopped after ${limit} s" >"$out/steps/$name.status"
  else
    echo "failed: exit $rc: $(grep -m1 -E 'error|Error|Traceback' "$out/steps/$name.err" | cut -c1-300)" >"$out/steps/$name.status"
  fi
  return $rc
}

skip() { echo "skipped: $2" >"$out/steps/$1.status"; }

have_torch=0
torch_reason="python3 not found"
if command -v "$python" >/dev/null; then
  if torch_reason=$("$python" -c 'import torch, torchvision; assert torch.cuda.is_available(), "torch.cuda.is_available() is False"' 2>&1); then
    have_torch=1
  else
    torch_reason="PyTorch with CUDA is not usable here: $(tail -n 1 <<<"$torch_reason")"
  fi
fi
have_sklearn=0
"$python" -c 'import sklearn' 2>/dev/null && have_sklearn=1

step devices 30 "${bin[@]}" devices --json
arch=$("$python" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(next(a["architecture"] for a in d["accelerators"] if a["id"]=="cuda" and a["architecture"]))' "$out/steps/devices.out" 2>/dev/null || true)

step selftest 120 "${bin[@]}" selftest --device cuda --json
if [[ -d "$golden" ]]; then
  step verify 90 "${bin[@]}" verify --golden "$golden" --device cuda --json
else
  skip verify "golden folder $golden not found (set ILGPUOCT_GOLDEN)"
fi
if [[ -n "$arch" ]]; then
  step kernels_report 120 "${bin[@]}" kernels report --arch "$arch" --json
else
  skip kernels_report "no cuda device architecture in the devices step"
fi

if step bench_gemm 90 "${bin[@]}" bench gemm --device cuda --shapes square --sizes 1024 2048 4096 --repeat 5 --json; then
  if (( have_torch )); then
    step torch_gemm 60 "$python" "$root/benchmarks/torch_gpu_bench.py" gemm --shapes-from "$out/steps/bench_gemm.out" --repeat 5
  else
    skip torch_gemm "$torch_reason"
  fi
else
  skip torch_gemm "bench gemm failed, so there are no shapes to compare"
fi

# The TF32 tensor-core variant against torch.matmul with TF32 on, same shapes.
if step bench_gemm_tf32 90 "${bin[@]}" bench gemm --device cuda --precision tf32 --shapes square --sizes 1024 2048 4096 --repeat 5 --json; then
  if (( have_torch )); then
    step torch_gemm_tf32 60 "$python" "$root/benchmarks/torch_gpu_bench.py" gemm --tf32 --shapes-from "$out/steps/bench_gemm_tf32.out" --repeat 5
  else
    skip torch_gemm_tf32 "$torch_reason"
  fi
else
  skip torch_gemm_tf32 "bench gemm --precision tf32 failed, so there are no shapes to compare"
fi

for res in 64 224; do
  if [[ $res == 64 ]]; then steps=10; warm=3; else steps=3; warm=1; fi
  step "bench_train_$res" 120 "${bin[@]}" bench train --device cuda --resolution "$res" --batch 64 --classes 2 --steps "$steps" --warmup "$warm" --json
  for mode in eager amp; do
    if (( have_torch )); then
      flag=(); [[ $mode == amp ]] && flag=(--amp)
      step "torch_train_${mode}_$res" 60 "$python" "$root/benchmarks/torch_gpu_bench.py" train --resolution "$res" --batch 64 --classes 2 --steps "$steps" --warmup "$warm" "${flag[@]}"
    else
      skip "torch_train_${mode}_$res" "$torch_reason"
    fi
  done
done

gmm_args=(--n 4000 --d 512 --k 4 --iters 20)
if (( have_sklearn )); then
  step sklearn_em 120 "$python" "$root/benchmarks/gmm/sklearn_em.py" "${gmm_args[@]}" --write-data "$out/steps/gmm-data.safetensors"
  if [[ -f "$out/steps/gmm-data.safetensors" ]]; then
    step bench_gmm 90 "${bin[@]}" bench gmm --device cuda --data "$out/steps/gmm-data.safetensors" --iters 20 --json
  else
    step bench_gmm 90 "${bin[@]}" bench gmm --device cuda "${gmm_args[@]}" --json
  fi
else
  skip sklearn_em "scikit-learn is not installed for $python (pip install scikit-learn); EM runs without a reference"
  step bench_gmm 90 "${bin[@]}" bench gmm --device cuda "${gmm_args[@]}" --json
fi

step bench_pgd 120 "${bin[@]}" bench pgd --device cuda --resolution 224 --batch 64 --pgd-steps 10 --repeat 2 --json
if (( have_torch )); then
  step torch_pgd 60 "$python" "$root/benchmarks/torch_gpu_bench.py" pgd --resolution 224 --batch 64 --pgd-steps 10 --repeat 2
else
  skip torch_pgd "$torch_reason"
fi

step profile_train 120 "${bin[@]}" profile train --device cuda --resolution 224 --batch 32 --steps 2 --warmup 1 --json --svg "$out/profile-train.svg"

"$python" "$root/scripts/gpu_check_report.py" "$out" "$(( $(date +%s) - start ))"
