"""Training-step speed of our ResNets against torchvision's (same architecture: the goal is 1.00).

One training step = forward + backward + SGD step on a batch of 128 images of 32x32 pixels.
The four models are timed round-robin in one process: each round times ours and torchvision's
back to back, in alternating order, so a slow moment of a shared machine hits both. The ratio of
each pair is taken per round, and the median over the rounds is reported (with median speeds).

    python benchmarks/model_speed.py [--rounds 8] [--steps 3] [--batch-size 128] [--device cpu]
        [--archs resnet18 resnet50]

The LAST line is `speed_vs_torchvision=R.RR`: ours / torchvision images per second for the model
where ours is slowest.
"""

import argparse
import statistics
import time

import torch
import torchvision
from torch import nn

import resnet_course


def train_step_timer(model: nn.Module, batch: torch.Tensor, labels: torch.Tensor, steps: int):
    """Returns a function that runs `steps` training steps and returns images per second."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def run() -> float:
        if batch.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(batch), labels).backward()
            optimizer.step()
        if batch.device.type == "cuda":
            torch.cuda.synchronize()
        return steps * len(batch) / (time.perf_counter() - start)

    return run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3, help="training steps per model per round")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--archs", nargs="+", default=["resnet18", "resnet50"])
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    torch.manual_seed(0)
    batch = torch.randn(args.batch_size, 3, args.image_size, args.image_size, device=device)
    labels = torch.randint(0, 10, (args.batch_size,), device=device)
    timers = {}
    for arch in args.archs:
        for source, module in (("ours", resnet_course), ("torchvision", torchvision.models)):
            model = getattr(module, arch)(num_classes=10).to(device).train()
            timers[arch, source] = train_step_timer(model, batch, labels, args.steps)
            timers[arch, source]()  # warm-up: first calls allocate memory and pick kernels

    speeds: dict[tuple[str, str], list[float]] = {key: [] for key in timers}
    pair_ratios: dict[str, list[float]] = {arch: [] for arch in args.archs}
    for round_ in range(args.rounds):
        for arch in pair_ratios:
            order = ("ours", "torchvision") if round_ % 2 == 0 else ("torchvision", "ours")
            for source in order:
                speeds[arch, source].append(timers[arch, source]())
            pair_ratios[arch].append(speeds[arch, "ours"][-1] / speeds[arch, "torchvision"][-1])

    print(
        f"device: {device} ({torch.get_num_threads()} CPU threads), torch {torch.__version__}, "
        f"batch {args.batch_size}, {args.image_size} px, {args.rounds} rounds x {args.steps} steps"
    )
    print(f"{'model':<10} {'ours img/s':>11} {'torchvision img/s':>18} {'ratio':>6}  per round")
    ratios = []
    for arch, per_round in pair_ratios.items():
        ours = statistics.median(speeds[arch, "ours"])
        theirs = statistics.median(speeds[arch, "torchvision"])
        ratios.append(statistics.median(per_round))
        print(
            f"{arch:<10} {ours:>11.1f} {theirs:>18.1f} {ratios[-1]:>6.2f}  "
            + " ".join(f"{r:.2f}" for r in per_round)
        )
    print(f"speed_vs_torchvision={min(ratios):.2f}")


if __name__ == "__main__":
    main()
