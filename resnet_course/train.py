"""Training and evaluation: ``fit`` returns a ``History``, ``evaluate`` an ``Evaluation``.

Tools tier: the notebooks import it but never copy it, so it is free to change (the tests
say what must hold).

The loop is the textbook one (SGD with Nesterov momentum and weight decay, cross-entropy loss,
a learning rate set every step), with batches made on the device by
:class:`~resnet_course.data.DeviceLoader`. It runs on CUDA, Apple's MPS or the CPU.

Settings (environment variables, read by :mod:`resnet_course.settings`):

- ``RESNET_COURSE_PROFILE``: how much every notebook trains, see :func:`budget`. ``default``
  (when not set) is sized to the device: a few minutes per notebook on a laptop CPU, more on a
  GPU; ``smoke`` trains for seconds, to test that notebooks run (the test suite sets it).
- ``RESNET_COURSE_PROGRESS``: ``0`` hides the progress bars (the per-epoch summary lines stay);
  used when notebooks are executed to be committed or tested. Bars are shown otherwise.
"""

import json
import math
import os
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from . import checkpoint as ckpt
from . import settings, validate
from .data import DeviceLoader, ImageData, normalize

profile = settings.profile  # its name before settings.py: `rc.profile()`, `train.profile()`

Schedule = Literal["cosine", "step"]
OptimizerName = Literal["sgd", "adamw"]


# ---------------------------------------------------------------------------------------------
# Settings: the profile, the device, and the budget that follows from both.
# ---------------------------------------------------------------------------------------------


