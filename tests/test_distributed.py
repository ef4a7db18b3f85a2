"""The command-line trainer: one process and two under torchrun (gloo, CPU), resume, bad input.

The torchrun tests start real processes (about 10 s each on an idle 2-core CPU, mostly imports):
a tiny ResNet-20 with GroupNorm (no BatchNorm: a run's result does not depend on how its batch
is split) on 128 Shapes-10 images of 16x16 pixels.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import resnet_course as rc
from resnet_course import distributed as d
from resnet_course import train as rt

ROOT = Path(__file__).resolve().parent.parent
TINY = (
    "--arch resnet20 --data shapes10 --train-size 128 --test-size 64 --image-size 8 "
    "--epochs 2 --batch-size 32 --warmup-epochs 0.5 --wd 5e-4 --seed 3"
).split()
# The runs compared for equality: GroupNorm, on 16x16 images (a later --image-size overrides
# TINY's). Training amplifies rounding differences step by step, the faster the more degenerate the
# normalisation: on 8x8 images (GroupNorm over 2 channels x 2x2 pixels in the last stage) one and
# two processes, which differ only in the order of their sums, part by 1e-3 within 8 steps; on
# 16x16 images they stay within a few 1e-7 (chapter 12 shows the effect on a longer run).
GROUP = TINY + ["--norm", "group", "--image-size", "16"]

# Replaces save_checkpoint to leave a mark per rank that writes, and optionally crashes after
# the first checkpoint (as a machine that dies would), then runs the trainer's command line.
SPY = """\
import os
import sys
from pathlib import Path

import resnet_course.distributed as d

real = d.save_checkpoint


def spy(path, state):
    Path(f"{path}.written-by-rank-{os.environ['RANK']}").touch()
    real(path, state)
    if os.environ.get("CRASH_AFTER_CHECKPOINT"):
        sys.exit("crashed after the first checkpoint (test)")


d.save_checkpoint = spy
d.cli()
"""


@pytest.fixture(autouse=True)
def no_torchrun_env(monkeypatch):
    """Tests run as one process, not under torchrun, unless they say otherwise."""
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RESNET_COURSE_PROGRESS", "0")


def torchrun(args: list[str], nproc: int = 2, script: Path | None = None, **env: str):
    """Runs ``torchrun --standalone --nproc_per_node=N -m resnet_course ARGS`` (or a script)."""
    target = [str(script)] if script else ["-m", "resnet_course"]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += [f"--nproc_per_node={nproc}", *target, *args]
    environment = os.environ | {
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": "1",
        "RESNET_COURSE_PROGRESS": "0",
    }
    environment |= env
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        environment.pop(name, None)
    return subprocess.run(
        command, capture_output=True, text=True, env=environment, timeout=600, cwd=ROOT
    )


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    """The reference: the same command as one process, in this process."""
    path = tmp_path_factory.mktemp("one") / "run.pt"
    d.main(GROUP + ["--checkpoint", str(path)])
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    """The same command on two processes under torchrun; save_checkpoint marks who writes."""
    folder = tmp_path_factory.mktemp("two")
    (folder / "spy.py").write_text(SPY)
    path = folder / "run.pt"
    done = torchrun(GROUP + ["--checkpoint", str(path)], script=folder / "spy.py")
    assert done.returncode == 0, done.stdout + done.stderr
    return done, path


# ---------------------------------------------------------------------------------------------
# Two processes train what one does.
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_two_processes_equal_one_with_the_same_global_batch(one_process, two_processes):
    done, path = two_processes
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert state["world_size"] == 2 and one_process["world_size"] == 1
    assert "2 processes x 16" in done.stdout and "backend gloo" in done.stdout
    ref, two = one_process["model"], state["model"]
    assert list(ref) == list(two)
    for name in ref:  # equal to float rounding: only the order of the sums differs
        torch.testing.assert_close(two[name], ref[name], rtol=1e-4, atol=1e-5, msg=name)
    h1, h2 = one_process["history"], state["history"]
    assert h1["lr"] == h2["lr"] and len(h2["step_loss"]) == 8
    torch.testing.assert_close(torch.tensor(h2["step_loss"]), torch.tensor(h1["step_loss"]))


@pytest.mark.slow
def test_only_rank_0_prints_and_writes_the_checkpoint(two_processes):
    done, path = two_processes
    marks = sorted(p.name for p in path.parent.glob("run.pt.written-by-rank-*"))
    assert marks == ["run.pt.written-by-rank-0"]
    assert done.stdout.count("epoch 2/2:") == 1  # one summary line, not one per process


@pytest.mark.slow
def test_a_crashed_distributed_run_resumes_from_its_checkpoint(two_processes, tmp_path):
    _, whole = two_processes
    (tmp_path / "spy.py").write_text(SPY)
    path = tmp_path / "run.pt"
    crashed = torchrun(
        GROUP + ["--checkpoint", str(path)], script=tmp_path / "spy.py", CRASH_AFTER_CHECKPOINT="1"
    )
    assert crashed.returncode != 0
    assert torch.load(path, weights_only=True)["history"]["epoch"] == [1]

    resumed = torchrun(GROUP + ["--checkpoint", str(path)])  # the real command line
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "Resuming from" in resumed.stdout and "after epoch 1 of 2" in resumed.stdout
    assert "epoch 1/2:" not in resumed.stdout and "epoch 2/2:" in resumed.stdout
    ref, got = weights(whole), weights(path)
    for name in ref:  # bit-identical to the unbroken two-process run
        assert torch.equal(got[name], ref[name]), name
    state = torch.load(path, weights_only=True)
    assert (
        state["history"]["step_loss"]
        == torch.load(whole, weights_only=True)["history"]["step_loss"]
    )


# ---------------------------------------------------------------------------------------------
# One process: fit's recipe, the learning rate, GroupNorm, ImageFolder trees.
# ---------------------------------------------------------------------------------------------


def test_one_process_is_fits_recipe(tmp_path):
    """With BatchNorm, on one process: exactly fit's weights, at lr scaled by 32/256."""
    path = tmp_path / "run.pt"
    history = d.main(TINY + ["--checkpoint", str(path)])
    data = rc.load_dataset("shapes10", train_size=128, test_size=64, image_size=8)
    torch.manual_seed(3)
    model = rc.resnet20()
    expected = rt.fit(
        model,
        data,
        2,
        batch_size=32,
        lr=0.1 * 32 / 256,
        weight_decay=5e-4,
        warmup=0.25,
        device="cpu",
        seed=3,
        progress=False,
    )
    for name, value in model.state_dict().items():
        assert torch.equal(weights(path)[name], value), name
    assert history.step_loss == expected.step_loss and history.lr == expected.lr


