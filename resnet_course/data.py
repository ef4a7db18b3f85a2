"""Datasets as uint8 tensors, and a loader that augments whole batches on the training device.

Tools tier: the notebooks import it but never copy it, so it is free to change (the tests
say what must hold).

Three datasets share one structure, :class:`ImageData`:

- ``shapes10`` (**Shapes-10**, the default): 10 classes of shapes the package draws itself, so
  every notebook runs offline. Deterministic from a seed; see :func:`make_shapes10`.
- ``cifar10``: CIFAR-10 (Krizhevsky, 2009) through ``torchvision.datasets.CIFAR10``.
- ``fashion_mnist``: Fashion-MNIST through ``torchvision.datasets.FashionMNIST``; its 1-channel
  28x28 images are padded to 32x32 and repeated to 3 channels, so the same models apply.
  Download either once (online) with :func:`download_dataset`; nothing is ever downloaded
  unless asked.

Settings (environment variables, read by :mod:`resnet_course.settings`):

- ``RESNET_COURSE_DATASET``: which dataset :func:`load_dataset` loads when given no name:
  ``shapes10`` (default), ``cifar10`` or ``fashion_mnist``.
- ``RESNET_COURSE_DATA``: the folder holding downloaded datasets (default
  ``~/.cache/resnet_course``), the same whatever folder a notebook runs in.
"""

import math
import os
import pickle
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from . import settings
from .settings import DATASETS
from .shapes10 import SHAPES10_CLASSES, render_split

dataset_setting = settings.dataset  # its name before settings.py: `data.dataset_setting()`


@dataclass(repr=False)
class ImageData:
    """A dataset held in memory: uint8 images and int64 labels for a train and a test split.

    Args:
        name: The dataset's name, e.g. ``"shapes10"``.
        classes: Class names; label ``i`` is ``classes[i]``.
        train_images: Training images, values 0 to 255.
        train_labels: Training labels, ``0 <= label < len(classes)``.
        test_images: Test images.
        test_labels: Test labels.
        mean: Per-channel mean of the training images, scaled to [0, 1] (for normalisation).
        std: Per-channel standard deviation of the training images, scaled to [0, 1].

    Shape:
        - ``train_images``: ``(N, 3, H, W)``, ``uint8``; ``test_images`` likewise with ``M`` images
        - ``train_labels``: ``(N,)``, ``int64``; ``test_labels``: ``(M,)``
    """

    name: str
    classes: tuple[str, ...]
    train_images: Tensor
    train_labels: Tensor
    test_images: Tensor
    test_labels: Tensor
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __repr__(self) -> str:
        c, h, w = self.train_images.shape[1:]
        return (
            f"ImageData({self.name!r}: {len(self.train_labels)} train + {len(self.test_labels)} "
            f"test images of {c}x{h}x{w}, {len(self.classes)} classes)"
        )


