"""Settings, schedules, fit (history, checkpoints, resume), evaluate and gradient norms."""

import json
import math

import pytest
import torch
from torch import nn

import resnet_course as rc
from resnet_course import train as rt
from resnet_course.data import make_shapes10


@pytest.fixture(scope="module")
def tiny_data():
    return make_shapes10(train_size=96, test_size=40, image_size=16)


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return rc.resnet20()


# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------


# The budget (profiles, devices, the device override) is tested in tests/test_budget.py.


def test_default_device_and_description():
    assert rt.default_device().type in ("cuda", "mps", "cpu")
    text = rt.describe_device("cpu")
    assert text.startswith(f"CPU: {torch.get_num_threads()} thread")
    assert text.endswith(f"torch {torch.__version__.split('+')[0]}") and "\n" not in text


def test_no_mixed_precision_on_cpu():
    assert rt._amp_dtype(torch.device("cpu")) is None


def test_progress_setting(monkeypatch):
    monkeypatch.setenv("RESNET_COURSE_PROGRESS", "0")
    assert rt._show_progress(None) is False and rt._show_progress(True) is True
    monkeypatch.delenv("RESNET_COURSE_PROGRESS")
    assert rt._show_progress(None) is True and rt._show_progress(False) is False


# ---------------------------------------------------------------------------------------------
# Learning-rate schedules
# ---------------------------------------------------------------------------------------------


def test_cosine_schedule():
    lrs = [rt.learning_rate(s, 100, 0.1, "cosine", warmup=0.1) for s in range(100)]
    assert lrs[0] == pytest.approx(0.01) and lrs[9] == pytest.approx(0.1)  # linear warmup
    assert lrs[10] == pytest.approx(0.1)  # cosine starts at the peak
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:], strict=False))  # then only decreases
    assert lrs[-1] < 0.001
    assert rt.learning_rate(55, 100, 0.1, "cosine", warmup=0.1) == pytest.approx(0.05)


def test_step_schedule_is_the_papers():
    lr = [rt.learning_rate(s, 64_000, 0.1, "step", warmup=0) for s in (0, 31_999, 32_000, 48_000)]
    assert lr == pytest.approx([0.1, 0.1, 0.01, 0.001])
    with pytest.raises(ValueError, match="'cosine' or 'step'"):
        rt.learning_rate(0, 10, 0.1, "linear", warmup=0)


# ---------------------------------------------------------------------------------------------
# fit and History
# ---------------------------------------------------------------------------------------------


def test_fit_history(tiny_data, capsys):
    history = rt.fit(tiny_model(), tiny_data, 2, batch_size=32, device="cpu", progress=False)
    steps = 96 // 32
    assert history.epoch == [1, 2] and len(history.step_loss) == 2 * steps
    for name in (
        "train_loss",
        "train_acc",
        "test_loss",
        "test_acc",
        "lr",
        "seconds",
        "images_per_s",
    ):
        values = getattr(history, name)
        assert len(values) == 2 and all(math.isfinite(v) for v in values), name
    assert all(0 <= a <= 1 for a in history.train_acc + history.test_acc)
    assert history.lr[-1] < history.lr[0]  # the schedule decays
    assert history.device.startswith("CPU:")
    out = capsys.readouterr()
    lines = out.out.strip().splitlines()
    assert (
        lines[0].startswith("Training CifarResNet on ImageData('shapes10'") and "CPU:" in lines[0]
    )
    assert lines[1].startswith("epoch 1/2: train loss") and "img/s" in lines[1]
    assert "%|" not in out.err  # no progress bar


def test_fit_shows_a_progress_bar(tiny_data, capsys):
    rt.fit(tiny_model(), tiny_data, 1, batch_size=32, device="cpu", progress=True)
    assert "epoch 1/1" in capsys.readouterr().err


def test_fit_learns(tiny_data):
    # a small, easy problem: 2 classes of 16x16 images, the second brighter
    torch.manual_seed(0)
    images = torch.randint(0, 128, (64, 3, 16, 16), dtype=torch.uint8)
    labels = torch.arange(64) % 2
    images[labels == 1] += 100
    data = rc.data.ImageData(
        "easy", ("dark", "bright"), images, labels, images, labels, (0.5,) * 3, (0.3,) * 3
    )
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 2),
    )
    history = rt.fit(model, data, 5, batch_size=16, lr=0.1, device="cpu", progress=False)
    assert history.test_acc[-1] == 1.0 and history.train_loss[-1] < history.train_loss[0]


