"""The command-line trainer, on one process or many: ``python -m resnet_course``.

Tools tier: no notebook copies or imports it (the README shows how to run it), so it is free to
change (the tests say what must hold).

The same command trains on one device or, launched by ``torchrun``, on several processes, one per
GPU (or CPU process), on one machine or several::

    python -m resnet_course --arch resnet20 --data shapes10 --epochs 30 --batch-size 128
    torchrun --nproc_per_node=8 -m resnet_course --arch resnet50 --data /data/imagenet
    torchrun --nnodes=2 --nproc_per_node=8 --rdzv-backend=c10d --rdzv-endpoint=HOST:29400 \\
        --rdzv-id=resnet50 -m resnet_course --arch resnet50 --data /data/imagenet

It is :func:`~resnet_course.train.fit`'s recipe (SGD with Nesterov momentum, warmup then a
cosine or step schedule from :func:`~resnet_course.train.learning_rate`, mixed precision on CUDA,
channels-last) made data parallel with PyTorch's own engine:

- every process holds a whole copy of the model, wrapped in ``DistributedDataParallel``, and
  trains on its own slice of each global batch; the backward pass averages the gradients over
  the processes (an all-reduce), so every copy takes the same step;
- ``--batch-size`` is the **global** batch, split evenly over the processes, and ``--lr`` is the
  learning rate for a batch of ``--reference-batch`` images (256), scaled linearly to the global
  batch (Goyal et al., 2017). The same command on 1 or N processes trains the same recipe;
- the course's datasets stay on the device (:class:`~resnet_course.data.DeviceLoader`; each
  process takes its rank's slice of every global batch, so the batches are those of one
  process); an ImageFolder tree (ImageNet layout) is read by a ``DataLoader`` with workers and a
  ``DistributedSampler``, with the usual ImageNet augmentation;
- only rank 0 prints and writes the checkpoint; every process reads it to resume;
- the backend is chosen from the device: ``nccl`` on CUDA, ``gloo`` on the CPU.
"""

import argparse
import math
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from . import cifar, resnet
from .checkpoint import save_checkpoint
from .data import DATASETS, DeviceLoader, ImageData, load_dataset
from .settings import progress as progress_bars
from .train import History, _amp_dtype, default_device, describe_device, learning_rate

ARCHS = {
    "resnet18": resnet.resnet18,
    "resnet34": resnet.resnet34,
    "resnet50": resnet.resnet50,
    "resnet101": resnet.resnet101,
    "resnet152": resnet.resnet152,
    "resnet20": cifar.resnet20,
    "resnet32": cifar.resnet32,
    "resnet44": cifar.resnet44,
    "resnet56": cifar.resnet56,
    "resnet110": cifar.resnet110,
}

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # the statistics every torchvision ImageNet model uses
IMAGENET_STD = (0.229, 0.224, 0.225)

EXAMPLES = """\
examples:
  one device (CUDA, MPS or the CPU):
    python -m resnet_course --arch resnet20 --data shapes10 --epochs 30 --batch-size 128

  8 GPUs on one machine (batch 1024 = 8 x 128, learning rate 0.1 x 1024 / 256 = 0.4):
    torchrun --nproc_per_node=8 -m resnet_course --arch resnet50 --data /data/imagenet \\
        --batch-size 1024 --epochs 90 --checkpoint runs/resnet50.pt

  two machines of 8 GPUs (run the same command on both; HOST is the first machine):
    torchrun --nnodes=2 --nproc_per_node=8 --rdzv-backend=c10d --rdzv-endpoint=HOST:29400 \\
        --rdzv-id=resnet50 -m resnet_course --arch resnet50 --data /data/imagenet \\
        --batch-size 2048 --epochs 90 --checkpoint /shared/runs/resnet50.pt

--data is a course dataset (shapes10, cifar10, fashion_mnist) or a folder in ImageNet layout:
PATH/train/<class>/<image> and PATH/val/<class>/<image>.
"""


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples as written and adds each option's default, where it has one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default in (None, argparse.SUPPRESS) or action.default is False:
            return action.help
        return f"{action.help} (default: %(default)s)"