def _channel_stats(images: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of uint8 images, scaled to [0, 1]."""
    x = images.transpose(0, 1).reshape(images.shape[1], -1).double() / 255
    return tuple(x.mean(1).tolist()), tuple(x.std(1).tolist())


def _make_image_data(
    name: str,
    classes: tuple[str, ...],
    train: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
) -> ImageData:
    """Wraps (images, labels) pairs into an ``ImageData`` with statistics of the training images."""
    mean, std = _channel_stats(train[0])
    return ImageData(name, classes, train[0], train[1], test[0], test[1], mean, std)


def make_shapes10(
    train_size: int = 50_000, test_size: int = 10_000, image_size: int = 32, seed: int = 0
) -> ImageData:
    """Generates Shapes-10, the course's offline dataset.

    Ten classes of shapes (``SHAPES10_CLASSES``), equally many of each, on 32x32 RGB images like
    CIFAR-10. Each image draws one light shape (every channel 0.6 to 1) with a random size, aspect
    ratio, rotation, position and colour over a dark background gradient (every channel at most
    0.4), crossed by up to three thin mid-tone lines, plus pixel noise. Only the outline tells
    the class: colours, position and size do not. The shape is always lighter than its
    surroundings, so networks start learning at once (see :mod:`resnet_course.shapes10`).

    Its baselines (the book's datasets page and ``benchmarks/dataset_baselines.py``, on a 2-core
    CPU): a linear classifier on the pixels gets about 28%; ResNet-20 with ``fit``'s defaults
    gets above 99% after 2 epochs of 25,000 images, its mean loss over steps 21-40 about 1.6.

    The same arguments always give the same images. The test split depends only on ``seed``
    (not on ``train_size``), so runs with different training sizes are tested on the same images.

    Args:
        train_size: Number of training images.
        test_size: Number of test images.
        image_size: Height and width in pixels (the shapes are drawn at this size, not resized).
        seed: Seed of the random generator.

    Returns:
        The dataset, named ``"shapes10"``.

    Shape:
        - images: ``(train_size, 3, image_size, image_size)`` and ``(test_size, 3, ...)``, uint8
    """
    if train_size < 1 or test_size < 1:
        raise ValueError(f"train_size and test_size must be >= 1, got {train_size}, {test_size}")
    if image_size < 8:
        raise ValueError(f"image_size must be at least 8 pixels to draw a shape, got {image_size}")
    train = render_split(train_size, image_size, 2 * seed)  # even seeds train, odd seeds test
    test = render_split(test_size, image_size, 2 * seed + 1)
    return _make_image_data("shapes10", SHAPES10_CLASSES, train, test)


# ---------------------------------------------------------------------------------------------
# Real datasets through torchvision: same structure, loaded from files on disk.
# ---------------------------------------------------------------------------------------------


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The folder datasets are downloaded to and read from.

    Args:
        root: A folder to use; ``None`` means ``$RESNET_COURSE_DATA``, or ``~/.cache/resnet_course``
            when that is not set (so it does not depend on the notebook's working directory).

    Returns:
        The folder, as an absolute path (it may not exist yet).
    """
    if root is None:
        root = settings.data_folder()
    return Path(root).expanduser().resolve()


def _missing_error(name: str, folder: Path, missing: list[str]) -> FileNotFoundError:
    return FileNotFoundError(
        f"{name} is not on disk: missing {', '.join(missing)} in {folder}. Download it once "
        f"(online) with resnet_course.data.download_dataset({name!r}) or "
        f"load_dataset({name!r}, download=True), or copy the files there; set "
        f"RESNET_COURSE_DATA to use another folder, or RESNET_COURSE_DATASET=shapes10 to train "
        f"on the offline dataset instead."
    )


def _corrupt_error(name: str, folder: Path, problem: str) -> RuntimeError:
    return RuntimeError(
        f"{name} in {folder} is corrupt or truncated ({problem}). Delete the folder and download "
        f"it again with resnet_course.data.download_dataset({name!r})."
    )


def _load_cifar10(root: Path) -> ImageData:
    from torchvision.datasets import CIFAR10
    from torchvision.datasets.utils import check_integrity

    folder = root / CIFAR10.base_folder
    files = (
        CIFAR10.train_list + CIFAR10.test_list + [[CIFAR10.meta["filename"], CIFAR10.meta["md5"]]]
    )
    missing = [f for f, _ in files if not (folder / f).is_file()]
    if missing:
        raise _missing_error("cifar10", folder, missing)
    bad = [f for f, md5 in files if not check_integrity(folder / f, md5)]
    if bad:
        raise _corrupt_error("cifar10", folder, f"wrong checksum: {', '.join(bad)}")
    try:
        train = CIFAR10(root, train=True)
        test = CIFAR10(root, train=False)
    except (pickle.UnpicklingError, EOFError, KeyError, ValueError) as e:
        raise _corrupt_error("cifar10", folder, f"{type(e).__name__}: {e}") from e
    # torchvision keeps images as (N, H, W, C) numpy arrays; PyTorch wants (N, C, H, W)
    splits = [
        (torch.from_numpy(d.data).permute(0, 3, 1, 2).contiguous(), torch.tensor(d.targets))
        for d in (train, test)
    ]
    return _make_image_data("cifar10", tuple(train.classes), splits[0], splits[1])


def _check_idx(path: Path, magic: int, item_shape: tuple[int, ...]) -> int:
    """Checks an unpacked IDX file's header and size; returns how many items it holds.

    IDX (the MNIST format): a big-endian magic number (0x0801 for labels, 0x0803 for images),
    one 4-byte size per dimension, then the bytes.
    """
    size = 4 * (2 + len(item_shape))  # the magic number, the count, the item's sizes
    with open(path, "rb") as f:
        header = f.read(size)
    if len(header) < size:
        raise _corrupt_error("fashion_mnist", path.parent, f"{path.name} has no IDX header")
    found, count, *shape = struct.unpack(f">{2 + len(item_shape)}I", header)
    if found != magic or tuple(shape) != item_shape:
        raise _corrupt_error(
            "fashion_mnist",
            path.parent,
            f"{path.name} has the wrong IDX header: magic number {found:#x} and item sizes "
            f"{shape}, expected {magic:#x} and {list(item_shape)}",
        )
    expected = size + count * math.prod(item_shape)
    if path.stat().st_size != expected:
        raise _corrupt_error(
            "fashion_mnist",
            path.parent,
            f"{path.name} has {path.stat().st_size} bytes, its header says {expected}",
        )
    return count


def _load_fashion_mnist(root: Path) -> ImageData:
    from torchvision.datasets import FashionMNIST
    from torchvision.datasets.utils import check_integrity

    folder = root / "FashionMNIST" / "raw"
    files = [Path(f).stem for f, _ in FashionMNIST.resources]  # the unpacked idx files
    missing = [f for f in files if not (folder / f).is_file()]
    if missing:
        raise _missing_error("fashion_mnist", folder, missing)
    # the downloaded archives have known checksums (torchvision's); the unpacked files are
    # checked by their headers and sizes, and the labels by their range
    archives = [(folder / f, md5) for f, md5 in FashionMNIST.resources]
    bad = [p.name for p, md5 in archives if p.is_file() and not check_integrity(p, md5)]
    if bad:
        raise _corrupt_error("fashion_mnist", folder, f"wrong checksum: {', '.join(bad)}")
    for split in ("train", "t10k"):
        n_images = _check_idx(folder / f"{split}-images-idx3-ubyte", 0x0803, (28, 28))
        n_labels = _check_idx(folder / f"{split}-labels-idx1-ubyte", 0x0801, ())
        if n_images != n_labels:
            problem = f"{split}: {n_images} images but {n_labels} labels"
            raise _corrupt_error("fashion_mnist", folder, problem)
    try:
        train = FashionMNIST(root, train=True)
        test = FashionMNIST(root, train=False)
    except (AssertionError, RuntimeError, TypeError, ValueError) as e:
        raise _corrupt_error("fashion_mnist", folder, f"{type(e).__name__}: {e}") from e
    splits = []
    for d in (train, test):
        if d.targets.numel() and not 0 <= int(d.targets.min()) <= int(d.targets.max()) < 10:
            problem = f"labels from {int(d.targets.min())} to {int(d.targets.max())}, not 0 to 9"
            raise _corrupt_error("fashion_mnist", folder, problem)
        # 28x28 grey -> 32x32 RGB: pad 2 black pixels per side, repeat the channel three times
        images = F.pad(d.data, (2, 2, 2, 2)).unsqueeze(1).expand(-1, 3, -1, -1).contiguous()
        splits.append((images, d.targets))
    return _make_image_data("fashion_mnist", tuple(train.classes), splits[0], splits[1])


def _remove_new(folder: Path, before: set[Path] | None) -> None:
    """Removes what a failed download left in ``folder``: what is not in ``before``.

    ``before`` lists what the folder held, ``None`` if it did not exist (then it goes too).
    """
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path in (before or set()):
            continue
        if path.is_dir():
            path.rmdir()
        else:
            path.unlink()
    if before is None and folder.is_dir():
        folder.rmdir()


def download_dataset(name: str, root: str | os.PathLike | None = None) -> None:
    """Downloads a torchvision dataset into the data folder, once (needs the internet).

    torchvision checks the files' checksums and skips what is already there.

    Args:
        name: ``"cifar10"`` or ``"fashion_mnist"`` (``"shapes10"`` needs no download).
        root: The data folder; ``None`` means :func:`data_root`'s default.

    Raises:
        RuntimeError: If the download fails (e.g. offline); what it had written is removed.
    """
    from torchvision.datasets import CIFAR10, FashionMNIST

    datasets = {"cifar10": CIFAR10, "fashion_mnist": FashionMNIST}
    if name not in datasets:
        raise ValueError(f"only 'cifar10' and 'fashion_mnist' are downloaded; got {name!r}")
    folder = data_root(root)
    before = set(folder.rglob("*")) if folder.is_dir() else None
    try:
        datasets[name](folder, download=True)  # CIFAR10 fetches both splits at once
    except (OSError, RuntimeError) as err:  # offline: URLError, an OSError; torchvision wraps some
        _remove_new(folder, before)  # no empty folder or half a file left behind
        raise RuntimeError(
            f"could not download {name} into {folder} ({type(err).__name__}: {err}). Are you "
            f"online? Offline, download it on a machine that is online and copy the folder "
            f"there, or train on the offline dataset: RESNET_COURSE_DATASET=shapes10"
        ) from err


def _resize(images: Tensor, size: int) -> Tensor:
    """Resizes uint8 images with antialiased bilinear interpolation, keeping uint8."""
    out = F.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True)
    return out.round().clamp(0, 255).to(torch.uint8)


