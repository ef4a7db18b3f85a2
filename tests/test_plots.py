"""Every figure draws, has the labels a reader needs, and saves as a PNG about 700 pixels wide."""

import matplotlib

matplotlib.use("Agg")  # draw to files, never to a window

import matplotlib.pyplot as plt
import pytest
import torch
from matplotlib.figure import Figure

from resnet_course import plots, resnet20
from resnet_course.data import make_shapes10
from resnet_course.train import Evaluation, History, conv_gradient_norms


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def history(n: int, scale: float) -> History:
    epochs = list(range(1, n + 1))
    return History(
        device="CPU: test",
        epoch=epochs,
        train_loss=[scale / e for e in epochs],
        train_acc=[1 - 0.5 / e for e in epochs],
        test_loss=[scale / e + 0.1 for e in epochs],
        test_acc=[1 - 0.6 / e for e in epochs],
        lr=[0.1] * n,
        seconds=[1.0] * n,
        images_per_s=[400.0] * n,
        step_loss=[scale * 2 / (1 + s / 10) for s in range(10 * n)],
    )


def png_width(fig: Figure, tmp_path) -> int:
    path = tmp_path / "figure.png"
    fig.savefig(path, bbox_inches="tight")  # as the notebook's inline backend saves it
    return plt.imread(path).shape[1]


def test_sample_grid(tmp_path):
    data = make_shapes10(60, 10)
    fig = plots.sample_grid(data, per_class=4)
    assert isinstance(fig, Figure) and len(fig.axes) == 10 * 4
    labels = [ax.get_ylabel() for ax in fig.axes[::4]]
    assert labels == list(data.classes)
    assert "shapes10" in fig._suptitle.get_text()
    assert 600 <= png_width(fig, tmp_path) <= 760


def test_training_curves(tmp_path):
    fig = plots.training_curves({"ResNet-20": history(5, 1.0), "plain-20": history(5, 2.0)})
    loss, accuracy = fig.axes
    assert loss.get_ylabel() == "loss" and accuracy.get_ylabel() == "accuracy (%)"
    assert [t.get_text() for t in accuracy.get_legend().get_texts()] == ["ResNet-20", "plain-20"]
    assert [t.get_text() for t in loss.get_legend().get_texts()] == ["test", "train"]
    assert accuracy.lines[1].get_ydata()[-1] == pytest.approx(88.0)  # test accuracy, in %
    assert 600 <= png_width(fig, tmp_path) <= 760


def test_step_losses(tmp_path):
    fig = plots.step_losses({"a": history(3, 1.0), "b": history(3, 2.0)}, smoothing=5)
    (ax,) = fig.axes
    assert len(ax.lines) == 2 and len(ax.lines[0].get_xdata()) == 30 - 5 + 1
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "training step"
    assert 600 <= png_width(fig, tmp_path) <= 760


def test_confusion_matrix(tmp_path):
    classes = ("cat", "dog", "fox")
    counts = torch.tensor([[8, 2, 0], [1, 9, 0], [0, 0, 10]])
    result = Evaluation(loss=0.3, accuracy=0.9, confusion=counts, predictions=torch.zeros(30))
    fig = plots.confusion_matrix(result, classes)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == list(classes)
    assert "90.0%" in ax.get_title()
    cells = {t.get_text() for t in ax.texts}
    assert {"80", "20", "10", "90", "100"} <= cells  # row percentages
    assert plots.confusion_matrix(counts, classes).axes[0].get_title() == ax.get_title()
    assert 600 <= png_width(fig, tmp_path) <= 760


def test_gradient_norms(tmp_path):
    torch.manual_seed(0)
    x, y = torch.randn(8, 3, 16, 16), torch.arange(8)
    norms = {"ResNet-20": conv_gradient_norms(resnet20(), x, y)}
    fig = plots.gradient_norms(norms)
    (ax,) = fig.axes
    assert len(ax.lines[0].get_xdata()) == 19 and ax.get_yscale() == "log"
    assert 600 <= png_width(fig, tmp_path) <= 760


def test_misclassified(tmp_path):
    data = make_shapes10(60, 20)
    predictions = data.test_labels.clone()
    predictions[[1, 4, 7]] = (data.test_labels[[1, 4, 7]] + 1) % 10  # three mistakes
    result = Evaluation(
        loss=0.5, accuracy=0.85, confusion=torch.zeros(10, 10), predictions=predictions
    )
    fig = plots.misclassified(data, result, n=2, columns=4)
    shown = [ax for ax in fig.axes if ax.images]
    assert len(fig.axes) == 4 and len(shown) == 2  # the first two mistakes, one row
    true, guess = data.classes[data.test_labels[1]], data.classes[predictions[1]]
    assert shown[0].get_title() == f"{true}\nas {guess}"
    assert "2 of 3 misclassified test images (15.0%)" in fig._suptitle.get_text()
    assert 600 <= png_width(fig, tmp_path) <= 760
    none = plots.misclassified(data, Evaluation(0.0, 1.0, torch.zeros(10, 10), data.test_labels))
    assert "no misclassified test images" in none.axes[0].texts[0].get_text()
    with pytest.raises(ValueError, match="20 images"):
        plots.misclassified(data, Evaluation(0.0, 1.0, torch.zeros(10, 10), predictions[:5]))


def test_moving_average_and_log_scale():
    steps, means = plots.moving_average([4.0, 2.0, 0.0, 2.0], 2)
    assert list(steps) == [2, 3, 4] and means.tolist() == [3.0, 1.0, 1.0]
    steps, means = plots.moving_average([1.0, 3.0], 20)  # longer than the run: one mean
    assert list(steps) == [2] and means.tolist() == [2.0]
    fig, ax = plt.subplots()
    ax.plot([1, 2, 3], [0.3, 1.0, 2.5])
    plots.log_scale(ax)
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert ax.get_yscale() == "log" and {"0.5", "1", "2"} <= set(labels), labels
    plots.log_scale(ax, "x")
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    plt.close(fig)
