#!/usr/bin/env python3
"""Assembles OUTDIR/gpu-report.json and gpu-report.md from the steps scripts/gpu-check.sh ran
(OUTDIR/steps/NAME.{out,err,status,seconds}). Every comparison is a ratio of two measurements of
this run; a step that failed, timed out or was skipped appears with its reason. Usage:
gpu_check_report.py OUTDIR TOTAL_SECONDS"""
import json
import os
import sys
import tempfile

STEPS = ["devices", "selftest", "verify", "kernels_report", "bench_gemm", "torch_gemm", "bench_gemm_tf32", "torch_gemm_tf32",
         "bench_train_64", "torch_train_eager_64", "torch_train_amp_64",
         "bench_train_224", "torch_train_eager_224", "torch_train_amp_224",
         "sklearn_em", "bench_gmm", "bench_pgd", "torch_pgd", "profile_train"]


def read(path, default=""):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return default


def load_json(text):
    """The JSON object in a step's stdout (the CLI prints exactly one; tolerate leading noise)."""
    text = text.strip()
    start = text.find("{")
    if start < 0:
        return None
    try:
        return json.loads(text[start:])
    except json.JSONDecodeError:
        return None


def ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None


def main():
    out, total = sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else None
    steps = {}
    for name in STEPS:
        base = os.path.join(out, "steps", name)
        status = read(base + ".status", "skipped: not run").strip()
        state, _, reason = status.partition(":")
        seconds = read(base + ".seconds").strip()
        steps[name] = {
            "status": state.strip(),
            "reason": reason.strip() or None,
            "seconds": float(seconds) if seconds else None,
            "result": load_json(read(base + ".out")) if state.strip() == "ok" else None,
            "stderr_tail": read(base + ".err")[-1500:] if state.strip() != "ok" else None,
        }

    def result(name):
        return steps[name]["result"]

    comparisons = []

    def compare(what, ours, theirs, unit, note=""):
        comparisons.append({"what": what, "ilgpuoct": ours, "reference": theirs, "unit": unit,
                            "ratio_ilgpuoct_over_reference": ratio(ours, theirs), "note": note or None})

    def compare_gemm(ours_step, torch_step, label):
        ours, theirs = result(ours_step), result(torch_step)
        if not (ours and theirs):
            return
        ref = {(r["m"], r["n"], r["k"], r["trans_a"], r["trans_b"]): r for r in theirs["results"]}
        for r in ours["results"]:
            t = ref.get((r["m"], r["n"], r["k"], r["trans_a"], r["trans_b"]))
            if t:
                compare(label.format(name=r["name"], variant=r["variant"]), r["gflops"], t["gflops"], "GFLOP/s")

    compare_gemm("bench_gemm", "torch_gemm", "SGEMM {name} ({variant}) vs torch.matmul FP32, TF32 off")
    compare_gemm("bench_gemm_tf32", "torch_gemm_tf32", "TF32 GEMM {name} ({variant}) vs torch.matmul, TF32 on")
    for res in (64, 224):
        ours = result(f"bench_train_{res}")
        for mode in ("eager", "amp"):
            theirs = result(f"torch_train_{mode}_{res}")
            if ours and theirs:
                label = "PyTorch eager FP32, TF32 off" if mode == "eager" else "PyTorch AMP (float16 autocast)"
                compare(f"ResNet-18 training step {res}x{res} batch 64 vs {label}", ours["images_per_second"], theirs["images_per_second"], "images/s")
    em, sk = result("bench_gmm"), result("sklearn_em")
    if em and sk:
        compare("EM 4000x512, K=4, 20 iterations vs scikit-learn (CPU)", sk["seconds"], em["seconds"], "speed-up (sklearn s / ilgpuoct s)",
                f"lower bounds {em.get('lower_bound')} vs {sk.get('lower_bound')}; iterations {em.get('iterations')} vs {sk.get('iterations')}")
    pgd, tpgd = result("bench_pgd"), result("torch_pgd")
    if pgd and tpgd:
        compare("PGD-10 224x224 batch 64 vs plain PyTorch PGD", pgd["images_per_second"], tpgd["images_per_second"], "images/s")

    report = {
        "total_seconds": total,
        "steps": steps,
        "comparisons": comparisons,
        "summary": {s: steps[s]["status"] for s in STEPS},
    }
    write(os.path.join(out, "gpu-report.json"), json.dumps(report, indent=2))
    write(os.path.join(out, "gpu-report.md"), markdown(report))
    print(f"wrote {out}/gpu-report.json and gpu-report.md: "
          + ", ".join(f"{k} {sum(1 for s in steps.values() if s['status'] == k)}" for k in ("ok", "failed", "timeout", "skipped")))


def markdown(report):
    steps = report["steps"]
    lines = ["# ilgpuoct GPU check", ""]
    devices = steps["devices"]["result"]
    if devices:
        for a in devices.get("accelerators", []):
            if a.get("id") == "cuda":
                lines.append(f"Device: {a['name']} ({a['architecture']}, {a['multiprocessors']} SMs), driver {a['driver']}, NVRTC {a['nvrtc']}.")
        lines.append("")
    lines += ["## Steps", "", "| step | status | seconds | note |", "| --- | --- | --- | --- |"]
    for name, s in steps.items():
        note = s["reason"] or summary(name, s["result"])
        lines.append(f"| {name} | {s['status']} | {s['seconds'] if s['seconds'] is not None else ''} | {note.replace('|', '/')} |")
    lines += ["", "## Comparisons (same run)", ""]
    if report["comparisons"]:
        lines += ["| what | ilgpuoct | reference | unit | ratio |", "| --- | --- | --- | --- | --- |"]
        for c in report["comparisons"]:
            r = c["ratio_ilgpuoct_over_reference"]
            lines.append(f"| {c['what']} | {fmt(c['ilgpuoct'])} | {fmt(c['reference'])} | {c['unit']} | {fmt(r)} |")
    else:
        lines.append("No comparison could be made (see the steps above).")
    profile = steps["profile_train"]["result"]
    if profile:
        rows = profile["report"]["rows"][:15]
        lines += ["", "## Profile of training steps (top kernels)", "", "| kernel | calls | total ms | share | GFLOP/s | GB/s | of roofline |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for r in rows:
            lines.append(f"| {r['name']} | {r['count']} | {fmt(r['total_milliseconds'])} | {fmt(r['share'])} | {fmt(r['gflops'])} | {fmt(r['g_bytes_per_second'])} | {fmt(r['roofline_fraction'])} |")
    lines += ["", f"Total time: {report['total_seconds']} s."]
    return "\n".join(lines) + "\n"


def summary(name, result):
    if not result:
        return ""
    if name == "selftest":
        return f"{len(result.get('cases', []))} cases, {result.get('failed')} failed"
    if name == "verify":
        return f"{result.get('passed')} passed, {result.get('failed')} failed"
    if name == "kernels_report":
        kernels = result.get("kernels", [])
        return f"{len(kernels)} kernels, {sum(1 for k in kernels if (k.get('spill_store_bytes') or 0) > 0)} spill"
    return ""


def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def write(path, text):
    folder = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".gpu-report-")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
