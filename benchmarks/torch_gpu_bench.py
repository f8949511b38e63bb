#!/usr/bin/env python3
"""PyTorch references for scripts/gpu-check.sh, on the GPU, in FP32 with TF32 off (AMP where asked).

  gemm  --shapes-from FILE   torch.matmul on the products listed in `ilgpuoct bench gemm --json`'s output
  train --resolution R ...   torchvision ResNet-18 training steps (the step of `ilgpuoct bench train`),
                             eager FP32 or --amp (autocast float16 + GradScaler)
  pgd   --resolution R ...   a plain L-infinity PGD loop (the attack of `ilgpuoct bench pgd`)

Each prints one JSON object. CUDA time is measured with torch.cuda.synchronize around the timed loop.
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn as nn
import torchvision


def fp32_only():
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True


def resnet(channels, classes, width):
    if width != 64:
        raise SystemExit("torchvision's resnet18 has width 64; pass --width 64")
    model = torchvision.models.resnet18(num_classes=classes)
    if channels != 3:
        model.conv1 = nn.Conv2d(channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return model.cuda()


def gemm(args):
    report = json.load(open(args.shapes_from))
    rows = []
    for r in report["results"]:
        m, n, k = r["m"], r["n"], r["k"]
        a = torch.rand((k, m) if r["trans_a"] else (m, k), device="cuda")
        b = torch.rand((n, k) if r["trans_b"] else (k, n), device="cuda")
        op_a = a.t() if r["trans_a"] else a
        op_b = b.t() if r["trans_b"] else b
        torch.matmul(op_a, op_b)
        times = []
        for _ in range(args.repeat):
            torch.cuda.synchronize()
            start = time.perf_counter()
            torch.matmul(op_a, op_b)
            torch.cuda.synchronize()
            times.append((time.perf_counter() - start) * 1e3)
        ms = statistics.median(times)
        rows.append({"name": r["name"], "m": m, "n": n, "k": k, "trans_a": r["trans_a"], "trans_b": r["trans_b"],
                     "median_ms": ms, "gflops": 2.0 * m * n * k / (ms / 1e3) / 1e9})
    engine = "torch.matmul tf32 (tf32 on)" if args.tf32 else "torch.matmul fp32 (tf32 off)"
    print(json.dumps({"engine": engine, "torch": torch.__version__, "results": rows}))


def train(args):
    torch.manual_seed(0)
    model = resnet(args.channels, args.classes, args.width)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    loss_fn = nn.CrossEntropyLoss()
    images = torch.rand(args.batch, args.channels, args.resolution, args.resolution, device="cuda")
    labels = torch.arange(args.batch, device="cuda") % args.classes
    scaler = torch.amp.GradScaler("cuda", enabled=args.amp)

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.float16, enabled=args.amp):
            loss = loss_fn(model(images), labels)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return loss.item()  # the loss read-back is part of a step, as in ilgpuoct

    for _ in range(args.warmup):
        step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    print(json.dumps({"engine": "pytorch " + ("amp fp16" if args.amp else "eager fp32 (tf32 off)"), "torch": torch.__version__,
                      "resolution": args.resolution, "batch": args.batch, "steps": args.steps, "seconds": seconds,
                      "images_per_second": args.batch * args.steps / seconds}))


def pgd(args):
    torch.manual_seed(0)
    model = resnet(1, 2, args.width)
    model.eval()
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    x0 = torch.rand(args.batch, 1, args.resolution, args.resolution, device="cuda")
    labels = torch.arange(args.batch, device="cuda") % 2
    eps = 0.005
    step_size = 2.5 * eps / args.pgd_steps

    def attack():
        x = x0.clone()
        for _ in range(args.pgd_steps):
            x.requires_grad_(True)
            loss = loss_fn(model(x), labels)
            grad, = torch.autograd.grad(loss, x)
            with torch.no_grad():
                x = torch.clamp(torch.min(torch.max(x + step_size * grad.sign(), x0 - eps), x0 + eps), 0, 1)
        return x

    attack()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(args.repeat):
        attack()
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    print(json.dumps({"engine": "pytorch pgd fp32 (tf32 off)", "torch": torch.__version__, "resolution": args.resolution,
                      "batch": args.batch, "pgd_steps": args.pgd_steps, "seconds": seconds,
                      "images_per_second": args.batch * args.repeat / seconds}))


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="what", required=True)
    g = sub.add_parser("gemm")
    g.add_argument("--shapes-from", required=True)
    g.add_argument("--repeat", type=int, default=5)
    g.add_argument("--tf32", action="store_true", help="torch.backends.cuda.matmul.allow_tf32 = True (for the TF32 variant)")
    t = sub.add_parser("train")
    for name, default in (("--resolution", 64), ("--batch", 64), ("--channels", 1), ("--classes", 2), ("--width", 64), ("--steps", 5), ("--warmup", 2)):
        t.add_argument(name, type=int, default=default)
    t.add_argument("--amp", action="store_true")
    p = sub.add_parser("pgd")
    for name, default in (("--resolution", 224), ("--batch", 64), ("--width", 64), ("--pgd-steps", 10), ("--repeat", 2)):
        p.add_argument(name, type=int, default=default)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("torch.cuda.is_available() is False")
    fp32_only()
    if getattr(args, "tf32", False):
        torch.backends.cuda.matmul.allow_tf32 = True
    {"gemm": gemm, "train": train, "pgd": pgd}[args.what](args)


if __name__ == "__main__":
    main()