def results_file(name: str, folder: str | os.PathLike = "../results") -> Path:
    """Where a chapter saves its results, so that tests and experiments never overwrite the book's.

    The book's tables and figures read ``results/<name>.json``, written by the ``default`` profile
    on Shapes-10. Another dataset gets its own file (``<name>_cifar10.json``); the ``smoke``
    profile (the test suite) writes to a temporary folder instead.

    Args:
        name: The file's stem, e.g. ``"degradation"``.
        folder: The results folder, relative to the notebook (the repository's ``results/``).

    Returns:
        The path to write (its folder exists).
    """
    dataset = settings.dataset()
    stem = name if dataset == "shapes10" else f"{name}_{dataset}"
    if settings.profile() == "smoke":
        folder = Path(tempfile.gettempdir()) / "resnet_course_smoke"
    path = Path(folder) / f"{stem}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def default_device() -> torch.device:
    """The fastest device present: CUDA, then Apple's MPS, then the CPU.

    Returns:
        The device to train on.
    """
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _cpu_name() -> str:
    """The processor's model name (from /proc/cpuinfo on Linux), or what Python knows of it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_device(device: str | torch.device | None = None) -> str:
    """Describes the hardware in one line, to print next to every measured number.

    Args:
        device: The device; ``None`` means :func:`default_device`.

    Returns:
        e.g. ``"CPU: 2 threads, AMD EPYC, torch 2.4.1"`` or
        ``"CUDA: NVIDIA H100 80GB HBM3, torch 2.4.1"``.
    """
    device = torch.device(device) if device is not None else default_device()
    if device.type == "cuda":
        what = f"CUDA: {torch.cuda.get_device_name(device)}"
    elif device.type == "mps":
        what = f"MPS: Apple GPU ({platform.machine()})"
    else:
        threads = torch.get_num_threads()
        what = f"CPU: {threads} thread{'s' * (threads != 1)}, {_cpu_name()}"
    return f"{what}, torch {torch.__version__.split('+')[0]}"


@dataclass(frozen=True)
class Budget:
    """How much a notebook trains, from the profile and the device (see :func:`budget`).

    Args:
        profile: ``"smoke"`` or ``"default"``.
        device: The device type it was sized for: ``"cuda"``, ``"mps"`` or ``"cpu"``.
        train_size: Training images to load.
        test_size: Test images to load.
        epochs: Passes over the training images.
        batch_size: Images per training step.
    """

    profile: str
    device: str
    train_size: int
    test_size: int
    epochs: int
    batch_size: int


# Sized for ResNet-20 on 32x32 images: ~2 minutes on a 2-core CPU, ~2 minutes on an H100.
# `smoke` keeps each device's shape (a GPU trains more epochs on more images than a CPU) at a
# size that runs in seconds, so the tests can run a chapter on another device's budget.
_BUDGETS = {
    ("smoke", "cpu"): (256, 256, 2, 64),
    ("smoke", "mps"): (384, 256, 3, 64),
    ("smoke", "cuda"): (512, 256, 4, 64),
    ("default", "cpu"): (25_000, 10_000, 2, 128),
    ("default", "mps"): (50_000, 10_000, 5, 128),
    ("default", "cuda"): (50_000, 10_000, 30, 128),
}


def budget(device: str | torch.device | None = None) -> Budget:
    """The training budget of the current profile on ``device``, sized for ResNet-20 at 32x32.

    ====================  =====  =====  ======  =====
    profile, device       train  test   epochs  batch
    ====================  =====  =====  ======  =====
    ``smoke``, CPU        256    256    2       64
    ``smoke``, MPS        384    256    3       64
    ``smoke``, CUDA       512    256    4       64
    ``default``, CPU      25000  10000  2       128
    ``default``, MPS      50000  10000  5       128
    ``default``, CUDA     50000  10000  30      128
    ====================  =====  =====  ======  =====

    ``default`` on a 2-core CPU trains ResNet-20 for about two minutes. A notebook that trains a
    costlier model or several models shrinks it, e.g.
    ``dataclasses.replace(b, train_size=b.train_size // 4)``.

    ``$RESNET_COURSE_BUDGET_DEVICE`` (``cpu``, ``mps`` or ``cuda``), when set, sizes the budget
    for that device type whatever the training device is: the tests use it to run the training
    chapters on a CPU with the shape of a GPU's budget (in the ``smoke`` profile), so that a
    notebook's code and checks are tried on every device's budget.

    Args:
        device: The training device; ``None`` means :func:`default_device`.

    Returns:
        The budget; use it as ``load_dataset(train_size=b.train_size, test_size=b.test_size)``
        and ``fit(model, data, b.epochs, batch_size=b.batch_size)``.

    Raises:
        ValueError: For a device type (or ``$RESNET_COURSE_BUDGET_DEVICE``) with no budget.
    """
    name = settings.profile()
    kind = (torch.device(device) if device is not None else default_device()).type
    kind = settings.budget_device() or kind
    if (name, kind) not in _BUDGETS:
        raise ValueError(
            f"no budget for device type {kind!r}; use 'cuda', 'mps' or 'cpu' (from the device, "
            f"or from RESNET_COURSE_BUDGET_DEVICE if it is set)"
        )
    return Budget(name, kind, *_BUDGETS[(name, kind)])


def learning_rate(
    step: int, total_steps: int, peak: float, schedule: Schedule = "cosine", warmup: float = 0.2
) -> float:
    """The learning rate at a training step.

    Both schedules first rise linearly from ``peak / warmup_steps`` to ``peak`` over the first
    ``warmup`` fraction of the steps (Goyal et al., 2017). Then ``"cosine"`` decays along half a
    cosine to 0 at the end; ``"step"`` is He et al. (2015)'s: ``peak``, divided by 10 at 50% and
    again at 75% of training (their 32k and 48k of 64k iterations).

    Args:
        step: The step, from 0 to ``total_steps - 1``.
        total_steps: Steps in the whole run.
        peak: The highest learning rate.
        schedule: ``"cosine"`` or ``"step"``.
        warmup: Fraction of the steps spent warming up (0 for none).

    Returns:
        The learning rate for this step.
    """
    warmup_steps = round(warmup * total_steps)
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)  # 0 to 1
    if schedule == "cosine":
        return peak * 0.5 * (1 + math.cos(math.pi * progress))
    if schedule == "step":
        return peak * 0.1 ** ((progress >= 0.5) + (progress >= 0.75))
    raise ValueError(f"schedule must be 'cosine' or 'step', got {schedule!r}")


# ---------------------------------------------------------------------------------------------
# History and evaluation results.
# ---------------------------------------------------------------------------------------------


@dataclass
class History:
    """What happened during training, one entry per epoch (``step_loss``: one per step).

    Args:
        device: The hardware, from :func:`describe_device`.
        epoch: Epoch numbers, from 1.
        train_loss: Mean training loss of the epoch (on augmented images, while learning).
        train_acc: Training accuracy of the epoch, in [0, 1].
        test_loss: Test loss after the epoch.
        test_acc: Test accuracy after the epoch, in [0, 1].
        lr: Learning rate at the epoch's last step.
        seconds: Wall time of the epoch, evaluation included.
        images_per_s: Training speed: training images / training time (evaluation excluded).
        step_loss: The training loss of every step, in order.
    """

    device: str = ""
    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    images_per_s: list[float] = field(default_factory=list)
    step_loss: list[float] = field(default_factory=list)

    def to_json(self) -> str:
        """Returns the history as a JSON string."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "History":
        """Rebuilds a history from :meth:`to_json`'s string."""
        return cls(**json.loads(text))

    def save(self, path: str | os.PathLike) -> None:
        """Writes the history to a JSON file."""
        Path(path).write_text(self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "History":
        """Reads a history written by :meth:`save`."""
        return cls.from_json(Path(path).read_text())


@dataclass
class Evaluation:
    """A model's results on one split.

    Args:
        loss: Mean cross-entropy loss.
        accuracy: Fraction of images classified correctly, in [0, 1].
        confusion: ``confusion[i, j]`` counts images of class ``i`` predicted as class ``j``.
        predictions: The predicted class of every image, in the split's order.

    Shape:
        - ``confusion``: ``(K, K)`` for ``K`` classes, int64
        - ``predictions``: ``(N,)``, int64, on the CPU
    """

    loss: float
    accuracy: float
    confusion: Tensor
    predictions: Tensor


def _amp_dtype(device: torch.device) -> torch.dtype | None:
    """Mixed precision on CUDA only: bf16 where the GPU has it (Ampere on), else fp16.

    On a CPU, bf16 autocast measured ~12x slower than float32, so it is never used there.
    """
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.get_device_capability(device) >= (8, 0) else torch.float16


@torch.no_grad()
def _check_outputs(model: nn.Module, data: ImageData, device: torch.device) -> None:
    """Runs ``model`` on two images: it must give one score per class of ``data``.

    In eval mode and without gradients, so it changes nothing (not even BatchNorm's statistics);
    done before training, so a missing ``num_classes`` fails at once, not after an epoch.
    """
    was_training = model.training
    x = normalize(data.train_images[:2].to(device), data.mean, data.std)
    logits = model.eval()(x.contiguous(memory_format=torch.channels_last))
    model.train(was_training)
    validate.outputs(logits, len(data.classes), len(x))


@torch.no_grad()
def _evaluate(model: nn.Module, loader: DeviceLoader, num_classes: int) -> Evaluation:
    """Runs ``model`` in eval mode over every batch of ``loader``."""
    model.eval()
    dtype = _amp_dtype(loader.device)
    total_loss, predictions, labels = 0.0, [], []
    for x, y in loader:
        with torch.autocast(loader.device.type, dtype=dtype, enabled=dtype is not None):
            logits = model(x)
        total_loss += F.cross_entropy(logits.float(), y, reduction="sum").item()
        predictions.append(logits.argmax(1))
        labels.append(y)
    predicted, truth = torch.cat(predictions).cpu(), torch.cat(labels).cpu()
    # each (true, predicted) pair counted once, at index true * K + predicted
    pairs = torch.bincount(truth * num_classes + predicted, minlength=num_classes**2)
    return Evaluation(
        loss=total_loss / len(truth),
        accuracy=(predicted == truth).float().mean().item(),
        confusion=pairs.view(num_classes, num_classes),
        predictions=predicted,
    )


def evaluate(
    model: nn.Module,
    data: ImageData,
    split: Literal["train", "test"] = "test",
    batch_size: int = 500,
    device: str | torch.device | None = None,
) -> Evaluation:
    """Measures a model on one split of a dataset, without augmentation.

    Args:
        model: The trained network; it is moved to ``device`` and left in eval mode.
        data: The dataset.
        split: ``"test"`` or ``"train"``.
        batch_size: Images per forward pass.
        device: Where to run; ``None`` means :func:`default_device`.

    Returns:
        Loss, accuracy, confusion matrix and predictions.

    Raises:
        ValueError: For a bad argument, an empty split, or a model whose number of outputs is
            not the number of classes (checked on two images before the split is run).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    validate.positive_int("batch_size", batch_size, " (images per forward pass)")
    images, labels = getattr(data, f"{split}_images"), getattr(data, f"{split}_labels")
    if len(labels) == 0:
        raise ValueError(f"the {split} split of {data!r} is empty: there is nothing to evaluate")
    device = torch.device(device) if device is not None else default_device()
    model.to(device, memory_format=torch.channels_last)
    _check_outputs(model, data, device)
    loader = DeviceLoader(images, labels, batch_size, data.mean, data.std, device, augment=False)
    return _evaluate(model, loader, len(data.classes))


# ---------------------------------------------------------------------------------------------
# Training.
# ---------------------------------------------------------------------------------------------


def _show_progress(progress: bool | None) -> bool:
    """Progress bars unless turned off by the argument or ``RESNET_COURSE_PROGRESS=0``."""
    if progress is not None:
        return progress
    return settings.progress()


def _make_optimizer(
    name: OptimizerName, model: nn.Module, lr: float, momentum: float, weight_decay: float
) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum, or AdamW (default betas), over all of ``model``'s parameters."""
    if name == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=lr, momentum=momentum, nesterov=True, weight_decay=weight_decay
        )
    if name == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {name!r}")


def _check_finite(
    losses: list[Tensor], start: int, first_step: int, lr_at: Callable[[int], float]
) -> None:
    """Raises a ``FloatingPointError`` at the first non-finite loss in ``losses[start:]``.

    One check for many steps (called every ``_CHECK_EVERY`` steps): each check waits for the GPU.
    """
    if len(losses) <= start:  # nothing new since the last check
        return
    finite = torch.isfinite(torch.stack(losses[start:]))
    if bool(finite.all()):
        return
    i = start + int((~finite).int().argmax())  # the first bad step of the epoch
    step = first_step + i
    raise FloatingPointError(
        f"the training loss became {losses[i].item()} at step {step + 1} (step {i + 1} of this "
        f"epoch), where the learning rate was {lr_at(step):.4g}: training diverged. Try a lower "
        f"lr (e.g. half of it) or a longer warm-up (e.g. warmup=0.3); check that the images are "
        f"normalised. A checkpoint keeps its last good epoch"
    )


_CHECK_EVERY = 20  # steps between checks for a NaN or infinite loss (and progress bar updates)


def _train_epoch(
    model: nn.Module,
    loader: DeviceLoader,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    first_step: int,
    lr_at: Callable[[int], float],
    label_smoothing: float,
    bar: tqdm,
) -> tuple[Tensor, Tensor]:
    """One pass over ``loader``; returns every step's loss and the number of correct predictions.

    Raises:
        FloatingPointError: At the first NaN or infinite loss, naming its step and learning rate.
    """
    model.train()
    dtype = _amp_dtype(loader.device)
    losses, correct, checked = [], torch.zeros((), dtype=torch.long, device=loader.device), 0
    for i, (x, y) in enumerate(loader):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(first_step + i)
        with torch.autocast(loader.device.type, dtype=dtype, enabled=dtype is not None):
            logits = model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()  # the scaler does nothing unless training in fp16
        scaler.step(optimizer)
        scaler.update()
        losses.append(loss.detach())  # kept on the device: .item() would wait for the GPU
        correct += (logits.argmax(1) == y).sum()
        bar.update()
        if i % _CHECK_EVERY == 0:
            _check_finite(losses, checked, first_step, lr_at)
            checked = len(losses)
            bar.set_postfix(loss=f"{loss.item():.3f}")
    _check_finite(losses, checked, first_step, lr_at)
    return torch.stack(losses).float().cpu(), correct.cpu()


def fit(
    model: nn.Module,
    data: ImageData,
    epochs: int,
    *,
    batch_size: int = 128,
    lr: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    schedule: Schedule = "cosine",
    warmup: float = 0.2,
    label_smoothing: float = 0.0,
    optimizer: OptimizerName = "sgd",
    device: str | torch.device | None = None,
    seed: int = 0,
    checkpoint: str | os.PathLike | None = None,
    progress: bool | None = None,
) -> History:
    """Trains ``model`` on ``data`` and tests it after every epoch.

    SGD with Nesterov momentum (or AdamW) and weight decay on all parameters, cross-entropy
    loss, the learning rate of :func:`learning_rate` set before every step, batches from
    :class:`~resnet_course.data.DeviceLoader` (random crop and flip). The model and images are
    kept channels-last (faster convolutions). On CUDA the forward pass runs in mixed precision
    (bf16, or fp16 with loss scaling on GPUs older than Ampere); never on a CPU or MPS.

    Every argument, the model's number of outputs and the checkpoint's folder are checked before
    training starts. Training stops with an error at the first NaN or infinite loss.

    Prints one line before training (model, data, device) and one summary line per epoch;
    shows a progress bar during each epoch unless ``progress`` or ``RESNET_COURSE_PROGRESS=0``
    turns it off.

    With ``checkpoint``, the run is saved after every epoch, and a call that finds the file
    resumes from it (a finished run returns at once). On a CPU a resumed run ends with exactly
    the weights of an uninterrupted one. A file saved by another run (another architecture,
    dataset or setting), a damaged file or one that is not a checkpoint of ``fit`` is refused
    (see :mod:`resnet_course.checkpoint`).

    Args:
        model: The network, trained in place (and moved to ``device``).
        data: The dataset (e.g. from :func:`~resnet_course.data.load_dataset`).
        epochs: Passes over the training images.
        batch_size: Images per step (the last incomplete batch of an epoch is dropped).
        lr: Peak learning rate.
        momentum: SGD momentum (Nesterov); AdamW ignores it.
        weight_decay: L2 penalty on every weight (SGD), or AdamW's decoupled weight decay.
        schedule: ``"cosine"`` (warmup then cosine decay, the default) or ``"step"`` (the paper's
            divide-by-10 at 50% and 75% of training).
        warmup: Fraction of the steps over which the learning rate rises to ``lr``. The default,
            a fifth, is long because the course's runs are short: with 5% a deep network at
            ``lr=0.1`` often spikes to a huge loss once the rate peaks, and loses epochs.
        label_smoothing: Weight of the uniform distribution mixed into the targets (0 for none).
        optimizer: ``"sgd"`` (SGD with Nesterov momentum, the paper's) or ``"adamw"``
            (``torch.optim.AdamW`` with its default betas; bottleneck ResNets train far better
            with it in short runs, e.g. ``lr=2e-3, weight_decay=0.05``). Both follow ``schedule``.
        device: Where to train; ``None`` means :func:`default_device`.
        seed: Seed of the batch order, crops and flips (the model's initialisation is yours:
            call ``torch.manual_seed`` before building it).
        checkpoint: File to save the run to after every epoch and to resume from.
        progress: Show progress bars; ``None`` means unless ``RESNET_COURSE_PROGRESS=0``.

    Returns:
        The history of the run (from epoch 1, when resumed).

    Raises:
        ValueError: For a bad argument, or a model whose number of outputs is not the number of
            classes (a :class:`~resnet_course.checkpoint.CheckpointError` for a refused file).
        OSError: If the checkpoint's folder cannot be written to.
        FloatingPointError: At the first NaN or infinite training loss.
    """
    settings = dict(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        schedule=schedule,
        warmup=warmup,
        label_smoothing=label_smoothing,
        optimizer=optimizer,
        seed=seed,
    )
    validate.fit_args(
        **settings, train_size=len(data.train_labels), test_size=len(data.test_labels)
    )
    device = torch.device(device) if device is not None else default_device()
    settings["device"] = device.type
    model.to(device, memory_format=torch.channels_last)
    _check_outputs(model, data, device)
    if checkpoint is not None:
        ckpt.check_writable(checkpoint)

    train_loader = DeviceLoader(
        data.train_images, data.train_labels, batch_size, data.mean, data.std, device, True, seed
    )
    test_loader = DeviceLoader(
        data.test_images, data.test_labels, 500, data.mean, data.std, device, augment=False
    )
    opt = _make_optimizer(optimizer, model, lr, momentum, weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=_amp_dtype(device) == torch.float16)
    steps = len(train_loader)
    history = History(device=describe_device(device))
    if checkpoint is not None:
        run = dict(
            model=ckpt.model_identity(model), data=ckpt.data_identity(data), settings=settings
        )
        history = _resume(checkpoint, run, model, opt, scaler, train_loader) or history
        if len(history.epoch) == epochs:
            print(f"Loaded the finished run from {checkpoint}: nothing left to train")
            return history

    print(
        f"Training {type(model).__name__} on {data!r} for {epochs} epoch{'s' * (epochs != 1)} "
        f"({steps} steps of {batch_size}) on {describe_device(device)}"
    )
    show = _show_progress(progress)
    for epoch in range(len(history.epoch), epochs):
        start = time.perf_counter()
        with tqdm(
            total=steps,
            desc=f"epoch {epoch + 1}/{epochs}",
            leave=False,
            disable=not show,
            unit="step",
        ) as bar:
            step_loss, correct = _train_epoch(
                model,
                train_loader,
                opt,
                scaler,
                epoch * steps,
                lambda s: learning_rate(s, epochs * steps, lr, schedule, warmup),
                label_smoothing,
                bar,
            )
        train_seconds = time.perf_counter() - start
        result = _evaluate(model, test_loader, len(data.classes))

        history.epoch.append(epoch + 1)
        history.train_loss.append(step_loss.mean().item())
        history.train_acc.append(correct.item() / (steps * batch_size))
        history.test_loss.append(result.loss)
        history.test_acc.append(result.accuracy)
        history.lr.append(opt.param_groups[0]["lr"])
        history.seconds.append(time.perf_counter() - start)
        history.images_per_s.append(steps * batch_size / train_seconds)
        history.step_loss.extend(step_loss.tolist())
        if checkpoint is not None:
            _save(checkpoint, run, model, opt, scaler, train_loader, history)
        print(
            f"epoch {epoch + 1}/{epochs}: train loss {history.train_loss[-1]:.3f} "
            f"acc {history.train_acc[-1]:.1%} | test loss {result.loss:.3f} "
            f"acc {result.accuracy:.1%} | lr {history.lr[-1]:.4f} | "
            f"{history.seconds[-1]:.0f} s, {history.images_per_s[-1]:.0f} img/s"
        )
    return history


def _save(
    path: str | os.PathLike,
    run: dict,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    loader: DeviceLoader,
    history: History,
) -> None:
    """Saves everything that resuming needs, with what identifies the run (see ``checkpoint``)."""
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "generator": loader.generator.get_state(),  # the next epoch's batches, crops and flips
        "history": asdict(history),
    }
    ckpt.save(path, run, state)


