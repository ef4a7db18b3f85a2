"""Checkpoints of ``fit``: saved after every epoch, and refused unless they belong to the run.

Tools tier: the notebooks import it but never copy it, so it is free to change (the tests
say what must hold).

A checkpoint is a ``torch.save`` file holding a dict:

- ``"format"``: :data:`FORMAT`, so that any other file is recognised as not a checkpoint of fit;
- ``"run"``: what identifies the run: the model's class, parameter count and a fingerprint of its
  module structure, the dataset's name, sizes and a fingerprint of its images and labels, and
  ``fit``'s settings;
- ``"state"``: what training needs to go on exactly where it stopped: the weights, the
  optimizer, the loss scaler, the batch generator and the history so far;
- ``"sha256"``: a checksum of ``run`` and ``state`` (torch does not check its files: a flipped
  byte in a weight loads without complaint).

A file that cannot be read, fails the checksum, or was saved by another run is refused with an
error naming the file, what differs, and "delete it to start over".
"""

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

FORMAT = "resnet_course.fit checkpoint, version 1"


class CheckpointError(ValueError):
    """A checkpoint file that ``fit`` refuses: unreadable, corrupt, or saved by another run."""


def _digest(obj: Any, h: "hashlib._Hash") -> None:
    """Feeds ``obj`` (tensors, numbers, strings, lists and dicts of them) into the hash ``h``."""
    if isinstance(obj, Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"tensor {t.dtype} {tuple(t.shape)}:".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, dict):
        h.update(f"dict {len(obj)}:".encode())
        for key, value in obj.items():
            _digest(key, h)
            _digest(value, h)
    elif isinstance(obj, list | tuple):
        h.update(f"{type(obj).__name__} {len(obj)}:".encode())
        for value in obj:
            _digest(value, h)
    else:
        h.update(f"{type(obj).__name__} {obj!r};".encode())


def checksum(obj: Any) -> str:
    """The SHA-256 of ``obj``'s content, as hex (the same for equal tensors, numbers, strings)."""
    h = hashlib.sha256()
    _digest(obj, h)
    return h.hexdigest()


def model_identity(model: nn.Module) -> dict[str, Any]:
    """What identifies an architecture: its class, parameter count and structure's fingerprint.

    The fingerprint covers the printed module tree (every layer with its sizes and strides) and
    the name, shape and dtype of every entry of the state_dict: a ResNet and its plain twin
    differ even where their parameters have the same names and shapes.

    Args:
        model: The network.

    Returns:
        ``{"class": ..., "parameters": ..., "fingerprint": ...}``.
    """
    entries = [(k, tuple(v.shape), str(v.dtype)) for k, v in model.state_dict().items()]
    return {
        "class": type(model).__qualname__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "fingerprint": checksum([repr(model), entries])[:16],
    }


def data_identity(data: Any) -> dict[str, Any]:
    """What identifies a dataset: its name, sizes, image shape and a fingerprint of its content.

    Args:
        data: An :class:`~resnet_course.data.ImageData`.

    Returns:
        ``{"name": ..., "train": ..., "test": ..., "image": ..., "fingerprint": ...}``.
    """
    content = [data.train_images, data.train_labels, data.test_images, data.test_labels]
    return {
        "name": data.name,
        "train": len(data.train_labels),
        "test": len(data.test_labels),
        "image": "x".join(str(s) for s in data.train_images.shape[1:]),
        "fingerprint": checksum(content)[:16],
    }


def check_writable(path: str | os.PathLike) -> None:
    """Makes ``path``'s folder if needed and checks that a file can be written there.

    ``fit`` calls it before training, so that a bad path fails at once, not after an epoch.

    Args:
        path: The checkpoint file.

    Raises:
        OSError: Naming the path and the reason, if the folder cannot be made or written to.
    """
    folder = Path(path).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise OSError(
            f"cannot write the checkpoint {path}: {err.strerror or err} in {folder}; pass "
            f"checkpoint= a path in a folder you can write to (or None for no checkpoint)"
        ) from err


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Saves ``state`` with ``torch.save`` atomically: a crash mid-write leaves the old file whole.

    Args:
        path: The checkpoint file.
        state: What to save (tensors, numbers, strings, lists and dicts of them).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # atomic: readers see the old file or the new one, never half of one


def save(path: str | os.PathLike, run: dict[str, Any], state: dict[str, Any]) -> None:
    """Writes a checkpoint of ``fit``: the run's identity, the state, and their checksum.

    Args:
        path: The checkpoint file (replaced atomically).
        run: What identifies the run (see the module's docstring).
        state: What resuming needs.
    """
    content = {"run": run, "state": state}
    save_checkpoint(path, {"format": FORMAT, **content, "sha256": checksum(content)})


# when only the fingerprint differs, what that means
_SAME_BUT = {
    "model": ", of the same class and size but another structure (e.g. a ResNet and its plain "
    "twin, whose shortcuts have no parameters)",
    "data": ", of the same name and sizes but other images or labels (e.g. another seed)",
}


def _refuse(path: str | os.PathLike, problem: str) -> CheckpointError:
    return CheckpointError(f"checkpoint {path} {problem}; delete it to start over")


def load(path: str | os.PathLike, run: dict[str, Any]) -> dict[str, Any]:
    """Reads a checkpoint of ``fit`` and returns its state, if it belongs to ``run``.

    Args:
        path: The checkpoint file.
        run: The identity of the run that wants to resume.

    Returns:
        The saved state: ``model``, ``optimizer``, ``scaler``, ``generator``, ``history``.

    Raises:
        CheckpointError: If the file cannot be read, is not a checkpoint of ``fit``, fails its
            checksum, or was saved by a run with another model, dataset or settings.
    """
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds for a damaged or foreign file
        raise _refuse(
            path, f"cannot be read, it is not a checkpoint of fit ({type(err).__name__}: {err})"
        ) from err
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        what = f"a dict with keys {list(saved)[:5]}" if isinstance(saved, dict) else "something"
        raise _refuse(path, f"is not a checkpoint of fit ({what} else, e.g. a state_dict)")
    content = {"run": saved.get("run"), "state": saved.get("state")}
    if saved.get("sha256") != checksum(content):
        raise _refuse(path, "is corrupt: its content does not match its checksum")
    for part, now in run.items():
        before = saved["run"].get(part)
        if before == now:
            continue
        if isinstance(now, dict) and isinstance(before, dict):
            keys = list(now) + [k for k in before if k not in now]
            diff = {k: (before.get(k), now.get(k)) for k in keys if before.get(k) != now.get(k)}
        else:
            diff = (before, now)
        other = {"model": "another model", "data": "other data"}.get(part, f"other {part}")
        only_content = isinstance(diff, dict) and list(diff) == ["fingerprint"]
        hint = _SAME_BUT.get(part, "") if only_content else ""
        raise _refuse(path, f"was saved by a run with {other}{hint} (saved, now): {diff}")
    return saved["state"]