def test_history_json_round_trip(tmp_path):
    h = rt.History(
        "CPU: test",
        [1, 2],
        [2.0, 1.5],
        [0.2, 0.4],
        [1.9, 1.4],
        [0.25, 0.5],
        [0.1, 0.0],
        [3.0, 2.9],
        [400.0, 410.0],
        [2.3, 2.1, 1.8],
    )
    assert rt.History.from_json(h.to_json()) == h
    h.save(tmp_path / "h.json")
    assert rt.History.load(tmp_path / "h.json") == h
    assert json.loads((tmp_path / "h.json").read_text())["test_acc"] == [0.25, 0.5]


def test_fit_options_run(tiny_data):
    history = rt.fit(
        tiny_model(),
        tiny_data,
        1,
        batch_size=24,
        schedule="step",
        warmup=0,
        label_smoothing=0.1,
        device="cpu",
        progress=False,
    )
    assert history.lr == [pytest.approx(0.001)]  # 4 steps: the last at 75%, lr / 100


def test_fit_with_adamw(tiny_data, tmp_path):
    path = tmp_path / "adamw.pt"
    model = tiny_model()
    before = [p.detach().clone() for p in model.parameters()]
    history = rt.fit(
        model,
        tiny_data,
        1,
        batch_size=32,
        lr=2e-3,
        weight_decay=0.05,
        warmup=0,
        optimizer="adamw",
        device="cpu",
        progress=False,
        checkpoint=path,
    )
    saved = torch.load(path, weights_only=True)
    assert saved["run"]["settings"]["optimizer"] == "adamw"
    group = saved["state"]["optimizer"]["param_groups"][0]
    assert group["betas"] == (0.9, 0.999) and group["weight_decay"] == 0.05
    assert "exp_avg_sq" in saved["state"]["optimizer"]["state"][0]  # Adam's moments
    # the same warmup + cosine schedule as SGD: 3 steps, no warmup, lr at step 2 of 3
    assert history.lr == [pytest.approx(rt.learning_rate(2, 3, 2e-3, "cosine", warmup=0))]
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    with pytest.raises(ValueError, match="'optimizer': \\('adamw', 'sgd'\\).*delete it"):
        rt.fit(
            tiny_model(),
            tiny_data,
            1,
            batch_size=32,
            lr=2e-3,
            weight_decay=0.05,
            warmup=0,
            device="cpu",
            progress=False,
            checkpoint=path,
        )
    with pytest.raises(ValueError, match="optimizer must be 'sgd' or 'adamw', got 'adam'"):
        rt.fit(tiny_model(), tiny_data, 1, batch_size=32, optimizer="adam", device="cpu")


# ---------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------


