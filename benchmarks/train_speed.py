"""How fast ResNet-20 trains, and what the data pipeline costs.

Three ways to feed the same training step (SGD, Nesterov momentum, channels-last):

- (a) raw: the training step alone, on batches made before the clock starts (the upper bound);
- (b) fit: ``resnet_course.train.fit``, batches made on the device by ``DeviceLoader``;
- (c) DataLoader: a torchvision ``DataLoader`` with per-sample v2 transforms (random crop with
  fit's padding of W // 8 pixels, flip, normalise) in 2 worker processes, the conventional
  pipeline.

The images are 16x16 by default: the size chapter 7 trains its sixteen runs at, the longest
training in the course. A step at 32x32 costs about four times as much, while the per-image
transforms cost about the same, so there the data path is a smaller part of a step; on a 2-core
CPU it is so small that even (a) is only 1.03-1.10 times as fast as (c), and no data path could
be 1.1 times as fast. ``--image-size 32`` measures it. On a GPU, where a step is fast, compare
with ``--device cuda``.

Each round measures the three back to back, in one process, every other round in reverse order
(a b c, then c b a), so (b) always sits next to (a) and to (c) and a slow moment of a shared
machine hits both sides of a comparison. The two ratios, (b) / (c) and (b) / (a), are taken per
round, and their median over the rounds is reported, with the spread (lowest to highest round).

Prints a table of images per second, the ratios of every round, and, as its last line,
``speedup_vs_dataloader=X.XX data_overhead=Y.Y%`` with X the median of (b) / (c) and
Y = 100 * (1 - the median of (b) / (a)). The goals: X at least 1.1, Y at most 5%.

    python benchmarks/train_speed.py                  # about 40 seconds on a 2-core CPU
    python benchmarks/train_speed.py --image-size 32  # about a minute
    python benchmarks/train_speed.py --rounds 3 --steps 10
"""

import argparse
import contextlib
import io
import statistics
import time

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from resnet_course import resnet20
from resnet_course.data import ImageData, make_shapes10, normalize, random_crop_flip
from resnet_course.train import default_device, describe_device, fit


class TransformedImages(Dataset):
    """uint8 images, each transformed on its own when fetched: what torchvision datasets do."""

    def __init__(self, images: Tensor, labels: Tensor, transform: v2.Transform) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return self.transform(self.images[i]), self.labels[i]