def get_args_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m resnet_course``, in the style of torchvision's
    ``references/classification/train.py``.

    Returns:
        The parser; ``get_args_parser().parse_args(argv)`` gives the settings :func:`main` reads.
    """
    p = argparse.ArgumentParser(
        prog="python -m resnet_course",
        description="Trains a ResNet for image classification, on one device or data parallel "
        "on several processes under torchrun (DistributedDataParallel).",
        epilog=EXAMPLES,
        formatter_class=_HelpFormatter,
    )
    p.add_argument("--arch", default="resnet18", choices=list(ARCHS), help="model architecture")
    p.add_argument(
        "--data",
        required=True,
        metavar="NAME_OR_PATH",
        help="dataset: shapes10, cifar10, fashion_mnist, or an ImageFolder tree with train/ "
        "and val/ folders",
    )
    p.add_argument(
        "--data-root",
        default=None,
        metavar="PATH",
        help="folder of the downloaded course datasets (default: $RESNET_COURSE_DATA, else "
        "~/.cache/resnet_course)",
    )
    p.add_argument("--download", action="store_true", help="download cifar10/fashion_mnist")
    p.add_argument("--epochs", default=90, type=int, metavar="N", help="passes over the data")
    p.add_argument(
        "-b",
        "--batch-size",
        default=256,
        type=int,
        metavar="N",
        help="global batch: images per step over all processes together, split evenly "
        "between them (8 processes x 32 images = 256)",
    )
    p.add_argument(
        "--lr",
        default=0.1,
        type=float,
        help="learning rate for a global batch of --reference-batch images; the run uses "
        "lr x batch-size / reference-batch (Goyal et al., 2017)",
    )
    p.add_argument(
        "--reference-batch",
        default=256,
        type=int,
        metavar="N",
        help="the batch --lr is given for (set it to --batch-size to use --lr unscaled)",
    )
    p.add_argument(
        "--momentum", default=0.9, type=float, metavar="M", help="SGD momentum (Nesterov)"
    )
    p.add_argument(
        "--wd",
        "--weight-decay",
        default=1e-4,
        type=float,
        dest="weight_decay",
        metavar="W",
        help="L2 penalty on every weight",
    )
    p.add_argument(
        "--lr-schedule", default="cosine", choices=["cosine", "step"], help="after the warmup"
    )
    p.add_argument(
        "--warmup-epochs",
        default=5.0,
        type=float,
        metavar="N",
        help="epochs over which the learning rate rises linearly to its peak (Goyal et al.)",
    )
    p.add_argument("--label-smoothing", default=0.0, type=float, metavar="EPS", help="0 for none")
    p.add_argument(
        "--norm",
        default="batch",
        choices=["batch", "group"],
        help="normalisation layers: BatchNorm (the paper's) or GroupNorm (Wu and He, 2018), "
        "which does not depend on the batch",
    )
    p.add_argument(
        "--sync-bn",
        action="store_true",
        help="SyncBatchNorm: BatchNorm statistics over the global batch instead of each "
        "process's slice (CUDA only)",
    )
    p.add_argument(
        "--zero-init-residual", action="store_true", help="start every block as the identity"
    )
    p.add_argument(
        "--device", default=None, help="cuda, mps or cpu (default: the fastest one present)"
    )
    p.add_argument(
        "--seed", default=0, type=int, metavar="N", help="seed of the model and the batches"
    )
    p.add_argument(
        "--checkpoint",
        default=None,
        metavar="FILE",
        help="saved by rank 0 after every epoch; a run that finds it resumes from it (on "
        "several machines, put it where every machine can read it)",
    )
    p.add_argument(
        "-j",
        "--workers",
        default=8,
        type=int,
        metavar="N",
        help="data loading workers per process (ImageFolder only)",
    )
    group = p.add_argument_group("course datasets (shapes10, cifar10, fashion_mnist)")
    group.add_argument("--train-size", type=int, metavar="N", help="training images (default: all)")
    group.add_argument("--test-size", type=int, metavar="N", help="test images (default: all)")
    group.add_argument("--image-size", default=32, type=int, metavar="PX", help="height and width")
    group = p.add_argument_group("ImageFolder trees (ImageNet layout)")
    group.add_argument(
        "--train-crop-size", default=224, type=int, metavar="PX", help="random resized crop"
    )
    group.add_argument(
        "--val-resize-size", default=256, type=int, metavar="PX", help="resize before the crop"
    )
    group.add_argument("--val-crop-size", default=224, type=int, metavar="PX", help="centre crop")
    return p


# ---------------------------------------------------------------------------------------------
# The processes: who am I, how many are we, and checks that fail before anything trains.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Processes:
    """This process's place among those torchrun started (one process when run without it).

    Args:
        rank: Index of this process among all of them, 0 to ``world_size - 1``.
        local_rank: Index on this machine: the GPU it uses.
        world_size: Number of processes, on all machines together.
    """

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @classmethod
    def from_env(cls) -> "Processes":
        """Reads ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``, which torchrun sets."""
        env = os.environ
        return cls(
            int(env.get("RANK", 0)), int(env.get("LOCAL_RANK", 0)), int(env.get("WORLD_SIZE", 1))
        )

    @property
    def launched(self) -> bool:
        """Whether torchrun started this process (then it joins a process group)."""
        return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def scaled_lr(lr: float, batch_size: int, reference_batch: int = 256) -> float:
    """The linear scaling rule (Goyal et al., 2017): a k times larger batch, a k times larger rate.

    Args:
        lr: The learning rate that works for a batch of ``reference_batch`` images.
        batch_size: The global batch: images per step over all processes.
        reference_batch: The batch ``lr`` is given for (256 in Goyal et al. and torchvision).

    Returns:
        ``lr * batch_size / reference_batch``.
    """
    return lr * batch_size / reference_batch


def check_batch(batch_size: int, world_size: int) -> int:
    """Checks that the global batch splits evenly over the processes.

    Args:
        batch_size: The global batch.
        world_size: The number of processes.

    Returns:
        The images per process, ``batch_size // world_size``.

    Raises:
        ValueError: If a process would get no image, or the processes unequal shares.
    """
    if batch_size < world_size:
        raise ValueError(
            f"--batch-size {batch_size} is the global batch, split over {world_size} processes, "
            f"so some process would get no image: use --batch-size {world_size} or more (a "
            f"multiple of {world_size}), or start fewer processes (torchrun --nproc_per_node, "
            f"--nnodes)"
        )
    if batch_size % world_size:
        low = batch_size // world_size * world_size
        raise ValueError(
            f"--batch-size {batch_size} (the global batch) does not split evenly over "
            f"{world_size} processes: use a multiple of {world_size}, e.g. --batch-size {low} "
            f"or {low + world_size}, or a number of processes that divides {batch_size}"
        )
    return batch_size // world_size


def check_image_folder(root: str | os.PathLike) -> tuple[Path, Path]:
    """Checks that ``root`` is an ImageFolder tree in ImageNet layout, before anything trains.

    Args:
        root: The folder given as ``--data``.

    Returns:
        Its ``train`` and ``val`` folders.

    Raises:
        FileNotFoundError: If the folder, its ``train`` or ``val`` folder, or their class
            folders are missing.
    """
    root = Path(root)
    layout = f"{root}/train/<class>/<image> and {root}/val/<class>/<image>"
    if not root.is_dir():
        raise FileNotFoundError(
            f"--data {root}: no such folder, and not a course dataset. Pass one of "
            f"{', '.join(DATASETS)}, or a folder in ImageNet layout: {layout}"
        )
    folders = []
    for split in ("train", "val"):
        folder = root / split
        if not folder.is_dir():
            raise FileNotFoundError(
                f"--data {root} has no {split}/ folder; an ImageFolder tree in ImageNet layout "
                f"holds {layout}"
            )
        if not any(p.is_dir() for p in folder.iterdir()):
            raise FileNotFoundError(
                f"{folder} has no class folders: put each class's images in a subfolder named "
                f"after the class, e.g. {folder}/cat/0001.png"
            )
        folders.append(folder)
    return folders[0], folders[1]


def _check_settings(args: argparse.Namespace, processes: Processes, device: torch.device) -> None:
    """Raises a ``ValueError`` naming the fix for settings that cannot work."""
    check_batch(args.batch_size, processes.world_size)
    if args.epochs < 1:
        raise ValueError(f"--epochs must be at least 1, got {args.epochs}")
    if args.momentum <= 0:
        raise ValueError(
            f"--momentum {args.momentum:g}: the trainer uses Nesterov momentum, which needs a "
            f"momentum above 0 (e.g. the default 0.9)"
        )
    if not 0 <= args.warmup_epochs < args.epochs:
        raise ValueError(
            f"--warmup-epochs {args.warmup_epochs:g} must be at least 0 and less than --epochs "
            f"{args.epochs}: pass e.g. --warmup-epochs {args.epochs / 5:g} for a short run"
        )
    if args.sync_bn and device.type != "cuda":
        raise ValueError(
            f"--sync-bn needs CUDA: PyTorch's SyncBatchNorm runs on GPUs only, and this run is on "
            f"{device.type}. Drop --sync-bn, or use --norm group, which needs no statistics "
            f"across processes"
        )
    if args.sync_bn and args.norm != "batch":
        raise ValueError("--sync-bn synchronises BatchNorm; it has no meaning with --norm group")
    if processes.world_size > 1 and device.type == "mps":
        raise ValueError(
            "several processes train on CUDA (nccl) or the CPU (gloo), not on MPS: pass "
            "--device cpu, or run one process"
        )


def _device(args: argparse.Namespace, processes: Processes) -> torch.device:
    """The device of this process: its own GPU (``cuda:LOCAL_RANK``) under torchrun on CUDA."""
    if args.device is not None:
        device = torch.device(args.device)
    elif processes.launched:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = default_device()
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", processes.local_rank)
    return device


# ---------------------------------------------------------------------------------------------
# Data: every process gets its own slice of each global batch.
# ---------------------------------------------------------------------------------------------


class ShardedBatches:
    """This process's slice of every global batch of a :class:`~resnet_course.data.DeviceLoader`.

    Every process makes the same global batches (the same seed, the same crops and flips) and
    keeps rows ``rank * b`` to ``(rank + 1) * b``: together the processes train on exactly the
    batches one process would, which is what makes N processes equal to one.

    Args:
        loader: A training loader whose ``batch_size`` is the global batch.
        processes: This process's rank and the number of processes.

    Shape:
        - each batch: ``x`` ``(B / world_size, C, H, W)``, ``y`` ``(B / world_size,)``
    """

    def __init__(self, loader: DeviceLoader, processes: Processes) -> None:
        self.loader = loader
        self.per_process = check_batch(loader.batch_size, processes.world_size)
        self.start = processes.rank * self.per_process

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        end = self.start + self.per_process
        for x, y in self.loader:
            yield x[self.start : end], y[self.start : end]


@dataclass
class Dataset:
    """What the training loop needs from a dataset, whichever kind it is.

    Args:
        name: How to print it.
        classes: The class names.
        train_images: Images in one epoch (all processes together).
        steps: Optimiser steps per epoch.
        loader: The course datasets' sharded loader (``None`` for an ImageFolder tree).
        folders: An ImageFolder tree's train and val datasets (``None`` for a course dataset).
        test: This process's share of the test images, as a course ``DeviceLoader``.
    """

    name: str
    classes: list[str]
    train_images: int
    steps: int
    loader: ShardedBatches | None = None
    folders: tuple | None = None
    test: DeviceLoader | None = None


def _course_dataset(
    args: argparse.Namespace, data: ImageData, processes: Processes, device: torch.device
) -> Dataset:
    """A course dataset on the device: sharded training batches and this rank's test images."""
    loader = DeviceLoader(
        data.train_images,
        data.train_labels,
        args.batch_size,
        data.mean,
        data.std,
        device,
        augment=True,
        seed=args.seed,
    )
    r, w = processes.rank, processes.world_size
    test = DeviceLoader(
        data.test_images[r::w],
        data.test_labels[r::w],
        500,
        data.mean,
        data.std,
        device,
        augment=False,
    )
    steps = len(loader)
    return Dataset(
        repr(data),
        list(data.classes),
        steps * args.batch_size,
        steps,
        loader=ShardedBatches(loader, processes),
        test=test,
    )