def _subset(data: ImageData, train_size: int | None, test_size: int | None, image_size: int):
    """The first ``train_size`` / ``test_size`` images of ``data``, resized to ``image_size``."""
    splits = []
    for images, labels, size in [
        (data.train_images, data.train_labels, train_size),
        (data.test_images, data.test_labels, test_size),
    ]:
        if size is not None and not 1 <= size <= len(labels):
            raise ValueError(f"{data.name} has {len(labels)} images in a split; asked for {size}")
        images, labels = images[:size], labels[:size]
        if images.shape[-1] != image_size:
            images = _resize(images, image_size)
        splits.append((images, labels))
    return _make_image_data(data.name, data.classes, splits[0], splits[1])


def load_dataset(
    name: str | None = None,
    *,
    train_size: int | None = None,
    test_size: int | None = None,
    image_size: int = 32,
    seed: int = 0,
    root: str | os.PathLike | None = None,
    download: bool = False,
) -> ImageData:
    """Loads a dataset by name: every notebook trains on what this returns.

    Args:
        name: ``"shapes10"``, ``"cifar10"`` or ``"fashion_mnist"``; ``None`` means the
            ``RESNET_COURSE_DATASET`` setting (see :func:`resnet_course.settings.dataset`).
        train_size: Number of training images; ``None`` means all (50,000 for Shapes-10; 50,000
            for CIFAR-10; 60,000 for Fashion-MNIST). Real datasets keep their first images.
        test_size: Number of test images; ``None`` means all (10,000 for each dataset).
        image_size: Height and width. Shapes-10 is drawn at this size; real datasets are resized
            (antialiased bilinear) when it is not 32.
        seed: Seed of Shapes-10 (real datasets ignore it).
        root: Folder of the downloaded datasets; ``None`` means :func:`data_root`'s default.
        download: Download a missing real dataset (needs the internet). When ``False`` (the
            default), missing files raise ``FileNotFoundError`` saying how to get them.

    Returns:
        The dataset, train and test splits as uint8 tensors.

    Shape:
        - images: ``(N, 3, image_size, image_size)``, uint8; labels: ``(N,)``, int64
    """
    name = settings.dataset() if name is None else name
    if name == "shapes10":
        train_size = 50_000 if train_size is None else train_size
        test_size = 10_000 if test_size is None else test_size
        return make_shapes10(train_size, test_size, image_size, seed)
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; use one of {DATASETS}")
    if download:
        download_dataset(name, root)
    data = (
        _load_cifar10(data_root(root))
        if name == "cifar10"
        else _load_fashion_mnist(data_root(root))
    )
    return _subset(data, train_size, test_size, image_size)