def test_resumed_run_is_identical(tiny_data, tmp_path, monkeypatch):
    whole = tiny_model()
    h_whole = rt.fit(
        whole,
        tiny_data,
        3,
        batch_size=32,
        device="cpu",
        seed=5,
        progress=False,
        checkpoint=tmp_path / "whole.pt",
    )

    # interrupt a second run during its second epoch, after the first epoch's checkpoint
    real_train_epoch, calls = rt._train_epoch, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_train_epoch(*args, **kwargs)

    monkeypatch.setattr(rt, "_train_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        rt.fit(
            tiny_model(),
            tiny_data,
            3,
            batch_size=32,
            device="cpu",
            seed=5,
            progress=False,
            checkpoint=tmp_path / "resumed.pt",
        )
    monkeypatch.setattr(rt, "_train_epoch", real_train_epoch)

    torch.manual_seed(123)  # a different initialisation: resuming must overwrite it
    resumed = rc.resnet20()
    h_resumed = rt.fit(
        resumed,
        tiny_data,
        3,
        batch_size=32,
        device="cpu",
        seed=5,
        progress=False,
        checkpoint=tmp_path / "resumed.pt",
    )

    for (name, a), (_, b) in zip(
        whole.state_dict().items(), resumed.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name  # bit-identical, BatchNorm statistics included
    assert h_resumed.epoch == [1, 2, 3] and h_resumed.step_loss == h_whole.step_loss
    assert h_resumed.test_acc == h_whole.test_acc and h_resumed.lr == h_whole.lr


def test_finished_checkpoint_returns_at_once(tiny_data, tmp_path, monkeypatch, capsys):
    path = tmp_path / "run.pt"
    first = rt.fit(
        tiny_model(), tiny_data, 1, batch_size=32, device="cpu", progress=False, checkpoint=path
    )
    monkeypatch.setattr(rt, "_train_epoch", None)  # training again would fail
    again = rt.fit(
        tiny_model(), tiny_data, 1, batch_size=32, device="cpu", progress=False, checkpoint=path
    )
    assert again == first and "Loaded the finished run" in capsys.readouterr().out


def test_checkpoint_with_other_settings(tiny_data, tmp_path):
    path = tmp_path / "run.pt"
    rt.fit(tiny_model(), tiny_data, 1, batch_size=32, device="cpu", progress=False, checkpoint=path)
    with pytest.raises(ValueError, match="other settings.*'lr': \\(0.1, 0.2\\).*delete it"):
        rt.fit(
            tiny_model(),
            tiny_data,
            1,
            batch_size=32,
            lr=0.2,
            device="cpu",
            progress=False,
            checkpoint=path,
        )


def test_save_checkpoint_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    rc.checkpoint.save_checkpoint(path, {"step": 1})
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temporary file left

    def crash(obj, f, *args, **kwargs):  # writes half a file, then dies
        open(f, "wb").write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        rc.checkpoint.save_checkpoint(path, {"step": 2})
    assert torch.load(path, weights_only=True) == {"step": 1}  # the old file is whole


# ---------------------------------------------------------------------------------------------
# evaluate and gradient norms
# ---------------------------------------------------------------------------------------------


class Always(nn.Module):
    """Predicts class ``k`` for every image."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k

    def forward(self, x):
        return nn.functional.one_hot(torch.full((len(x),), self.k), 10).float() * 5


def test_evaluate(tiny_data):
    result = rt.evaluate(Always(3), tiny_data, device="cpu", batch_size=16)
    n = len(tiny_data.test_labels)
    assert result.predictions.shape == (n,) and (result.predictions == 3).all()
    assert result.confusion.shape == (10, 10) and result.confusion.sum() == n
    assert torch.equal(result.confusion[:, 3], torch.bincount(tiny_data.test_labels, minlength=10))
    assert result.accuracy == pytest.approx((tiny_data.test_labels == 3).float().mean().item())
    expected = nn.functional.cross_entropy(Always(3)(torch.zeros(n)), tiny_data.test_labels)
    assert result.loss == pytest.approx(expected.item())
    train = rt.evaluate(Always(3), tiny_data, "train", device="cpu")
    assert train.predictions.shape == (96,)
    with pytest.raises(ValueError, match="'train' or 'test'"):
        rt.evaluate(Always(3), tiny_data, "val")


def test_conv_gradient_norms(tiny_data):
    model = tiny_model()
    x = torch.randn(8, 3, 16, 16)
    y = torch.arange(8)
    norms = rt.conv_gradient_norms(model, x, y)
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    assert list(norms) == convs and len(convs) == 19  # ResNet-20: 19 convs + 1 fc
    assert all(math.isfinite(v) and v > 0 for v in norms.values())
    assert all(p.grad is None for p in model.parameters())  # gradients cleared


def test_results_file_keeps_the_books_results_safe(monkeypatch, tmp_path):
    monkeypatch.setenv("RESNET_COURSE_PROFILE", "default")
    monkeypatch.setenv("RESNET_COURSE_DATASET", "shapes10")
    assert rt.results_file("degradation", tmp_path) == tmp_path / "degradation.json"
    monkeypatch.setenv("RESNET_COURSE_DATASET", "cifar10")
    assert rt.results_file("degradation", tmp_path) == tmp_path / "degradation_cifar10.json"
    monkeypatch.setenv("RESNET_COURSE_PROFILE", "smoke")
    path = rt.results_file("degradation", tmp_path)
    assert tmp_path not in path.parents and path.parent.is_dir()