def make_model(device: torch.device) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = resnet20().to(device, memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4
    )
    return model, optimizer


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: Tensor, y: Tensor) -> None:
    loss = F.cross_entropy(model(x), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def sync(device: torch.device) -> None:
    """Waits for the GPU to finish (timings of asynchronous work would be too short)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def raw_speed(model, optimizer, batches: list[tuple[Tensor, Tensor]], device) -> float:
    """(a) Images/s of the training step on batches already augmented and on the device."""
    model.train()
    sync(device)
    start = time.perf_counter()
    for x, y in batches:
        train_step(model, optimizer, x, y)
    sync(device)
    return sum(len(y) for _, y in batches) / (time.perf_counter() - start)


def fit_speed(model: nn.Module, data: ImageData, batch_size: int, device) -> float:
    """(b) Images/s of one epoch of ``fit`` (its own measurement, evaluation excluded)."""
    with contextlib.redirect_stdout(io.StringIO()):  # fit's summary lines would fill the table
        history = fit(model, data, 1, batch_size=batch_size, lr=0.05, device=device, progress=False)
    return history.images_per_s[0]


def dataloader_speed(model, optimizer, loader: DataLoader, device) -> float:
    """(c) Images/s of one pass over a ``DataLoader``, batches copied to the device."""
    model.train()
    sync(device)
    start, images = time.perf_counter(), 0
    for x, y in loader:
        x = x.to(device, non_blocking=True, memory_format=torch.channels_last)
        train_step(model, optimizer, x, y.to(device, non_blocking=True))
        images += len(y)
    sync(device)
    return images / (time.perf_counter() - start)


def spread(values: list[float], fmt: str) -> str:
    """``median (lowest to highest)`` of ``values``, each formatted with ``fmt``."""
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"{mid:{fmt}} ({low:{fmt}} to {high:{fmt}})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="measurements of each path")
    parser.add_argument("--steps", type=int, default=40, help="training steps per measurement")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--image-size", type=int, default=16, help="16 as in chapter 7, or 32")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    parser.add_argument("--device", default=None, help="cuda, mps or cpu (default: the fastest)")
    args = parser.parse_args(argv)
    device = torch.device(args.device) if args.device else default_device()
    n = args.steps * args.batch_size  # one measurement = one pass over n images

    size = args.image_size
    pad = size // 8  # fit's crop padding
    data = make_shapes10(train_size=n, test_size=10, image_size=size, seed=0)
    generator = torch.Generator(device).manual_seed(0)
    batches = []
    for i in range(args.steps):
        images = data.train_images[i * args.batch_size : (i + 1) * args.batch_size].to(device)
        x = normalize(random_crop_flip(images, pad, generator), data.mean, data.std)
        batches.append(
            (x, data.train_labels[i * args.batch_size : (i + 1) * args.batch_size].to(device))
        )
    transform = v2.Compose(
        [
            v2.RandomCrop(size, padding=pad),
            v2.RandomHorizontalFlip(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(data.mean, data.std),
        ]
    )
    loader = DataLoader(
        TransformedImages(data.train_images, data.train_labels, transform),
        batch_size=args.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=args.workers,
        persistent_workers=args.workers > 0,
        pin_memory=device.type == "cuda",
    )

    paths = {
        "(a) raw step, batches made beforehand": lambda m, o: raw_speed(m, o, batches, device),
        "(b) fit(): DeviceLoader on the device": lambda m, o: fit_speed(
            m, data, args.batch_size, device
        ),
        f"(c) DataLoader + v2, {args.workers} workers": lambda m, o: dataloader_speed(
            m, o, loader, device
        ),
    }
    models = {name: make_model(device) for name in paths}
    for name, measure in paths.items():  # warm-up: allocations, caches, worker start
        measure(*models[name])
    raw, fitted, loaded = paths  # the names of (a), (b) and (c)
    speeds: dict[str, list[float]] = {name: [] for name in paths}
    vs_loader, vs_raw = [], []  # per round: (b) / (c) and (b) / (a)
    for r in range(args.rounds):
        # every other round runs backwards: (b) stays next to both (a) and (c) either way
        for name in list(paths)[:: 1 if r % 2 == 0 else -1]:
            speeds[name].append(paths[name](*models[name]))
        vs_loader.append(speeds[fitted][-1] / speeds[loaded][-1])
        vs_raw.append(speeds[fitted][-1] / speeds[raw][-1])

    speedup = vs_loader
    overhead = [100 * (1 - r) for r in vs_raw]
    rows = {
        **{f"{name}, img/s": (s, ".0f") for name, s in speeds.items()},
        "speedup: (b) / (c)": (speedup, ".2f"),
        "data overhead: 100 * (1 - (b) / (a)), %": (overhead, ".1f"),
    }
    print(
        f"ResNet-20, {size}x{size} images, batch {args.batch_size}, {args.steps} steps per "
        f"measurement, {args.rounds} rounds in alternating order, on {describe_device(device)}"
    )
    print(f"{'':<48} {'median (lowest to highest)':>26}   every round")
    for name, (values, fmt) in rows.items():
        every = " ".join(f"{v:{fmt}}" for v in values)
        print(f"{name:<48} {spread(values, fmt):>26}   {every}")
    median = statistics.median
    print(f"speedup_vs_dataloader={median(speedup):.2f} data_overhead={median(overhead):.1f}%")


if __name__ == "__main__":
    main()