# ---------------------------------------------------------------------------------------------
# Augmentation and batching on the device.
# ---------------------------------------------------------------------------------------------


def random_crop_flip(
    images: Tensor, padding: int = 4, generator: torch.Generator | None = None
) -> Tensor:
    """Pads each image with zeros, crops it back at a random place, and flips half of them.

    Every image gets its own crop and flip (a torchvision v2 transform applied to a batch tensor
    gives the whole batch the same one). One gather does it all, with no loop over images.

    Args:
        images: A batch of images (any dtype), on any device.
        padding: Zero pixels added on each side before cropping (4 in He et al., 2015).
        generator: Source of the random offsets and flips, on ``images``' device.

    Returns:
        The augmented batch, in channels-last memory layout.

    Shape:
        - Input: ``(N, C, H, W)``
        - Output: ``(N, C, H, W)``
    """
    n, _, h, w = images.shape
    device = images.device
    padded = F.pad(images, (padding, padding, padding, padding))
    top = torch.randint(0, 2 * padding + 1, (n, 1), device=device, generator=generator)
    left = torch.randint(0, 2 * padding + 1, (n, 1), device=device, generator=generator)
    flip = torch.rand(n, 1, device=device, generator=generator) < 0.5
    cols = torch.arange(w, device=device)
    cols = torch.where(flip, cols.flip(0), cols)  # a flipped image reads its columns backwards
    rows = top + torch.arange(h, device=device)  # (N, H)
    cols = left + cols  # (N, W)
    batch = torch.arange(n, device=device)[:, None, None]
    # indexing with arrays around a slice puts the slice last: the result is (N, H, W, C)
    out = padded[batch, :, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2)  # (N, C, H, W) in shape, channels-last in memory


