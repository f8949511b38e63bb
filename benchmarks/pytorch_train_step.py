"""The PyTorch peer of `ilgpuoct bench train|infer|pgd --device cpu`: one JSON object per run.

--mode train: images/s of one ResNet-18 training step (forward, cross-entropy, backward, SGD), the same
    step as `ilgpuoct bench train`: torchvision's resnet18 with a configurable input channel count and
    class count, SGD(lr 0.01, momentum 0.9, weight decay 5e-4), random images in [0, 1].
--mode infer: images/s of the evaluation-mode forward (running statistics) under torch.inference_mode().
--mode pgd: images/s of an untargeted L-infinity PGD batch as `ilgpuoct bench pgd` runs it: eval-mode
    model, no random start, eps 0.005, step 2.5 eps / steps, x <- clip(proj(x + step sign(grad))), one
    clean forward before and one forward after the iterations, input gradient only.
--info: the PyTorch build (torch.__config__.show()), its threads and the BLAS library actually loaded
    (from /proc/self/maps after a matrix product), then exits.
"""
import argparse
import json
import os
import time

import torch
import torch.nn as nn
import torchvision


def build_model(channels: int, classes: int, width: int) -> nn.Module:
    if width != 64:
        raise SystemExit("--width other than 64 is not torchvision's resnet18; use 64")
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=classes)
    if channels != 3:
        model.conv1 = nn.Conv2d(channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return model


def loaded_libraries() -> list:
    """Shared objects mapped into this process whose names mention a BLAS or OpenMP runtime."""
    keys = ("blas", "lapack", "omp", "mkl", "dnnl", "mkldnn")
    found = set()
    with open("/proc/self/maps", encoding="utf-8") as maps:
        for line in maps:
            parts = line.split()
            if len(parts) >= 6 and any(k in os.path.basename(parts[5]).lower() for k in keys):
                found.add(os.path.realpath(parts[5]))
    return sorted(found)


def info(threads: int) -> dict:
    torch.set_num_threads(threads)
    a = torch.rand(256, 256)
    _ = a @ a  # makes sure the BLAS is loaded
    conv = nn.Conv2d(8, 8, 3)
    _ = conv(torch.rand(1, 8, 16, 16))
    libraries = loaded_libraries()
    return {
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "mkldnn_enabled": bool(torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled),
        "openmp": torch.backends.openmp.is_available(),
        "loaded_libraries": libraries,
        "openblas_pthread_loaded": any("openblas-pthread" in p for p in libraries),
        "config": torch.__config__.show(),
        "parallel_info": torch.__config__.parallel_info(),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["train", "infer", "pgd"], default="train")
    parser.add_argument("--info", action="store_true")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5, help="timed steps (train, infer) or timed PGD batches (pgd)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps or batches first")
    parser.add_argument("--pgd-steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    if args.info:
        print(json.dumps(info(args.threads)))
        return

    torch.set_num_threads(args.threads)
    model = build_model(args.channels, args.classes, args.width)
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(args.batch, args.channels, args.resolution, args.resolution, generator=generator)
    labels = torch.arange(args.batch) % args.classes
    loss_fn = nn.CrossEntropyLoss()

    if args.mode == "train":
        model.train()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

        def run() -> None:
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(images), labels)
            loss.backward()
            optimizer.step()
            loss.item()
    elif args.mode == "infer":
        model.eval()

        def run() -> None:
            with torch.inference_mode():
                model(images).sum().item()
    else:
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        eps = 0.005
        step = 2.5 * eps / args.pgd_steps

        def run() -> None:
            with torch.no_grad():
                model(images)  # the clean logits
            x = images.clone()
            for _ in range(args.pgd_steps):
                x.requires_grad_(True)
                loss = loss_fn(model(x), labels)
                (grad,) = torch.autograd.grad(loss, x)
                with torch.no_grad():
                    x = x + step * grad.sign()
                    x = torch.min(torch.max(x, images - eps), images + eps).clamp_(0.0, 1.0)
            with torch.no_grad():
                model(x).argmax(1)  # the adversarial logits

    for _ in range(args.warmup):
        run()
    cpu0 = time.process_time()
    start = time.perf_counter()
    for _ in range(args.steps):
        run()
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu0
    print(json.dumps({
        "engine": "pytorch-cpu",
        "mode": args.mode,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "resolution": args.resolution,
        "batch": args.batch,
        "steps": args.steps,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "images_per_second": args.batch * args.steps / seconds,
    }))


if __name__ == "__main__":
    main()
