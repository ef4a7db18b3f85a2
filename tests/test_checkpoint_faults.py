"""Faults around fit's checkpoints: each ends in an exact resume or a clear refusal, never between.

Interrupted during an epoch or during the save: the resumed run ends with weights bit-identical
to an uninterrupted run's. A flipped byte, a truncated file, the plain twin of the model, or data
of another seed: refused with a CheckpointError naming the file and "delete it to start over".
"""

import pytest
import torch

import resnet_course as rc
from resnet_course import checkpoint as ck

EPOCHS, STEPS = 3, 2  # 32 images, batches of 16


@pytest.fixture(scope="module")
def data():
    return rc.make_shapes10(train_size=32, test_size=8, image_size=16)


def build(shortcut="A", seed=0):
    torch.manual_seed(seed)
    return rc.CifarResNet(8, shortcut=shortcut)


def run(model, data, path):
    kw = dict(batch_size=16, device="cpu", seed=3, progress=False, checkpoint=path)
    return rc.fit(model, data, EPOCHS, **kw)


@pytest.fixture(scope="module")
def whole(data, tmp_path_factory):
    model = build()
    run(model, data, tmp_path_factory.mktemp("whole") / "run.pt")
    return model.state_dict()


@pytest.fixture(scope="module")
def after_epoch_1(data, tmp_path_factory):
    """The bytes of a checkpoint saved after epoch 1 (of 3)."""
    path = tmp_path_factory.mktemp("partial") / "run.pt"
    model = build()
    calls = []

    def hook(m, args):
        if m.training:
            calls.append(1)
            if len(calls) > STEPS:  # the first step of epoch 2
                stop()

    model.register_forward_pre_hook(hook)
    with pytest.raises(KeyboardInterrupt):
        run(model, data, path)
    return path.read_bytes()


def stop():
    raise KeyboardInterrupt


def resume_is_exact(data, path, whole):
    # With a checkpoint, start from another initialisation: resuming must overwrite it. Without
    # one (interrupted before the first save), the run starts over, from the same initialisation.
    model = build(seed=123 if path.exists() else 0)
    run(model, data, path)
    for key, value in model.state_dict().items():
        assert torch.equal(value, whole[key]), key


@pytest.mark.parametrize("epoch", [1, 2, 3])
def test_interrupted_during_an_epoch(data, tmp_path, whole, epoch):
    path, model, steps = tmp_path / "run.pt", build(), []

    def hook(m, args):
        if m.training:
            steps.append(1)
            if len(steps) == (epoch - 1) * STEPS + 2:  # the second step of that epoch
                stop()

    model.register_forward_pre_hook(hook)
    with pytest.raises(KeyboardInterrupt):
        run(model, data, path)
    resume_is_exact(data, path, whole)


@pytest.mark.parametrize("save", [1, 2, 3])
def test_interrupted_during_the_save(data, tmp_path, whole, monkeypatch, save):
    path, real_save, saves = tmp_path / "run.pt", torch.save, []

    def dying_save(obj, f, *args, **kwargs):
        saves.append(1)
        if len(saves) == save:
            open(f, "wb").write(b"PK\x03\x04 half a file")
            raise KeyboardInterrupt
        real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        run(build(), data, path)
    monkeypatch.setattr(torch, "save", real_save)
    resume_is_exact(data, path, whole)


def refused(data, path, before, model=None, words="delete it to start over"):
    with pytest.raises(ck.CheckpointError) as error:
        run(model or build(), data, path)
    message = str(error.value)
    assert str(path) in message and "delete it to start over" in message and words in message
    assert path.read_bytes() == before  # the file is left as it was


@pytest.mark.parametrize("where", [0.25, 0.5, 0.75, 0.9])
def test_flipped_byte(data, tmp_path, after_epoch_1, whole, where):
    path = tmp_path / "run.pt"
    damaged = bytearray(after_epoch_1)
    damaged[int(len(damaged) * where)] ^= 0xFF
    path.write_bytes(bytes(damaged))
    refused(data, path, bytes(damaged))  # unreadable, or its checksum fails


def test_truncated(data, tmp_path, after_epoch_1):
    path = tmp_path / "run.pt"
    path.write_bytes(after_epoch_1[: len(after_epoch_1) // 2])
    refused(data, path, path.read_bytes(), words="cannot be read")


def test_plain_twin(data, tmp_path, after_epoch_1):
    path = tmp_path / "run.pt"
    path.write_bytes(after_epoch_1)
    refused(
        data,
        path,
        after_epoch_1,
        model=build("none"),
        words="another model, of the same class and size but another structure",
    )


def test_data_of_another_seed(data, tmp_path, after_epoch_1):
    path = tmp_path / "run.pt"
    path.write_bytes(after_epoch_1)
    other = rc.make_shapes10(train_size=32, test_size=8, image_size=16, seed=1)
    with pytest.raises(
        ck.CheckpointError,
        match="other data, of the same name and sizes but other images.*fingerprint.*delete it",
    ):
        run(build(), other, path)


def test_the_undamaged_checkpoint_resumes_exactly(data, tmp_path, after_epoch_1, whole):
    path = tmp_path / "run.pt"
    path.write_bytes(after_epoch_1)
    resume_is_exact(data, path, whole)