def normalize(
    images: Tensor, mean: tuple[float, ...] | Tensor, std: tuple[float, ...] | Tensor
) -> Tensor:
    """Converts uint8 images to floats with zero mean and unit variance per channel.

    Args:
        images: Images with values 0 to 255.
        mean: Per-channel mean, in [0, 1] (a tensor already on ``images``' device is used as it
            is: no copy to the device per batch).
        std: Per-channel standard deviation, in [0, 1].

    Returns:
        ``(images / 255 - mean) / std`` as float32, in ``images``' memory layout.

    Shape:
        - Input: ``(N, C, H, W)``
        - Output: ``(N, C, H, W)``
    """
    m = torch.as_tensor(mean, device=images.device).view(1, -1, 1, 1) * 255
    s = torch.as_tensor(std, device=images.device).view(1, -1, 1, 1) * 255
    return (images.float() - m) / s


class DeviceLoader:
    """Batches from images kept as one uint8 tensor on the training device.

    The whole split is copied to ``device`` once; each batch is then indexed, augmented
    (random crop with zero padding and horizontal flip, when ``augment``) and normalised on the
    device, with no worker processes and no per-image Python code.

    The crop's padding is an eighth of the image's width, as in He et al. (2015): 4 pixels at
    32x32, 2 at 16x16 (a fixed 4 would shift a 16-pixel image by a quarter of its width).

    Args:
        images: The split's uint8 images.
        labels: The split's labels.
        batch_size: Images per batch.
        mean: Per-channel mean for :func:`normalize`.
        std: Per-channel standard deviation for :func:`normalize`.
        device: Where to keep the data and make batches.
        augment: Shuffle, crop and flip (training). ``False`` keeps the order and the images as
            they are, and yields the last, smaller batch too (evaluation).
        seed: Seed of the loader's generator: the same seed gives the same batches.
        padding: Zero pixels on each side before the random crop; ``None`` means ``W // 8``.

    Shape:
        - ``images``: ``(N, C, H, W)``, uint8; ``labels``: ``(N,)``
        - each batch: ``x`` ``(B, C, H, W)`` float32 (channels-last), ``y`` ``(B,)`` int64

    Example:
        >>> loader = DeviceLoader(data.train_images, data.train_labels, 128, data.mean, data.std)
        >>> x, y = next(iter(loader))
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        batch_size: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        device: str | torch.device = "cpu",
        augment: bool = True,
        seed: int = 0,
        padding: int | None = None,
    ) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4 or len(images) != len(labels):
            raise ValueError(
                f"expected uint8 images (N, C, H, W) and N labels, got {images.dtype} images of "
                f"shape {tuple(images.shape)} and {len(labels)} labels"
            )
        if augment and len(images) < batch_size:
            raise ValueError(
                f"a training loader drops incomplete batches, so batch_size ({batch_size}) must "
                f"not exceed the number of images ({len(images)})"
            )
        self.device = torch.device(device)
        self.images = images.to(self.device)
        self.labels = labels.to(self.device)
        self.batch_size = batch_size
        self.mean, self.std = mean, std
        # built once, on the device: a tensor made from a tuple per batch is a copy per batch
        self._mean = torch.tensor(mean, device=self.device)
        self._std = torch.tensor(std, device=self.device)
        self.padding = images.shape[-1] // 8 if padding is None else padding
        self.augment = augment
        self.generator = torch.Generator(self.device).manual_seed(seed)

    def __len__(self) -> int:
        """Number of batches per pass over the data."""
        n = len(self.labels)
        return n // self.batch_size if self.augment else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        n = len(self.labels)
        if self.augment:
            order = torch.randperm(n, device=self.device, generator=self.generator)
        else:
            order = torch.arange(n, device=self.device)
        for i in range(len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            x = self.images[idx]
            if self.augment:
                x = random_crop_flip(x, self.padding, self.generator)
            else:
                x = x.contiguous(memory_format=torch.channels_last)
            yield normalize(x, self._mean, self._std), self.labels[idx]