def _folder_dataset(args: argparse.Namespace, processes: Processes) -> Dataset:
    """An ImageFolder tree with torchvision's ImageNet training and evaluation transforms."""
    from torchvision import datasets, transforms

    train_dir, val_dir = check_image_folder(args.data)
    normalize = transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    train = datasets.ImageFolder(
        train_dir,
        transforms.Compose(
            [
                transforms.RandomResizedCrop(args.train_crop_size),
                transforms.RandomHorizontalFlip(),
                transforms.ToTensor(),
                normalize,
            ]
        ),
    )
    val = datasets.ImageFolder(
        val_dir,
        transforms.Compose(
            [
                transforms.Resize(args.val_resize_size),
                transforms.CenterCrop(args.val_crop_size),
                transforms.ToTensor(),
                normalize,
            ]
        ),
    )
    if val.classes != train.classes:
        raise ValueError(
            f"{val_dir} and {train_dir} hold different class folders ({len(val.classes)} and "
            f"{len(train.classes)}): the val classes must be the train classes"
        )
    steps = len(train) // args.batch_size  # the last incomplete batch is dropped
    if steps == 0:
        raise ValueError(
            f"{train_dir} has {len(train)} images, fewer than one global batch of "
            f"{args.batch_size}: lower --batch-size"
        )
    name = f"ImageFolder({len(train)} train + {len(val)} val images, {len(train.classes)} classes)"
    return Dataset(name, train.classes, steps * args.batch_size, steps, folders=(train, val))


