"""Datasets (Shapes-10; CIFAR-10 and Fashion-MNIST from tiny files on disk), the device loader."""

import gzip
import pickle
import struct
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torchvision.datasets import CIFAR10, FashionMNIST

from resnet_course import data as rd

# ---------------------------------------------------------------------------------------------
# Shapes-10
# ---------------------------------------------------------------------------------------------


def test_shapes10_structure():
    d = rd.make_shapes10(train_size=200, test_size=50)
    assert d.name == "shapes10" and d.classes == rd.SHAPES10_CLASSES and len(d.classes) == 10
    assert d.train_images.shape == (200, 3, 32, 32) and d.train_images.dtype == torch.uint8
    assert d.test_images.shape == (50, 3, 32, 32)
    assert d.train_labels.dtype == torch.int64 and d.train_labels.shape == (200,)
    assert torch.bincount(d.train_labels, minlength=10).tolist() == [20] * 10  # balanced
    assert torch.bincount(d.test_labels, minlength=10).tolist() == [5] * 10
    # dark backgrounds (channels <= 0.4) and light shapes (>= 0.6): a dark mean, a wide spread
    assert all(0.2 < m < 0.4 for m in d.mean) and all(0.15 < s < 0.35 for s in d.std)
    assert repr(d) == "ImageData('shapes10': 200 train + 50 test images of 3x32x32, 10 classes)"


def test_shapes10_deterministic_and_seeded():
    a, b = rd.make_shapes10(100, 20, seed=3), rd.make_shapes10(100, 20, seed=3)
    assert torch.equal(a.train_images, b.train_images) and torch.equal(a.test_labels, b.test_labels)
    c = rd.make_shapes10(100, 20, seed=4)
    assert not torch.equal(a.train_images, c.train_images)
    assert not torch.equal(a.train_images[:20], a.test_images)  # train and test differ


def test_shapes10_test_split_does_not_depend_on_train_size():
    small, large = rd.make_shapes10(30, 40), rd.make_shapes10(90, 40)
    assert torch.equal(small.test_images, large.test_images)


def test_shapes10_image_size():
    d = rd.make_shapes10(20, 10, image_size=16)
    assert d.train_images.shape == (20, 3, 16, 16)
    with pytest.raises(ValueError, match="image_size"):
        rd.make_shapes10(20, 10, image_size=4)
    with pytest.raises(ValueError, match="train_size"):
        rd.make_shapes10(0, 10)


def test_shapes10_draws_a_shape_on_every_image():
    # a light shape (channels in [0.6, 1]) on a dark background ([0, 0.4]): a visible object
    d = rd.make_shapes10(100, 10)
    centre = d.train_images[:, :, 8:24, 8:24].float()
    assert (centre.flatten(2).std(2).mean(1) > 10).all()


# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------


def test_load_dataset_uses_the_setting(monkeypatch):
    monkeypatch.setenv("RESNET_COURSE_DATASET", "shapes10")
    d = rd.load_dataset(train_size=20, test_size=10, image_size=16)
    assert d.name == "shapes10" and d.train_images.shape == (20, 3, 16, 16)
    with pytest.raises(ValueError, match="unknown dataset"):
        rd.load_dataset("mnist")


def test_data_root(monkeypatch, tmp_path):
    monkeypatch.setenv("RESNET_COURSE_DATA", str(tmp_path))
    assert rd.data_root() == tmp_path.resolve()
    monkeypatch.delenv("RESNET_COURSE_DATA")
    monkeypatch.chdir(tmp_path)  # the default does not depend on the working directory
    assert rd.data_root() == Path.home().resolve() / ".cache" / "resnet_course"
    assert rd.data_root("x") == (tmp_path / "x").resolve()


# ---------------------------------------------------------------------------------------------
# CIFAR-10 from tiny files in the real format: pickled dicts of (N, 3072) uint8 rows, each row
# the red, green and blue planes of a 32x32 image.
# ---------------------------------------------------------------------------------------------

CIFAR_NAMES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]


def cifar_images(n: int, first: int) -> torch.Tensor:
    """``n`` known images: pixel (c, y, x) of image i is (first + i + c * 7 + y + x) % 256."""
    i = torch.arange(n).view(n, 1, 1, 1) + first
    c, y, x = torch.arange(3).view(1, 3, 1, 1), torch.arange(32).view(1, 1, 32, 1), torch.arange(32)
    return ((i + c * 7 + y + x) % 256).to(torch.uint8)


