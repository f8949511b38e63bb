#!/usr/bin/env bash
# Runs scripts/gpu-check.sh end to end against the mock libcuda.so.1 (tests/IlgpuOct.Tests/Cuda/MockDriver)
# with the built CLI, and checks that gpu-report.json and gpu-report.md are written and well formed:
# every step has a status, every step that is not ok says why, and the steps the mock can serve
# (devices, kernels report) are ok. Needs gcc, python3 and `dotnet build src/Cli -c Release`.
# Usage: scripts/gpu-check-mock.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
gcc -shared -fPIC -O1 -Wall -Wl,-soname,libcuda.so.1 -o "$work/libcuda.so.1" "$root/tests/IlgpuOct.Tests/Cuda/MockDriver/mock_cuda.c"
LD_LIBRARY_PATH="$work${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
ILGPUOCT_BIN="dotnet $root/src/Cli/bin/Release/net10.0/ilgpuoct.dll" \
ILGPUOCT_CACHE="$work/cache" \
  "$root/scripts/gpu-check.sh" "$work/report"
python3 - "$work/report" <<'PY'
import json, os, sys
out = sys.argv[1]
report = json.load(open(os.path.join(out, "gpu-report.json")))
md = open(os.path.join(out, "gpu-report.md")).read()
problems = []
for name, step in report["steps"].items():
    if step["status"] not in ("ok", "failed", "timeout", "skipped"):
        problems.append(f"{name}: unknown status {step['status']!r}")
    if step["status"] != "ok" and not step["reason"]:
        problems.append(f"{name}: {step['status']} without a reason")
    if f"| {name} |" not in md:
        problems.append(f"{name}: missing from gpu-report.md")
for name in ("devices", "kernels_report"):
    if report["steps"][name]["status"] != "ok":
        problems.append(f"{name} should pass on the mock driver: {report['steps'][name]}")
kernels = report["steps"]["kernels_report"]["result"] or {}
if not kernels.get("kernels") or any(k["registers"] is None for k in kernels["kernels"]):
    problems.append("kernels_report: no registers for some kernel")
if problems:
    print("gpu-check report is malformed:\n  " + "\n  ".join(problems), file=sys.stderr)
    sys.exit(1)
print("gpu-check on the mock driver: " + ", ".join(f"{k}: {v}" for k, v in report["summary"].items()))
PY
