"""Driver of compare-pytorch-cpu.sh: the cpu engine against PyTorch (and ONNX Runtime, scikit-learn),
measured only on a quiet machine, engines alternated, repeated; median, spread and ratio.

Before EACH measurement the machine must be quiet:
  * the 1-minute load average, less the decayed load of this script's own previous runs, is below
    --max-load (the kernel's load average is an exponential average over a minute, so right after a
    2-thread run it still shows ~2 for a while even on an idle machine; the script subtracts what
    its own runs contributed, 2 threads x (1 - e^(-d/60)) x e^(-t/60), and says so in the JSON), and
  * no other process used more than --max-process-cpu percent of one CPU over a 2-second sample.
It waits up to --wait seconds for both and otherwise stops with a message naming the busy processes.
"""
import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CLK_TCK = os.sysconf("SC_CLK_TCK")


class NotQuiet(Exception):
    pass


# ---------------------------------------------------------------- machine description

def cpu_description() -> dict:
    model, flags, vendor, family, cpu_model = "", set(), "", 0, 0
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            key, _, value = line.partition(":")
            key, value = key.strip(), value.strip()
            if key == "model name" and not model:
                model = value
            elif key == "flags" and not flags:
                flags = set(value.split())
            elif key == "vendor_id" and not vendor:
                vendor = value
            elif key == "cpu family" and not family:
                family = int(value)
            elif key == "model" and not cpu_model:
                cpu_model = int(value)
    if "avx512f" in flags:
        zen4 = vendor == "AuthenticAMD" and family == 0x19
        simd = "AVX-512 (Zen 4: executed as two 256-bit halves, 32 FP32 FLOP/cycle)" if zen4 else "AVX-512 (512-bit)"
    elif "avx2" in flags and "fma" in flags:
        simd = "AVX2 + FMA (256-bit, 2 FMA pipes: 32 FP32 FLOP/cycle)"
    elif "avx" in flags:
        simd = "AVX (256-bit, no FMA)"
    else:
        simd = "SSE (128-bit)"
    return {"model": model, "vendor": vendor, "family": family, "cpu_model": cpu_model, "logical_cpus": os.cpu_count(),
            "simd": simd, "avx2": "avx2" in flags, "avx512f": "avx512f" in flags, "kernel": platform.release()}


# ---------------------------------------------------------------- quiet-machine check

def process_ticks() -> dict:
    ticks = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as f:
                text = f.read()
            name = text[text.index("(") + 1:text.rindex(")")]
            fields = text[text.rindex(")") + 2:].split()
            ticks[int(pid)] = (name, int(fields[11]) + int(fields[12]))  # utime + stime
        except (OSError, ValueError, IndexError):
            continue
    return ticks


def busy_processes(sample_seconds: float, threshold_percent: float) -> list:
    """Processes other than this one that used more than threshold_percent of a CPU during the sample."""
    before = process_ticks()
    time.sleep(sample_seconds)
    after = process_ticks()
    me = os.getpid()
    busy = []
    for pid, (name, ticks) in after.items():
        if pid == me or pid not in before:
            continue
        percent = 100.0 * (ticks - before[pid][1]) / CLK_TCK / sample_seconds
        if percent > threshold_percent:
            busy.append(f"{name}[{pid}] {percent:.0f}%")
    return busy