def write_cifar(root: Path, per_batch: int = 4) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]
    for k, name in enumerate(names):
        images = cifar_images(per_batch, first=k * per_batch)
        batch = {
            "batch_label": f"{name} of 6",
            "labels": [(k * per_batch + i) % 10 for i in range(per_batch)],
            "data": images.reshape(per_batch, 3072).numpy(),
            "filenames": [f"img_{k}_{i}.png" for i in range(per_batch)],
        }
        (folder / name).write_bytes(pickle.dumps(batch))
    meta = {"label_names": CIFAR_NAMES, "num_cases_per_batch": per_batch, "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    return folder


@pytest.fixture
def no_cifar_checksums(monkeypatch):
    """Tiny files cannot match the real files' MD5s: drop the checksums, keep everything else."""
    monkeypatch.setattr(CIFAR10, "train_list", [[f, None] for f, _ in CIFAR10.train_list])
    monkeypatch.setattr(CIFAR10, "test_list", [[f, None] for f, _ in CIFAR10.test_list])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": None})


def test_cifar10_from_disk(tmp_path, no_cifar_checksums):
    write_cifar(tmp_path)
    d = rd.load_dataset("cifar10", root=tmp_path)
    assert d.name == "cifar10" and d.classes == tuple(CIFAR_NAMES)
    assert d.train_images.shape == (20, 3, 32, 32) and d.train_images.dtype == torch.uint8
    assert d.test_images.shape == (4, 3, 32, 32)
    assert torch.equal(d.train_images, cifar_images(20, first=0))  # planes and rows in place
    assert torch.equal(d.test_images, cifar_images(4, first=20))
    assert d.train_labels.tolist() == [i % 10 for i in range(20)]
    assert d.test_labels.dtype == torch.int64


def test_cifar10_subset_and_resize(tmp_path, no_cifar_checksums, monkeypatch):
    write_cifar(tmp_path)
    monkeypatch.setenv("RESNET_COURSE_DATA", str(tmp_path))
    monkeypatch.setenv("RESNET_COURSE_DATASET", "cifar10")
    d = rd.load_dataset(train_size=6, test_size=2, image_size=16)
    assert d.train_images.shape == (6, 3, 16, 16) and d.test_images.shape == (2, 3, 16, 16)
    assert d.train_labels.tolist() == [0, 1, 2, 3, 4, 5]
    with pytest.raises(ValueError, match="has 20 images.*asked for 21"):
        rd.load_dataset(train_size=21)


def test_cifar10_missing(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        rd.load_dataset("cifar10", root=tmp_path)
    message = str(error.value)
    assert "data_batch_1" in message and "test_batch" in message and "batches.meta" in message
    assert str(tmp_path / "cifar-10-batches-py") in message
    assert "download" in message and "RESNET_COURSE_DATA" in message


def test_cifar10_partly_missing(tmp_path, no_cifar_checksums):
    folder = write_cifar(tmp_path)
    (folder / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="missing data_batch_3 in"):
        rd.load_dataset("cifar10", root=tmp_path)


def test_cifar10_checksum_mismatch(tmp_path):
    write_cifar(tmp_path)  # real checksums: tiny files do not match them
    with pytest.raises(RuntimeError, match="corrupt or truncated.*wrong checksum: data_batch_1"):
        rd.load_dataset("cifar10", root=tmp_path)


def test_cifar10_truncated(tmp_path, no_cifar_checksums):
    folder = write_cifar(tmp_path)
    whole = (folder / "data_batch_2").read_bytes()
    (folder / "data_batch_2").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(RuntimeError, match="corrupt or truncated"):
        rd.load_dataset("cifar10", root=tmp_path)


# ---------------------------------------------------------------------------------------------
# Fashion-MNIST from tiny files in the real IDX format: a big-endian header (magic number
# 0x0801 labels / 0x0803 images, then the sizes), then the bytes. Unpacked, as torchvision reads.
# ---------------------------------------------------------------------------------------------


def idx_bytes(t: torch.Tensor) -> bytes:
    header = struct.pack(">I", 0x0800 + t.dim()) + b"".join(struct.pack(">I", s) for s in t.shape)
    return header + t.numpy().tobytes()


@pytest.fixture
def no_fashion_checksums(monkeypatch):
    """Tiny archives cannot match the real ones' MD5s: drop the checksums."""
    monkeypatch.setattr(FashionMNIST, "resources", [(f, None) for f, _ in FashionMNIST.resources])


def write_fashion_mnist(root: Path, n_train: int = 6, n_test: int = 4) -> Path:
    folder = root / "FashionMNIST" / "raw"
    folder.mkdir(parents=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = (torch.arange(n * 28 * 28) % 251 + 1).to(torch.uint8).view(n, 28, 28)
        labels = (torch.arange(n) % 10).to(torch.uint8)
        for kind, t in (("images-idx3", images), ("labels-idx1", labels)):
            raw = idx_bytes(t)
            (folder / f"{prefix}-{kind}-ubyte").write_bytes(raw)
            (folder / f"{prefix}-{kind}-ubyte.gz").write_bytes(gzip.compress(raw))  # as downloaded
    return folder


def test_fashion_mnist_from_disk(tmp_path, no_fashion_checksums):
    write_fashion_mnist(tmp_path)
    d = rd.load_dataset("fashion_mnist", root=tmp_path)
    assert d.name == "fashion_mnist" and d.classes[0] == "T-shirt/top" and len(d.classes) == 10
    assert d.train_images.shape == (6, 3, 32, 32) and d.test_images.shape == (4, 3, 32, 32)
    original = (torch.arange(6 * 28 * 28) % 251 + 1).to(torch.uint8).view(6, 28, 28)
    assert torch.equal(d.train_images[:, 0, 2:30, 2:30], original)  # padded by 2, not resized
    assert d.train_images[:, :, :2].eq(0).all() and d.train_images[:, :, :, 30:].eq(0).all()
    assert torch.equal(d.train_images[:, 0], d.train_images[:, 2])  # grey in all three channels
    assert d.train_labels.tolist() == [0, 1, 2, 3, 4, 5] and d.train_labels.dtype == torch.int64


def test_fashion_mnist_missing(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        rd.load_dataset("fashion_mnist", root=tmp_path)
    message = str(error.value)
    assert "train-images-idx3-ubyte" in message and "t10k-labels-idx1-ubyte" in message
    assert str(tmp_path / "FashionMNIST" / "raw") in message and "download" in message


def test_fashion_mnist_truncated(tmp_path, no_fashion_checksums):
    folder = write_fashion_mnist(tmp_path)
    whole = (folder / "train-images-idx3-ubyte").read_bytes()
    (folder / "train-images-idx3-ubyte").write_bytes(whole[:-100])
    with pytest.raises(RuntimeError, match="corrupt or truncated"):
        rd.load_dataset("fashion_mnist", root=tmp_path)


def test_fashion_mnist_archive_checksum(tmp_path):
    write_fashion_mnist(tmp_path)  # real checksums: the tiny archives do not match them
    with pytest.raises(RuntimeError, match="corrupt or truncated.*wrong checksum: train-images"):
        rd.load_dataset("fashion_mnist", root=tmp_path)


def test_fashion_mnist_random_bytes_of_the_right_length(tmp_path, no_fashion_checksums):
    folder = write_fashion_mnist(tmp_path)
    path = folder / "train-images-idx3-ubyte"
    path.write_bytes(torch.randint(0, 256, (path.stat().st_size,), dtype=torch.uint8).numpy())
    with pytest.raises(RuntimeError, match="corrupt or truncated.*wrong IDX header.*Delete"):
        rd.load_dataset("fashion_mnist", root=tmp_path)


def test_fashion_mnist_labels_out_of_range(tmp_path, no_fashion_checksums):
    folder = write_fashion_mnist(tmp_path)
    labels = torch.tensor([0, 1, 255, 3], dtype=torch.uint8)
    (folder / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(labels))
    with pytest.raises(RuntimeError, match="corrupt or truncated.*labels from 0 to 255"):
        rd.load_dataset("fashion_mnist", root=tmp_path)


def test_download_rejects_shapes10():
    with pytest.raises(ValueError, match="only 'cifar10' and 'fashion_mnist'"):
        rd.download_dataset("shapes10")


# ---------------------------------------------------------------------------------------------
# Augmentation and the loader
# ---------------------------------------------------------------------------------------------


def all_crops(image: torch.Tensor, padding: int = 4) -> list[torch.Tensor]:
    """Every crop of the zero-padded image, flipped and not: the reference, one at a time."""
    _, h, w = image.shape
    padded = F.pad(image, (padding,) * 4)
    crops = []
    for top in range(2 * padding + 1):
        for left in range(2 * padding + 1):
            crop = padded[:, top : top + h, left : left + w]
            crops += [crop, crop.flip(-1)]
    return crops


def test_random_crop_flip_is_a_crop_and_flip_of_each_image():
    images = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8)
    out = rd.random_crop_flip(images, 4, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == torch.uint8
    assert out.is_contiguous(memory_format=torch.channels_last)
    for image, augmented in zip(images, out, strict=True):
        assert any(torch.equal(augmented, crop) for crop in all_crops(image))


def test_random_crop_flip_differs_per_image_and_is_seeded():
    images = torch.randint(0, 256, (1, 3, 8, 8), dtype=torch.uint8).expand(64, -1, -1, -1)
    out = rd.random_crop_flip(images, 4, torch.Generator().manual_seed(1))
    distinct = {tuple(o.flatten().tolist()) for o in out}
    assert len(distinct) > 20  # 162 possible crops: one per image, not one per batch
    again = rd.random_crop_flip(images, 4, torch.Generator().manual_seed(1))
    assert torch.equal(out, again)
    # all offsets and both flips appear in a large batch
    big = torch.arange(64, dtype=torch.uint8).view(1, 1, 8, 8).expand(4000, 1, 8, 8)
    crops = rd.random_crop_flip(big, 4, torch.Generator().manual_seed(2))
    assert len({tuple(c.flatten().tolist()) for c in crops}) == 162


def test_normalize():
    images = torch.full((2, 3, 4, 4), 255, dtype=torch.uint8)
    out = rd.normalize(images, (0.5, 0.5, 0.5), (0.25, 0.5, 1.0))
    assert out.dtype == torch.float32
    assert torch.allclose(out[0, :, 0, 0], torch.tensor([2.0, 1.0, 0.5]))


def labelled_images(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images whose every pixel holds 10 * label + 5, to check that labels follow their images."""
    labels = torch.arange(n) % 10
    images = (labels * 10 + 5).to(torch.uint8).view(n, 1, 1, 1).expand(n, 3, 16, 16).contiguous()
    return images, labels


def test_device_loader_evaluation_order():
    images, labels = labelled_images(25)
    loader = rd.DeviceLoader(images, labels, 10, (0, 0, 0), (1, 1, 1), augment=False)
    batches = list(loader)
    assert len(loader) == 3 and [len(y) for _, y in batches] == [10, 10, 5]  # keeps the last
    x = torch.cat([b[0] for b in batches])
    assert torch.equal((x * 255).round(), images.float())
    assert torch.equal(torch.cat([b[1] for b in batches]), labels)


def test_device_loader_training_batches():
    images, labels = labelled_images(50)
    loader = rd.DeviceLoader(images, labels, 16, (0, 0, 0), (1, 1, 1), seed=0)
    batches = list(loader)
    assert len(loader) == 3 and all(len(y) == 16 for _, y in batches)  # drops the last 2
    seen = torch.cat([y for _, y in batches])
    for x, y in batches:
        assert x.shape == (16, 3, 16, 16) and x.is_contiguous(memory_format=torch.channels_last)
        # the centre pixel is never padding: it must belong to the image of label y
        assert torch.equal((x[:, 0, 8, 8] * 255).round(), (y * 10 + 5).float())
    assert not torch.equal(seen, labels[:48])  # shuffled
    second = torch.cat([y for _, y in loader])
    assert not torch.equal(seen, second)  # a new order every pass
    again = rd.DeviceLoader(images, labels, 16, (0, 0, 0), (1, 1, 1), seed=0)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(again, batches, strict=True))


def test_device_loader_errors():
    images, labels = labelled_images(8)
    with pytest.raises(ValueError, match="batch_size \\(16\\) must not exceed"):
        rd.DeviceLoader(images, labels, 16, (0, 0, 0), (1, 1, 1))
    with pytest.raises(ValueError, match="expected uint8 images"):
        rd.DeviceLoader(images.float(), labels, 4, (0, 0, 0), (1, 1, 1))


def test_load_dataset_downloads_when_asked(tmp_path, monkeypatch, no_cifar_checksums):
    calls = []

    def fake_download(name, root):  # no network in tests: "downloading" writes the tiny files
        calls.append(name)
        write_cifar(Path(root))

    monkeypatch.setattr(rd, "download_dataset", fake_download)
    d = rd.load_dataset("cifar10", root=tmp_path, download=True)
    assert calls == ["cifar10"] and len(d.train_labels) == 20
