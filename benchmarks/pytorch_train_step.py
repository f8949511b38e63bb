"""Images/s of one ResNet-18 training step (forward, cross-entropy, backward, SGD) in PyTorch on the CPU.

The same step as `ilgpuoct bench train`: torchvision's resnet18 with a configurable input channel
count and class count, SGD(lr 0.01, momentum 0.9, weight decay 5e-4), random images in [0, 1].
Prints one JSON object with images_per_second.
"""
import argparse
import json
import time

import torch
import torch.nn as nn
import torchvision


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=args.classes)
    if args.channels != 3:
        model.conv1 = nn.Conv2d(args.channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    loss_fn = nn.CrossEntropyLoss()
    images = torch.rand(args.batch, args.channels, args.resolution, args.resolution)
    labels = torch.arange(args.batch) % args.classes

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(images), labels)
        loss.backward()
        optimizer.step()
        return loss.item()

    for _ in range(args.warmup):
        step()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    seconds = time.perf_counter() - start
    print(json.dumps({
        "engine": "pytorch-cpu",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "resolution": args.resolution,
        "batch": args.batch,
        "steps": args.steps,
        "seconds": seconds,
        "images_per_second": args.batch * args.steps / seconds,
    }))


if __name__ == "__main__":
    main()