class QuietGate:
    def __init__(self, max_load: float, max_process_cpu: float, wait_seconds: float, threads: int):
        self.max_load, self.max_process_cpu, self.wait_seconds, self.threads = max_load, max_process_cpu, wait_seconds, threads
        self.own_runs = []  # (end time, duration): this script's measurements, for the load-average correction

    def own_load(self, now: float) -> float:
        # The kernel's 1-minute average: L <- L e^(-5/60) + n (1 - e^(-5/60)) every 5 s.
        return sum(self.threads * (1 - math.exp(-d / 60)) * math.exp(-(now - end) / 60) for end, d in self.own_runs)

    def wait_until_quiet(self, what: str) -> dict:
        deadline = time.monotonic() + self.wait_seconds
        announced = False
        while True:
            load = os.getloadavg()[0]
            own = self.own_load(time.monotonic())
            others = load - own
            busy = busy_processes(2.0, self.max_process_cpu)
            if others < self.max_load and not busy:
                return {"load_1min": round(load, 2), "own_load_estimate": round(own, 2), "other_load": round(others, 2)}
            if time.monotonic() > deadline:
                raise NotQuiet(
                    f"the machine is not quiet enough to measure {what}: 1-minute load {load:.2f} "
                    f"(less this script's own {own:.2f} = {others:.2f}, limit --max-load {self.max_load})"
                    + (f"; busy: {', '.join(busy)}" if busy else "")
                    + f". Waited {self.wait_seconds:.0f} s. Stop the other work, or pass a larger --max-load / --wait "
                      "(figures taken under load are marked so).")
            if not announced:
                print(f"  waiting for a quiet machine before {what} (load {load:.2f}, own {own:.2f}"
                      + (f", busy: {', '.join(busy)}" if busy else "") + ")", file=sys.stderr)
                announced = True
            time.sleep(3)

    def record(self, duration: float) -> None:
        self.own_runs.append((time.monotonic(), duration))


# ---------------------------------------------------------------- the engines

def run_json(command: list, env: dict | None = None) -> dict:
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed with exit code {result.returncode}: {result.stderr.strip()[-800:]}")
    text = result.stdout[result.stdout.find("{"):]
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise RuntimeError(f"{' '.join(command)} printed no JSON object: {result.stdout[-400:]}") from error


def ours(args) -> list:
    return ["dotnet", args.ours_dll]


def verb_exists(args, *verb) -> bool:
    result = subprocess.run(ours(args) + list(verb) + ["--help"], capture_output=True, text=True)
    return result.returncode == 0 and "--engine" in result.stdout