def _folder_batches(
    data: Dataset, args: argparse.Namespace, processes: Processes, device: torch.device, epoch: int
) -> Iterator[tuple[Tensor, Tensor]]:
    """One epoch of an ImageFolder tree: this process's images, loaded by worker processes."""
    from torch.utils.data import DataLoader, DistributedSampler

    train = data.folders[0]
    # Each process reads its own 1/world of a permutation that changes every epoch; together
    # they read the images of one global batch per step.
    sampler = DistributedSampler(
        train, processes.world_size, processes.rank, shuffle=True, seed=args.seed, drop_last=True
    )
    sampler.set_epoch(epoch)
    # Random crops from a seed of (seed, epoch, rank): a resumed epoch sees the same images.
    seed = (args.seed * 1_000_003 + epoch) * 1_009 + processes.rank
    torch.manual_seed(seed)  # the transforms' random numbers when there are no workers
    loader = DataLoader(
        train,
        batch_size=args.batch_size // processes.world_size,
        sampler=sampler,
        num_workers=args.workers,
        pin_memory=device.type == "cuda",
        drop_last=True,
        generator=torch.Generator().manual_seed(seed),  # seeds the workers
    )
    for x, y in loader:
        x = x.to(device, non_blocking=True, memory_format=torch.channels_last)
        yield x, y.to(device, non_blocking=True)


