"""A learner's mistake gets an error that names the problem and the fix."""

import math
import re

import pytest
import torch
from torch import nn

import resnet_course as rc


@pytest.mark.parametrize(
    "layers",
    [[2, 2, 2], [2, 2, 2, 0], [2, 2, 2, -1], "2222", [2.0, 2, 2, 2], [True, 2, 2, 2], 4, None],
)
def test_layers_must_be_four_positive_ints(layers):
    with pytest.raises(ValueError, match=r"layers must be four positive integers.*\[2, 2, 2, 2\]"):
        rc.ResNet(rc.BasicBlock, layers)


def test_block_must_be_a_class():
    with pytest.raises(TypeError, match="block class"):
        rc.ResNet(rc.BasicBlock(64, 64), [2, 2, 2, 2])
    with pytest.raises(TypeError, match="block class"):
        rc.ResNet([2, 2, 2, 2], rc.BasicBlock)


@pytest.mark.parametrize("num_classes", [0, -3, 2.5])
def test_num_classes_must_be_positive(num_classes):
    with pytest.raises(ValueError, match="num_classes must be a positive integer"):
        rc.resnet18(num_classes=num_classes)
    with pytest.raises(ValueError, match="num_classes must be a positive integer"):
        rc.resnet20(num_classes=num_classes)


@pytest.mark.parametrize("depth", [18, 51, 2, 0, 21.0])
def test_cifar_depth_must_be_6n_plus_2(depth):
    with pytest.raises(ValueError, match=r"depth must be 6n \+ 2.*20, 32, 44, 56, 110"):
        rc.CifarResNet(depth)


@pytest.mark.parametrize("shortcut", ["C", "a", None, "projection"])
def test_unknown_shortcut_option(shortcut):
    with pytest.raises(ValueError, match="shortcut must be 'A'.*'B'.*'none'"):
        rc.CifarResNet(20, shortcut=shortcut)


def test_basic_block_rejects_groups():
    with pytest.raises(ValueError, match="use Bottleneck"):
        rc.BasicBlock(64, 64, groups=32)


@pytest.mark.parametrize(
    "model", [rc.resnet18(num_classes=10), rc.resnet20()], ids=["resnet18", "resnet20"]
)
class TestForwardInput:
    def test_single_image_without_batch_dimension(self, model):
        with pytest.raises(ValueError, match=r"\(N, 3, H, W\).*\(3, 32, 32\).*unsqueeze\(0\)"):
            model(torch.randn(3, 32, 32))

    def test_wrong_rank(self, model):
        with pytest.raises(ValueError, match=r"\(N, 3, H, W\).*2 dimensions.*\(8, 3072\)"):
            model(torch.randn(8, 3072))

    def test_grayscale(self, model):
        with pytest.raises(
            ValueError, match=r"\(N, 3, H, W\).*got 1 channels.*\(8, 1, 28, 28\).*expand"
        ):
            model(torch.randn(8, 1, 28, 28))

    def test_channels_last_layout(self, model):
        with pytest.raises(
            ValueError, match=r"got 32 channels.*\(8, 32, 32, 3\).*permute\(0, 3, 1, 2\)"
        ):
            model(torch.randn(8, 32, 32, 3))


# ---------------------------------------------------------------------------------------------
# Issue 13: each typical mistake, the error it now gives, and the words that say what to do.
# (Resuming from another run's or a damaged checkpoint: tests/test_checkpoint_faults.py;
# Fashion-MNIST's files: tests/test_data.py; strip_solutions: tests/test_strip_solutions.py.)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny():
    return rc.make_shapes10(train_size=32, test_size=8, image_size=16)


def small_model(**kwargs):
    torch.manual_seed(0)
    return rc.CifarResNet(8, **kwargs)


def train(model, data, epochs=1, **kwargs):
    kwargs = {"batch_size": 16, "device": "cpu", "progress": False, **kwargs}
    return rc.fit(model, data, epochs, **kwargs)


@pytest.mark.parametrize("outputs", [1000, 12, 9])
def test_1_output_width_must_match_the_classes(tiny, outputs, capsys):
    model = rc.ResNet(rc.BasicBlock, [1, 1, 1, 1], num_classes=outputs, small_input=True)
    expected = rf"gives {outputs} outputs.*10 classes.*num_classes=10.*model\.fc = nn\.Linear"
    with pytest.raises(ValueError, match=expected):
        rc.evaluate(model, tiny, device="cpu")
    with pytest.raises(ValueError, match=expected):
        train(model, tiny)
    assert "epoch 1" not in capsys.readouterr().out  # refused before any training