def test_scaled_lr_is_the_linear_scaling_rule():
    assert d.scaled_lr(0.1, 256) == pytest.approx(0.1)
    assert d.scaled_lr(0.1, 8192) == pytest.approx(3.2)  # Goyal et al.'s largest batch
    assert d.scaled_lr(0.1, 128, reference_batch=128) == pytest.approx(0.1)


def test_group_norm_replaces_every_batchnorm():
    model = d.group_norm(rc.resnet50(num_classes=10))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    groups = {m.num_channels: m.num_groups for m in model.modules() if isinstance(m, nn.GroupNorm)}
    assert groups[64] == 32 and groups[2048] == 32
    assert d.group_norm(rc.resnet20()).bn1.num_groups == 8  # 16 channels: 2 per group
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 10)  # a batch of one works


def write_image_folder(root: Path, train: int = 8, val: int = 4) -> None:
    """A tiny ImageNet-layout tree of PNGs: two classes, red-ish and blue-ish squares."""
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    for split, n in (("train", train), ("val", val)):
        for c, name in enumerate(("blue", "red")):
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                pixels = torch.randint(0, 100, (12, 12, 3), generator=g, dtype=torch.uint8)
                pixels[..., 2 * (1 - c)] += 150  # red (channel 0) or blue (channel 2)
                Image.fromarray(pixels.numpy()).save(root / split / name / f"{i}.png")


FOLDER_ARGS = (
    "--arch resnet18 --epochs 2 --batch-size 4 --warmup-epochs 0.5 --workers 1 "
    "--train-crop-size 8 --val-resize-size 10 --val-crop-size 8"
).split()