def rows_for(args, python: str) -> list:
    """(row name, metric, [(engine, command, extract)]) for every measurement asked for."""
    t = str(args.threads)
    common = ["--batch", str(args.batch), "--channels", "1"]
    ips = lambda j: j["images_per_second"]
    rows = []
    for r in args.train_resolutions:
        steps, warm = (args.steps_64, args.warmup) if r <= 64 else (args.steps_224, max(1, args.warmup // 2))
        rows.append((f"train {r}x{r}", "images/s", [
            ("ilgpuoct cpu", ours(args) + ["bench", "train", "--device", "cpu", "--resolution", str(r), *common, "--width", "64", "--classes", "4",
                                           "--steps", str(steps), "--warmup", str(warm), "--threads", t, "--json"], ips),
            ("pytorch", [python, os.path.join(HERE, "pytorch_train_step.py"), "--mode", "train", "--resolution", str(r), *common,
                         "--classes", "4", "--steps", str(steps), "--warmup", str(warm), "--threads", t], ips),
        ]))
    have_infer = verb_exists(args, "bench", "infer")
    if not have_infer and args.infer_resolutions:
        print("note: `ilgpuoct bench infer` (with --engine) is not in this build; the inference rows are skipped", file=sys.stderr)
    for r in args.infer_resolutions if have_infer else []:
        steps = args.steps_64 if r <= 64 else args.steps_224
        infer = ["bench", "infer", "--resolution", str(r), *common, "--width", "64", "--classes", "4", "--steps", str(steps),
                 "--warmup", str(args.warmup), "--threads", t, "--json"]
        rows.append((f"inference {r}x{r}", "images/s", [
            ("ilgpuoct cpu", ours(args) + infer + ["--engine", "cpu"], ips),
            ("pytorch", [python, os.path.join(HERE, "pytorch_train_step.py"), "--mode", "infer", "--resolution", str(r), *common,
                         "--classes", "4", "--steps", str(steps), "--warmup", str(args.warmup), "--threads", t], ips),
            ("onnxruntime", ours(args) + infer + ["--engine", "onnxruntime"], ips),
        ]))
    for r in args.pgd_resolutions:
        rows.append((f"PGD-10 {r}x{r}", "images/s", [
            ("ilgpuoct cpu", ours(args) + ["bench", "pgd", "--device", "cpu", "--resolution", str(r), "--batch", str(args.batch), "--width", "64",
                                           "--pgd-steps", "10", "--repeat", str(args.pgd_repeat), "--threads", t, "--json"], ips),
            ("pytorch", [python, os.path.join(HERE, "pytorch_train_step.py"), "--mode", "pgd", "--resolution", str(r), *common,
                         "--classes", "2", "--pgd-steps", "10", "--steps", str(args.pgd_repeat), "--warmup", "1", "--threads", t], ips),
        ]))
    if args.gmm:
        data = os.path.join(args.work, "gmm.safetensors")
        n, d, k, iters = args.gmm_shape
        sklearn = [python, os.path.join(HERE, "gmm", "sklearn_em.py"), "--n", str(n), "--d", str(d), "--k", str(k), "--iters", str(iters), "--write-data", data]
        rows.append((f"EM {n}x{d} K={k}", "iterations/s", [
            ("scikit-learn", sklearn, lambda j: 1 / j["seconds_per_iteration"]),
            ("ilgpuoct cpu", ours(args) + ["bench", "gmm", "--device", "cpu", "--data", data, "--iters", str(iters), "--threads", t, "--json"],
             lambda j: 1 / j["seconds_per_iteration"]),
        ]))
    return rows


def measure(args, gate: QuietGate, rows: list, python_env: dict) -> list:
    results = []
    for name, metric, engines in rows:
        samples = {engine: [] for engine, _, _ in engines}
        cpu_seconds = {engine: [] for engine, _, _ in engines}  # where the engine reports it (a check on load)
        conditions = []
        extra = {}
        print(f"== {name}", file=sys.stderr)
        for pair in range(args.pairs):
            order = engines if pair % 2 == 0 or not args.swap_order else list(reversed(engines))
            for engine, command, extract in order:
                conditions.append(gate.wait_until_quiet(f"{name} / {engine} (pair {pair + 1})"))
                start = time.monotonic()
                payload = run_json(command, python_env)
                gate.record(time.monotonic() - start)
                value = extract(payload)
                samples[engine].append(value)
                if "cpu_seconds" in payload:
                    cpu_seconds[engine].append(payload["cpu_seconds"])
                if engine == "scikit-learn":
                    extra["scikit_learn_blas"] = payload.get("blas")
                print(f"  {engine}: {value:.3f} {metric}", file=sys.stderr)
        summary = {}
        for engine, values in samples.items():
            summary[engine] = {"median": statistics.median(values), "min": min(values), "max": max(values), "samples": values,
                               "cpu_seconds": cpu_seconds[engine]}
        results.append({"row": name, "metric": metric, "engines": summary, "conditions": conditions, **extra})
    return results


def markdown(results: list, loaded: bool) -> str:
    lines = ["| measurement | engine | median | min-max | ratio ilgpuoct / engine |", "| --- | --- | --- | --- | --- |"]
    for row in results:
        ours_median = row["engines"].get("ilgpuoct cpu", {}).get("median")
        for engine, s in row["engines"].items():
            ratio = "" if engine == "ilgpuoct cpu" or not ours_median else f"{ours_median / s['median']:.2f}"
            lines.append(f"| {row['row']} ({row['metric']}) | {engine} | {s['median']:.2f} | {s['min']:.2f}-{s['max']:.2f} | {ratio} |")
    if loaded:
        lines.append("")
        lines.append("LOADED: measured with a relaxed --max-load; these figures are not from a quiet machine.")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--python", required=True)
    p.add_argument("--ours-dll", required=True)
    p.add_argument("--json", dest="json_path", required=True)
    p.add_argument("--quick", action="store_true", help="smoke test: 1 pair, tiny step counts, 64x64 only, small EM")
    p.add_argument("--pairs", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--max-load", type=float, default=0.6)
    p.add_argument("--max-process-cpu", type=float, default=10.0)
    p.add_argument("--wait", type=float, default=600.0)
    p.add_argument("--only", default="train,infer,pgd,gmm", help="comma-separated subset of train,infer,pgd,gmm")
    p.add_argument("--swap-order", action="store_true", help="run PyTorch first in every other pair")
    args = p.parse_args()

    only = set(args.only.split(","))
    args.train_resolutions = [64, 224] if "train" in only else []
    args.infer_resolutions = [64, 224] if "infer" in only else []
    args.pgd_resolutions = [64] if "pgd" in only else []
    args.gmm = "gmm" in only
    args.steps_64, args.steps_224, args.warmup, args.pgd_repeat = 10, 3, 2, 2
    args.gmm_shape = (4000, 512, 4, 10)
    if args.quick:
        args.pairs = 1
        args.train_resolutions = [r for r in args.train_resolutions if r == 64]
        args.infer_resolutions = [r for r in args.infer_resolutions if r == 64]
        args.steps_64, args.steps_224, args.warmup, args.pgd_repeat = 2, 1, 1, 1
        args.batch = min(args.batch, 8)
        args.gmm_shape = (400, 32, 4, 3)

    env = dict(os.environ)
    # PyTorch's intra-op threads, and scikit-learn's BLAS, get the same thread count as ours.
    env.update({"OMP_NUM_THREADS": str(args.threads), "OPENBLAS_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)})
    torch_info = run_json([args.python, os.path.join(HERE, "pytorch_train_step.py"), "--info", "--threads", str(args.threads)], env)
    cpu = cpu_description()
    print(f"CPU: {cpu['model']} ({cpu['logical_cpus']} logical CPUs), SIMD: {cpu['simd']}", file=sys.stderr)
    print(f"PyTorch {torch_info['torch']}: oneDNN {'on' if torch_info['mkldnn_enabled'] else 'OFF'}, threads {torch_info['threads']}, "
          f"libraries {', '.join(torch_info['loaded_libraries'])}", file=sys.stderr)
    if not torch_info["openblas_pthread_loaded"]:
        print("warning: PyTorch did not load OpenBLAS (pthread); the BLAS it uses is listed above", file=sys.stderr)

    with tempfile.TemporaryDirectory() as work:
        args.work = work
        gate = QuietGate(args.max_load, args.max_process_cpu, args.wait, args.threads)
        try:
            results = measure(args, gate, rows_for(args, args.python), env)
        except NotQuiet as error:
            print(f"refused: {error}", file=sys.stderr)
            sys.exit(3)
    loaded = args.max_load > 0.6 or args.max_process_cpu > 10.0
    report = {
        "conditions": {"max_load": args.max_load, "max_process_cpu_percent": args.max_process_cpu, "loaded": loaded,
                       "load_note": "load_1min less this script's own decayed load (own_load_estimate) must stay below max_load",
                       "pairs": args.pairs, "threads": args.threads, "batch": args.batch, "quick": args.quick,
                       "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
        "cpu": cpu,
        "pytorch": torch_info,
        "rows": results,
    }
    tmp = args.json_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
    os.replace(tmp, args.json_path)
    print(f"CPU: {cpu['model']}, {cpu['simd']}; threads {args.threads} for every engine; batch {args.batch}; "
          f"{args.pairs} alternated pair(s), median and min-max")
    print(f"PyTorch {torch_info['torch']}, oneDNN {'on' if torch_info['mkldnn_enabled'] else 'off'}, "
          f"BLAS loaded: {', '.join(p for p in torch_info['loaded_libraries'] if 'blas' in p) or 'none seen'}")
    print()
    print(markdown(results, loaded))
    print(f"\nJSON: {args.json_path}")


if __name__ == "__main__":
    main()