class ModelOutput(dict):
    """Like a Hugging Face model's output: a dict whose items are also attributes."""

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class Wrapped(nn.Module):
    """A network whose forward returns its scores inside something else: a Hugging Face style
    output (a dict whose `logits` is also an attribute), or a tuple."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.net, self.kind = small_model(), kind

    def forward(self, x: torch.Tensor):
        scores = self.net(x)
        if self.kind == "tuple":
            return scores, x.mean()
        return ModelOutput(logits=scores)


@pytest.mark.parametrize(
    "kind, words", [("hf", "scores are in its `logits`"), ("tuple", "return only it")]
)
def test_1_a_model_that_does_not_return_a_tensor(tiny, kind, words, capsys):
    model = Wrapped(kind)
    for run in (lambda: rc.evaluate(model, tiny, device="cpu"), lambda: train(model, tiny)):
        with pytest.raises(TypeError, match=f"not a tensor of class scores.*{re.escape(words)}"):
            run()
    assert "epoch 1" not in capsys.readouterr().out
    report = rc.check_model(model, "resnet20")
    assert not report.passed and words in report.problems[0], str(report)


class NaNAfter(nn.Module):
    """A tiny network whose loss becomes NaN at training step ``bad`` (counted from 1)."""

    def __init__(self, bad: int) -> None:
        super().__init__()
        self.bad, self.steps = bad, 0
        self.net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(4, 10)

    def forward(self, x):
        out = self.fc(self.net(x))
        if self.training:
            self.steps += 1
            if self.steps >= self.bad:
                out = out * float("nan")
        return out


def test_2_a_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tiny, tmp_path):
    path = tmp_path / "run.pt"
    # 2 steps per epoch: epoch 1 is fine and saved, step 3 (the first of epoch 2) is NaN
    with pytest.raises(FloatingPointError) as error:
        train(NaNAfter(bad=3), tiny, epochs=3, checkpoint=path)
    lr = rc.train.learning_rate(2, 6, 0.1, "cosine", 0.2)
    message = str(error.value)
    assert "became nan at step 3 (step 1 of this epoch)" in message
    assert f"learning rate was {lr:.4g}" in message and "lower lr" in message
    assert "longer warm-up" in message
    saved = torch.load(path, weights_only=True)["state"]["history"]
    assert saved["epoch"] == [1] and all(math.isfinite(v) for v in saved["step_loss"])


def test_2_a_diverging_loss_stops_with_the_step_and_learning_rate(tiny):
    with pytest.raises(FloatingPointError, match=r"at step \d+ .*learning rate was .*lower lr"):
        train(small_model(), tiny, epochs=3, lr=1e6, warmup=0)


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"", "cannot be read"),
        (b"epoch 3, lr 0.1\n", "cannot be read"),
        (None, "not a checkpoint of fit"),  # a model's state_dict
    ],
    ids=["empty", "text", "state_dict"],
)
def test_6_resuming_from_a_file_that_is_not_a_checkpoint(tiny, tmp_path, content, problem):
    path = tmp_path / "run.pt"
    if content is None:
        torch.save(small_model().state_dict(), path)
    else:
        path.write_bytes(content)
    with pytest.raises(rc.checkpoint.CheckpointError) as error:
        train(small_model(), tiny, checkpoint=path)
    assert str(path) in str(error.value) and problem in str(error.value)
    assert "delete it to start over" in str(error.value)


def test_7_an_unwritable_checkpoint_folder_fails_before_training(tiny, tmp_path, capsys):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the checkpoint's folder should be")
    path = blocker / "run.pt"
    with pytest.raises(OSError, match=rf"cannot write the checkpoint {path}.*folder you can"):
        train(small_model(), tiny, checkpoint=path)
    assert "epoch 1" not in capsys.readouterr().out


def test_8_weights_accept_what_torchvision_accepts(hub_dir):
    from torchvision.models import ResNet18_Weights, ResNet50_Weights

    hub_dir.mkdir(parents=True)
    state = rc.resnet18().state_dict()
    torch.save(state, hub_dir / ResNet18_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[-1])
    for name in ("DEFAULT", "IMAGENET1K_V1", "ResNet18_Weights.DEFAULT"):
        model = rc.resnet18(weights=name)
        assert torch.equal(model.fc.weight, state["fc.weight"]), name
    with pytest.raises(TypeError, match=r"weights=True.*not accepted.*ResNet18_Weights\.DEFAULT"):
        rc.resnet18(weights=True)
    with pytest.raises(ValueError, match=r"no such weights; use one of 'DEFAULT', 'IMAGENET1K_V1'"):
        rc.resnet18(weights="imagenet")
    with pytest.raises(TypeError, match=r"must be None.*ResNet18_Weights"):
        rc.resnet18(weights=ResNet50_Weights.DEFAULT)


@pytest.mark.parametrize(
    "model", [rc.resnet18(num_classes=10), rc.resnet20()], ids=["resnet18", "resnet20"]
)
def test_9_input_dtype(model, tiny):
    with pytest.raises(TypeError, match=r"got torch.uint8.*normalize\(x, data.mean, data.std\)"):
        model(tiny.test_images[:4])
    with pytest.raises(TypeError, match=r"got torch.float64.*x\.to\(torch\.float32\)"):
        model(torch.randn(2, 3, 32, 32, dtype=torch.float64))
    assert model.double()(torch.randn(2, 3, 32, 32, dtype=torch.float64)).dtype == torch.float64


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"batch_size": -1}, "batch_size must be a positive integer"),
        ({"batch_size": 64}, "batch_size=64 is more than the 32 training images"),
        ({"epochs": -1}, "epochs must be a positive integer"),
        ({"epochs": 0}, "epochs must be a positive integer"),
        ({"warmup": 1.5}, r"warmup must be a fraction of the steps in \[0, 1\]"),
        ({"lr": float("nan")}, "lr must be a positive number"),
        ({"lr": -0.1}, "lr must be a positive number"),
        ({"momentum": 1.0}, r"momentum must be in \[0, 1\)"),
        ({"weight_decay": -1e-4}, "weight_decay must be a number >= 0"),
        ({"label_smoothing": 1}, r"label_smoothing must be in \[0, 1\)"),
        ({"schedule": "linear"}, "schedule must be 'cosine' or 'step'"),
        ({"optimizer": "adam"}, "optimizer must be 'sgd' or 'adamw'"),
        ({"seed": 0.5}, "seed must be an integer"),
    ],
)
def test_10_fit_arguments_are_checked_up_front(tiny, kwargs, words, capsys):
    epochs = kwargs.pop("epochs", 1)
    with pytest.raises(ValueError, match=words):
        train(small_model(), tiny, epochs, **kwargs)
    assert "Training" not in capsys.readouterr().out


def test_10_an_empty_test_split_is_refused_before_training(tiny):
    empty = rc.ImageData(
        "empty test", tiny.classes, tiny.train_images, tiny.train_labels,
        tiny.test_images[:0], tiny.test_labels[:0], tiny.mean, tiny.std,
    )  # fmt: skip
    with pytest.raises(ValueError, match="test split is empty.*test_size of at least 1"):
        train(small_model(), empty)
    with pytest.raises(ValueError, match="test split .* is empty"):
        rc.evaluate(small_model(), empty, device="cpu")


def test_11_width_per_group_and_groups_must_be_positive():
    with pytest.raises(ValueError, match="width_per_group must be a positive integer.*got 0"):
        rc.resnet50(width_per_group=0)
    with pytest.raises(ValueError, match="groups must be a positive integer.*got 0"):
        rc.resnet50(groups=0)


def test_11_num_classes_true_is_refused():
    with pytest.raises(ValueError, match="num_classes must be a positive integer.*got True"):
        rc.resnet18(num_classes=True)
    with pytest.raises(ValueError, match="num_classes must be a positive integer.*got True"):
        rc.resnet20(num_classes=True)


def test_11_plain_block_in_resnet_says_what_to_use():
    with pytest.raises(TypeError, match=r"torchvision's signature.*PlainBlock.*shortcut='none'"):
        rc.ResNet(rc.PlainBlock, [2, 2, 2, 2])


def test_11_download_offline_explains_and_leaves_nothing(tmp_path, monkeypatch):
    import urllib.error
    import urllib.request

    def offline(*args, **kwargs):
        raise urllib.error.URLError("network is unreachable (test)")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    for name in ("cifar10", "fashion_mnist"):
        root = tmp_path / name
        with pytest.raises(RuntimeError, match=rf"(?s)could not download {name}.*online.*shapes10"):
            rc.download_dataset(name, root)
        assert not root.exists()  # no empty folder left behind
    kept = tmp_path / "kept"
    (kept / "notes.txt").parent.mkdir()
    (kept / "notes.txt").write_text("mine")
    with pytest.raises(RuntimeError, match="could not download"):
        rc.download_dataset("cifar10", kept)
    assert [p.name for p in kept.rglob("*")] == ["notes.txt"]  # what was there stays