def _folder_test_batches(
    data: Dataset, args: argparse.Namespace, processes: Processes, device: torch.device
) -> Iterator[tuple[Tensor, Tensor]]:
    """This process's share of the val images: every ``world_size``-th one, from its rank."""
    from torch.utils.data import DataLoader, Subset

    val = data.folders[1]
    share = Subset(val, range(processes.rank, len(val), processes.world_size))
    loader = DataLoader(
        share,
        batch_size=max(1, args.batch_size // processes.world_size),
        num_workers=args.workers,
        pin_memory=device.type == "cuda",
    )
    for x, y in loader:
        yield x.to(device, memory_format=torch.channels_last), y.to(device)


# ---------------------------------------------------------------------------------------------
# The model.
# ---------------------------------------------------------------------------------------------


def group_norm(model: nn.Module) -> nn.Module:
    """Replaces every ``BatchNorm2d`` of ``model`` by a ``GroupNorm`` (Wu and He, 2018), in place.

    GroupNorm normalises each image over groups of channels, never over the batch: a model
    without BatchNorm computes the same thing whatever the batch, or its split over processes.
    Each layer gets 32 groups (Wu and He's choice), fewer where it has under 64 channels, so that
    a group always holds at least 2 channels.

    Args:
        model: A network with ``BatchNorm2d`` layers.

    Returns:
        The same model.
    """
    for name, child in model.named_children():
        if isinstance(child, nn.BatchNorm2d):
            c = child.num_features
            setattr(model, name, nn.GroupNorm(math.gcd(min(32, c // 2), c), c))
        else:
            group_norm(child)
    return model


def build_model(args: argparse.Namespace, num_classes: int) -> nn.Module:
    """The network ``--arch`` names, with ``--norm``, ``--sync-bn`` and ``--zero-init-residual``.

    Args:
        args: The settings from :func:`get_args_parser`.
        num_classes: Outputs of the classifier.

    Returns:
        The model, initialised from ``--seed`` (the same on every process).
    """
    torch.manual_seed(args.seed)
    model = ARCHS[args.arch](num_classes=num_classes, zero_init_residual=args.zero_init_residual)
    if args.norm == "group":
        group_norm(model)
    if args.sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model


# ---------------------------------------------------------------------------------------------
# Training.
# ---------------------------------------------------------------------------------------------


def _mean_over_processes(t: Tensor) -> Tensor:
    """The average of ``t`` over the processes (``t`` itself on one process)."""
    if dist.is_initialized():
        t = t.clone()
        dist.all_reduce(t)  # a sum over the processes, in place
        t /= dist.get_world_size()
    return t


def _sum_over_processes(t: Tensor) -> Tensor:
    """The sum of ``t`` over the processes (``t`` itself on one process)."""
    if dist.is_initialized():
        t = t.clone()
        dist.all_reduce(t)
    return t


def train_one_epoch(
    model: nn.Module,
    batches,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    lr_at,
    first_step: int,
    label_smoothing: float,
    device: torch.device,
    bar: tqdm,
) -> tuple[Tensor, Tensor]:
    """One pass over this process's batches.

    Args:
        model: The model, wrapped in ``DistributedDataParallel`` when there are several processes.
        batches: This process's ``(x, y)`` batches.
        optimizer: The optimiser.
        scaler: Loss scaling for fp16 (does nothing otherwise).
        lr_at: The learning rate of a step.
        first_step: The step number of the first batch.
        label_smoothing: As in ``F.cross_entropy``.
        device: Where ``model`` is.
        bar: A progress bar to advance.

    Returns:
        The loss of every step on this process's images, and how many it classified correctly.
    """
    model.train()
    dtype = _amp_dtype(device)
    losses, correct = [], torch.zeros((), dtype=torch.long, device=device)
    for i, (x, y) in enumerate(batches):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(first_step + i)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            logits = model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        # Under DistributedDataParallel, backward also averages every gradient over the
        # processes (an all-reduce, bucket by bucket while the backward pass goes on): each
        # process then holds the gradient of the whole global batch and takes the same step.
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        losses.append(loss.detach())
        correct += (logits.argmax(1) == y).sum()
        bar.update()
    return torch.stack(losses).float(), correct


@torch.no_grad()
def evaluate_shards(model: nn.Module, batches, device: torch.device) -> tuple[float, float]:
    """Loss and accuracy on the test images, each process evaluating its share.

    Args:
        model: The bare model (not the ``DistributedDataParallel`` wrapper).
        batches: This process's test ``(x, y)`` batches.
        device: Where ``model`` is.

    Returns:
        Mean loss and accuracy over the test images of all processes together.
    """
    model.eval()
    dtype = _amp_dtype(device)
    totals = torch.zeros(3, dtype=torch.float64, device=device)  # loss, correct, images
    for x, y in batches:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            logits = model(x)
        totals[0] += F.cross_entropy(logits.float(), y, reduction="sum")
        totals[1] += (logits.argmax(1) == y).sum()
        totals[2] += len(y)
    loss, correct, n = _sum_over_processes(totals).tolist()
    return loss / max(n, 1), correct / max(n, 1)


def _settings(args: argparse.Namespace, data: Dataset) -> dict:
    """What a checkpoint must agree on to be resumed (the number of processes may change)."""
    keys = (
        "arch epochs batch_size lr reference_batch momentum weight_decay lr_schedule "
        "warmup_epochs label_smoothing norm sync_bn zero_init_residual seed train_crop_size"
    ).split()
    return {k: getattr(args, k) for k in keys} | {"data": data.name}


def _print0(processes: Processes, *what) -> None:
    """Prints on rank 0 only: N processes printing the same line would print it N times."""
    if processes.rank == 0:
        print(*what, flush=True)


def prepare(args: argparse.Namespace, processes: Processes) -> tuple[torch.device, Dataset]:
    """Checks every setting and loads the data, before any process group or training exists.

    Args:
        args: The settings from :func:`get_args_parser`.
        processes: This process's rank and the number of processes.

    Returns:
        The device of this process and the dataset.

    Raises:
        ValueError, FileNotFoundError: For settings or data that cannot work, naming the fix.
    """
    device = _device(args, processes)
    _check_settings(args, processes, device)
    if args.data in DATASETS:
        data = load_dataset(
            args.data,
            train_size=args.train_size,
            test_size=args.test_size,
            image_size=args.image_size,
            root=args.data_root,
            download=args.download,
        )
        return device, _course_dataset(args, data, processes, device)
    return device, _folder_dataset(args, processes)


def train(
    args: argparse.Namespace, processes: Processes, device: torch.device, data: Dataset
) -> History:
    """Trains ``--arch`` on ``data`` on this process, with the others if there are any.

    Args:
        args: The settings from :func:`get_args_parser`.
        processes: This process's rank and the number of processes.
        device: This process's device.
        data: From :func:`prepare`.

    Returns:
        The history of the run (the same on every process: losses and accuracies are averaged
        over all of them).
    """
    model = build_model(args, len(data.classes)).to(device, memory_format=torch.channels_last)
    lr = scaled_lr(args.lr, args.batch_size, args.reference_batch)
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=lr,
        momentum=args.momentum,
        nesterov=True,
        weight_decay=args.weight_decay,
    )
    scaler = torch.amp.GradScaler(device.type, enabled=_amp_dtype(device) == torch.float16)
    settings = _settings(args, data)
    history = History(device=describe_device(device))

    checkpoint = Path(args.checkpoint) if args.checkpoint else None
    if checkpoint is not None and checkpoint.exists():  # every process reads it
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        changed = {
            k: (state["settings"].get(k), v)
            for k, v in settings.items()
            if state["settings"].get(k) != v
        }
        if changed:
            raise ValueError(
                f"checkpoint {checkpoint} was saved by a run with other settings (saved, now): "
                f"{changed}; delete it or pass another --checkpoint"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        if data.loader is not None:  # the same batches as an unbroken run
            data.loader.loader.generator.set_state(state["generator"])
        history = History(**state["history"])
        if len(history.epoch) == args.epochs:
            _print0(processes, f"Loaded the finished run from {checkpoint}: nothing left to train")
            return history
        _print0(
            processes,
            f"Resuming from {checkpoint} after epoch {len(history.epoch)} of {args.epochs} "
            f"(saved by {state['world_size']} processes, resumed by {processes.world_size})",
        )

    bare = model  # what is saved and evaluated: the model without the DDP wrapper
    if dist.is_initialized():
        # Copies rank 0's weights to every process, then averages gradients in backward.
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    w, b = processes.world_size, args.batch_size
    _print0(
        processes,
        f"Training {args.arch} ({type(bare).__name__}, {args.norm}norm"
        f"{', synchronised' if args.sync_bn else ''}) on {data.name} for {args.epochs} epochs: "
        f"{data.steps} steps of {b} images = {w} process{'es' * (w != 1)} x {b // w}, "
        f"lr {args.lr:g} x {b}/{args.reference_batch} = {lr:g}, on {describe_device(device)}"
        f"{f' (backend {dist.get_backend()})' if dist.is_initialized() else ''}",
    )
    show = processes.rank == 0 and progress_bars()
    total = args.epochs * data.steps
    warmup = args.warmup_epochs / args.epochs
    for epoch in range(len(history.epoch), args.epochs):
        start = time.perf_counter()
        if data.loader is not None:
            batches = data.loader
        else:
            batches = _folder_batches(data, args, processes, device, epoch)
        with tqdm(
            total=data.steps,
            desc=f"epoch {epoch + 1}/{args.epochs}",
            leave=False,
            disable=not show,
            unit="step",
        ) as bar:
            step_loss, correct = train_one_epoch(
                model,
                batches,
                optimizer,
                scaler,
                lambda s: learning_rate(s, total, lr, args.lr_schedule, warmup),
                epoch * data.steps,
                args.label_smoothing,
                device,
                bar,
            )
        step_loss = _mean_over_processes(step_loss).cpu()  # the global batch's loss
        correct = _sum_over_processes(correct).item()
        train_seconds = time.perf_counter() - start
        if dist.is_initialized():  # rank 0's BatchNorm statistics are the model's, as in DDP
            for buffer in bare.buffers():
                dist.broadcast(buffer, 0)
        test = (
            data.test
            if data.test is not None
            else _folder_test_batches(data, args, processes, device)
        )
        test_loss, test_acc = evaluate_shards(bare, test, device)

        history.epoch.append(epoch + 1)
        history.train_loss.append(step_loss.mean().item())
        history.train_acc.append(correct / data.train_images)
        history.test_loss.append(test_loss)
        history.test_acc.append(test_acc)
        history.lr.append(optimizer.param_groups[0]["lr"])
        history.seconds.append(time.perf_counter() - start)
        history.images_per_s.append(data.train_images / train_seconds)
        history.step_loss.extend(step_loss.tolist())
        if checkpoint is not None and processes.rank == 0:  # one writer; the others wait below
            save_checkpoint(
                checkpoint,
                {
                    "settings": settings,
                    "world_size": w,
                    "model": bare.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scaler": scaler.state_dict(),
                    "generator": (
                        data.loader.loader.generator.get_state() if data.loader else None
                    ),
                    "history": asdict(history),
                },
            )
        if dist.is_initialized():
            dist.barrier()  # nobody runs ahead of a checkpoint being written
        _print0(
            processes,
            f"epoch {epoch + 1}/{args.epochs}: train loss {history.train_loss[-1]:.3f} "
            f"acc {history.train_acc[-1]:.1%} | test loss {test_loss:.3f} acc {test_acc:.1%} | "
            f"lr {history.lr[-1]:.4f} | {history.seconds[-1]:.0f} s, "
            f"{history.images_per_s[-1]:.0f} img/s",
        )
    return history


def main(argv: list[str] | None = None) -> History:
    """Runs the trainer with command-line arguments, on this process and the ones torchrun started.

    Checks the settings and loads the data first (a bad setting fails on every process before
    any of them trains), then joins the process group when torchrun started several processes
    (``nccl`` on CUDA, ``gloo`` on the CPU), trains, and leaves the group.

    Args:
        argv: The arguments, e.g. ``["--arch", "resnet20", "--data", "shapes10"]``; ``None``
            means ``sys.argv[1:]``.

    Returns:
        The history of the run.

    Raises:
        ValueError, FileNotFoundError: For settings or data that cannot work, before training.
    """
    args = get_args_parser().parse_args(argv)
    processes = Processes.from_env()
    device, data = prepare(args, processes)
    return run(args, processes, device, data)


def run(
    args: argparse.Namespace, processes: Processes, device: torch.device, data: Dataset
) -> History:
    """:func:`main` after :func:`prepare`: joins the process group, trains, leaves the group."""
    if processes.launched and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        # device_id binds this process to its GPU (nccl), so collectives need not guess it.
        dist.init_process_group(
            "nccl" if device.type == "cuda" else "gloo",
            device_id=device if device.type == "cuda" else None,
        )
    try:
        return train(args, processes, device, data)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def cli(argv: list[str] | None = None) -> None:
    """``python -m resnet_course``: :func:`main`, with a bad setting reported as one line,
    ``error: ...``, and exit status 2 (as argparse reports a bad option), not a traceback.

    Args:
        argv: The arguments; ``None`` means ``sys.argv[1:]``.
    """
    args = get_args_parser().parse_args(argv)
    processes = Processes.from_env()
    try:
        device, data = prepare(args, processes)
    except (ValueError, FileNotFoundError) as e:
        where = f" (rank {processes.rank})" if processes.launched else ""
        print(f"python -m resnet_course: error{where}: {e}", file=sys.stderr)
        sys.exit(2)
    run(args, processes, device, data)