def test_image_folder_trains_and_resumes_exactly(tmp_path, monkeypatch):
    write_image_folder(tmp_path / "images")
    args = FOLDER_ARGS + ["--data", str(tmp_path / "images")]
    whole = d.main(args + ["--checkpoint", str(tmp_path / "whole.pt")])
    assert whole.epoch == [1, 2] and len(whole.step_loss) == 2 * 16 // 4
    assert whole.test_acc[-1] in (0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0)

    real, calls = d.train_one_epoch, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(d, "train_one_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        d.main(args + ["--checkpoint", str(tmp_path / "resumed.pt")])
    monkeypatch.setattr(d, "train_one_epoch", real)
    resumed = d.main(args + ["--checkpoint", str(tmp_path / "resumed.pt")])
    assert resumed.step_loss == whole.step_loss  # the same crops, from (seed, epoch, rank)
    for name, value in weights(tmp_path / "whole.pt").items():
        assert torch.equal(weights(tmp_path / "resumed.pt")[name], value), name


# ---------------------------------------------------------------------------------------------
# Bad input fails before any process trains, saying what to change.
# ---------------------------------------------------------------------------------------------


def as_process(monkeypatch, rank: int, world_size: int) -> None:
    """Makes this process look like one torchrun started (the checks read these variables)."""
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("LOCAL_RANK", str(rank))
    monkeypatch.setenv("WORLD_SIZE", str(world_size))


def fails_before_training(monkeypatch, capsys, args: list[str], error: type, words: str) -> None:
    monkeypatch.setattr(d, "train", lambda *a: pytest.fail("training started"))
    with pytest.raises(error, match=words):
        d.main(args)
    assert not torch.distributed.is_initialized()
    assert "Training" not in capsys.readouterr().out


def test_more_processes_than_images_in_the_batch(monkeypatch, capsys):
    as_process(monkeypatch, 0, 8)
    fails_before_training(
        monkeypatch,
        capsys,
        TINY + ["--batch-size", "4"],
        ValueError,
        r"--batch-size 4 is the global batch, split over 8 processes.*some process would get "
        r"no image: use --batch-size 8 or more.*or start fewer processes \(torchrun "
        r"--nproc_per_node",
    )


def test_a_batch_the_processes_cannot_share_evenly(monkeypatch, capsys):
    as_process(monkeypatch, 1, 4)
    fails_before_training(
        monkeypatch,
        capsys,
        TINY + ["--batch-size", "30"],
        ValueError,
        r"--batch-size 30 \(the global batch\) does not split evenly over 4 processes: use a "
        r"multiple of 4, e.g. --batch-size 28 or 32",
    )


def test_an_image_folder_that_does_not_exist(monkeypatch, capsys, tmp_path):
    fails_before_training(
        monkeypatch,
        capsys,
        FOLDER_ARGS + ["--data", str(tmp_path / "imagenet")],
        FileNotFoundError,
        r"imagenet: no such folder, and not a course dataset. Pass one of shapes10, cifar10, "
        r"fashion_mnist, or a folder in ImageNet layout: .*/train/<class>/<image>",
    )


def test_an_image_folder_without_val(monkeypatch, capsys, tmp_path):
    (tmp_path / "train" / "cat").mkdir(parents=True)
    fails_before_training(
        monkeypatch,
        capsys,
        FOLDER_ARGS + ["--data", str(tmp_path)],
        FileNotFoundError,
        r"has no val/ folder; an ImageFolder tree in ImageNet layout holds",
    )


def test_an_image_folder_without_class_folders(monkeypatch, capsys, tmp_path):
    for split in ("train", "val"):
        (tmp_path / split).mkdir()
        (tmp_path / split / "0001.png").touch()  # images straight in train/: no classes
    fails_before_training(
        monkeypatch,
        capsys,
        FOLDER_ARGS + ["--data", str(tmp_path)],
        FileNotFoundError,
        r"train has no class folders: put each class's images in a subfolder named after the "
        r"class, e.g. .*train/cat/0001.png",
    )


def test_sync_bn_on_a_cpu(monkeypatch, capsys):
    fails_before_training(
        monkeypatch,
        capsys,
        TINY + ["--sync-bn", "--device", "cpu"],
        ValueError,
        r"--sync-bn needs CUDA: PyTorch's SyncBatchNorm runs on GPUs only.*Drop --sync-bn, or "
        r"use --norm group",
    )


def test_warmup_longer_than_the_run(monkeypatch, capsys):
    fails_before_training(
        monkeypatch,
        capsys,
        TINY + ["--warmup-epochs", "5"],
        ValueError,
        r"--warmup-epochs 5 must be at least 0 and less than --epochs 2: pass e.g. "
        r"--warmup-epochs 0.4",
    )


def test_no_momentum(monkeypatch, capsys):
    fails_before_training(
        monkeypatch,
        capsys,
        TINY + ["--momentum", "0"],
        ValueError,
        r"--momentum 0: the trainer uses Nesterov momentum, which needs a momentum above 0",
    )


@pytest.mark.slow
def test_torchrun_reports_a_bad_batch_as_one_line_before_training():
    done = torchrun(TINY + ["--batch-size", "3"], nproc=2)
    assert done.returncode != 0
    assert "Training" not in done.stdout
    assert (
        "python -m resnet_course: error (rank 0): --batch-size 3 (the global batch) does not "
        "split evenly over 2 processes: use a multiple of 2, e.g. --batch-size 2 or 4"
    ) in done.stderr


def test_help_reads_like_torchvisions():
    text = d.get_args_parser().format_help()
    for words in (
        "--arch",
        "--data NAME_OR_PATH",
        "-b N, --batch-size N",
        "global batch",
        "--sync-bn",
        "-j N, --workers N",
        "(default: 0.1)",
        "torchrun --nproc_per_node=8 -m resnet_course",
        "--nnodes=2",
        "PATH/train/<class>/<image>",
    ):
        assert words in text, words