def _resume(
    path: str | os.PathLike,
    run: dict,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    loader: DeviceLoader,
) -> History | None:
    """Loads a checkpoint of this run into the objects, if the file exists; returns its history.

    Raises:
        CheckpointError: If the file is unreadable, corrupt, or another run's.
    """
    if not Path(path).exists():
        return None
    state = ckpt.load(path, run)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scaler.load_state_dict(state["scaler"])
    loader.generator.set_state(state["generator"])  # the same batches as an unbroken run
    history = History(**state["history"])
    if len(history.epoch) < run["settings"]["epochs"]:
        print(
            f"Resuming from {path} after epoch {len(history.epoch)} of {run['settings']['epochs']}"
        )
    return history


def conv_gradient_norms(model: nn.Module, x: Tensor, y: Tensor) -> dict[str, float]:
    """The gradient norm of every convolution's weight after one forward-backward pass.

    Used at initialisation to see how the gradient's size changes with depth: in a deep plain
    network it shrinks (or grows) layer by layer; shortcuts keep it steady.

    Args:
        model: The network, in training mode (BatchNorm uses the batch's statistics).
        x: A batch of normalised images, on the model's device.
        y: Their labels.

    Returns:
        ``{module name: L2 norm of its weight's gradient}``, in the order of the layers. The
        model's gradients are cleared afterwards.

    Shape:
        - ``x``: ``(N, 3, H, W)``; ``y``: ``(N,)``
    """
    model.train()
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    norms = {
        name: m.weight.grad.norm().item()
        for name, m in model.named_modules()
        if isinstance(m, nn.Conv2d)
    }
    model.zero_grad(set_to_none=True)
    return norms
