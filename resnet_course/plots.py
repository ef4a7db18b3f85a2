"""Figures for the notebooks: samples, training curves, confusions, mistakes, gradient norms.

Tools tier: the notebooks import it but never copy it, so it is free to change (the tests
say what must hold).

Every function returns a matplotlib ``Figure`` about 7 inches (700 pixels) wide, the width of a
book page. Figures are made with pyplot, so a notebook shows each once: end the cell with ``;``.
"""

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
from torch import Tensor

from .data import ImageData
from .train import Evaluation, History


def _draw_image(ax, image: Tensor | None = None) -> None:
    """Draws a ``(C, H, W)`` image on ``ax`` (none: leaves it empty), without ticks or frame."""
    ax.set_xticks([])
    ax.set_yticks([])
    ax.spines[:].set_visible(False)
    if image is not None:
        # (C, H, W) -> (H, W, C), the layout matplotlib draws
        ax.imshow(image.permute(1, 2, 0).cpu().numpy(), interpolation="nearest")


def moving_average(values: list[float], window: int) -> tuple[range, Tensor]:
    """The mean of every run of ``window`` consecutive values, for smoothing per-step losses.

    Args:
        values: E.g. a :class:`~resnet_course.train.History`'s ``step_loss``.
        window: Values per mean; shortened to ``len(values)`` when longer, at least 1.

    Returns:
        ``(steps, means)``: each mean and the (1-based) step it ends at, ready for ``ax.plot``.
    """
    values = torch.tensor(values)
    window = max(1, min(window, len(values)))
    return range(window, len(values) + 1), values.unfold(0, window, 1).mean(1)


def log_scale(ax, axis: str = "y") -> None:
    """Puts one axis of ``ax`` on a log scale with ticks at 0.1 0.2 0.5 1 2 5 10, not at 10^x.

    Args:
        ax: A matplotlib ``Axes``.
        axis: ``"y"`` (e.g. for losses) or ``"x"``.
    """
    getattr(ax, f"set_{axis}scale")("log")
    scale = getattr(ax, f"{axis}axis")
    scale.set_major_locator(LogLocator(subs=(1, 2, 5)))
    scale.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    scale.set_minor_formatter(NullFormatter())


def sample_grid(
    data: ImageData, per_class: int = 10, split: str = "train", title: str | None = None
) -> Figure:
    """Shows the first ``per_class`` images of every class, one row per class, named on the left.

    Args:
        data: The dataset.
        per_class: Images per row.
        split: ``"train"`` or ``"test"``.
        title: Title above the grid; ``None`` names the dataset.

    Returns:
        The figure.
    """
    images, labels = getattr(data, f"{split}_images"), getattr(data, f"{split}_labels")
    rows = len(data.classes)
    # 7 inches wide: 1.1 for the class names, the rest for square images; 0.4 for the title
    cell = 5.8 / per_class
    height = rows * cell + 0.4
    fig, axes = plt.subplots(rows, per_class, figsize=(7, height), squeeze=False)
    fig.subplots_adjust(
        left=1.1 / 7, right=0.99, bottom=0.01, top=1 - 0.4 / height, wspace=0.06, hspace=0.06
    )
    for k, name in enumerate(data.classes):
        chosen = (labels == k).nonzero().flatten()[:per_class]
        for j, ax in enumerate(axes[k]):
            _draw_image(ax, images[chosen[j]] if j < len(chosen) else None)
        axes[k, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=11)
    if title is None:
        title = f"{data.name}: the first {per_class} {split} images of each class"
    fig.suptitle(title, fontsize=12, y=1 - 0.1 / height, va="top")
    return fig


def training_curves(histories: dict[str, History], title: str | None = None) -> Figure:
    """Plots loss and accuracy per epoch of several runs: test solid, training dashed.

    Args:
        histories: ``{run name: History}``, e.g. ``{"ResNet-20": h1, "plain-20": h2}``.
        title: Title above both panels.

    Returns:
        The figure, loss on the left and accuracy (%) on the right.
    """
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(7, 3.2), layout="constrained")
    for i, (name, h) in enumerate(histories.items()):
        colour = f"C{i}"
        ax_loss.plot(h.epoch, h.train_loss, "--", color=colour, alpha=0.8)
        ax_loss.plot(h.epoch, h.test_loss, "-o", color=colour, ms=3)
        ax_acc.plot(h.epoch, [100 * a for a in h.train_acc], "--", color=colour, alpha=0.8)
        ax_acc.plot(h.epoch, [100 * a for a in h.test_acc], "-o", color=colour, ms=3, label=name)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)  # whole epochs only
    # runs by colour on the right, line styles on the left
    ax_acc.legend(fontsize=9, loc="lower right")
    ax_loss.plot([], [], "k-o", ms=3, label="test")
    ax_loss.plot([], [], "k--", label="train")
    ax_loss.legend(fontsize=9, loc="upper right")
    if title:
        fig.suptitle(title)
    return fig


def step_losses(
    histories: dict[str, History], smoothing: int = 20, log: bool = True, title: str | None = None
) -> Figure:
    """Plots the training loss of every step of several runs, smoothed by a moving average.

    Args:
        histories: ``{run name: History}``.
        smoothing: Steps per moving average (1 for the raw losses).
        log: Logarithmic loss axis (shows the late, small losses).
        title: Title of the plot.

    Returns:
        The figure.
    """
    fig, ax = plt.subplots(figsize=(7, 3.5), layout="constrained")
    for i, (name, h) in enumerate(histories.items()):
        steps, smooth = moving_average(h.step_loss, smoothing)
        ax.plot(steps, smooth.numpy(), color=f"C{i}", label=name)
    ax.set(xlabel="training step", ylabel="training loss", title=title or "training loss")
    if log:
        log_scale(ax)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=9)
    return fig


def confusion_matrix(
    result: Evaluation | Tensor, classes: tuple[str, ...] | list[str], title: str | None = None
) -> Figure:
    """Shows which classes are mistaken for which: each row, a true class, sums to 100%.

    Args:
        result: An :class:`~resnet_course.train.Evaluation`, or its ``(K, K)`` confusion counts.
        classes: The ``K`` class names.
        title: Title of the plot; ``None`` gives the accuracy.

    Returns:
        The figure, with the percentage in every cell.
    """
    counts = result.confusion if isinstance(result, Evaluation) else result
    counts = counts.double()
    percent = 100 * counts / counts.sum(1, keepdim=True).clamp(min=1)
    k = len(classes)
    fig, ax = plt.subplots(figsize=(7, 6.2), layout="constrained")
    image = ax.imshow(percent.numpy(), cmap="Blues", vmin=0, vmax=100)
    for i in range(k):
        for j in range(k):
            value = percent[i, j].item()
            if value >= 0.5:  # leave near-empty cells blank, to see the mistakes
                ax.text(
                    j,
                    i,
                    f"{value:.0f}",
                    ha="center",
                    va="center",
                    fontsize=9,
                    color="white" if value > 60 else "black",
                )
    ax.set_xticks(range(k), classes, rotation=45, ha="right")
    ax.set_yticks(range(k), classes)
    ax.set(xlabel="predicted class", ylabel="true class")
    accuracy = counts.diagonal().sum() / counts.sum()
    ax.set_title(title or f"confusion matrix (%), accuracy {accuracy:.1%}")
    fig.colorbar(image, ax=ax, shrink=0.8, label="% of the true class")
    return fig


def gradient_norms(norms: dict[str, dict[str, float]], title: str | None = None) -> Figure:
    """Plots the gradient norm of every convolution, first layer to last, of several networks.

    Args:
        norms: ``{network name: {layer name: norm}}``, each inner dict from
            :func:`~resnet_course.train.conv_gradient_norms`.
        title: Title of the plot.

    Returns:
        The figure, with a logarithmic norm axis.
    """
    fig, ax = plt.subplots(figsize=(7, 3.5), layout="constrained")
    for i, (name, layers) in enumerate(norms.items()):
        ax.plot(
            range(1, len(layers) + 1), list(layers.values()), "-o", ms=3, color=f"C{i}", label=name
        )
    ax.set(
        xlabel="convolution (input side to output side)",
        ylabel="gradient norm",
        title=title or "gradient norm of each convolution's weights",
    )
    ax.set_yscale("log")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=9)
    return fig


def misclassified(
    data: ImageData,
    result: Evaluation,
    n: int = 12,
    columns: int = 6,
    split: str = "test",
    title: str | None = None,
) -> Figure:
    """Shows the first ``n`` images a model got wrong, titled with their true and predicted class.

    The images are the first mistakes in the split's order, not the worst ones: a fair sample of
    what the model gets wrong.

    Args:
        data: The dataset the model was evaluated on.
        result: The model's :class:`~resnet_course.train.Evaluation` on ``split`` of ``data``.
        n: Most images to show.
        columns: Images per row.
        split: ``"test"`` or ``"train"``, the split ``result`` comes from.
        title: Title above the grid; ``None`` says how many images were misclassified.

    Returns:
        The figure, one image per panel, titled ``true class`` over ``as predicted class``.

    Raises:
        ValueError: If ``result`` has not one prediction per image of the split.
    """
    images, labels = getattr(data, f"{split}_images"), getattr(data, f"{split}_labels")
    predicted = result.predictions.cpu()
    if len(predicted) != len(labels):
        raise ValueError(
            f"result has {len(predicted)} predictions but the {split} split has {len(labels)} "
            f"images: evaluate the model on the same split of the same dataset"
        )
    wrong = (predicted != labels.cpu()).nonzero().flatten()
    chosen = wrong[:n]
    rows = max(1, -(-len(chosen) // columns))  # rounded up
    # 7 inches wide: square panels 0.1 of a panel apart, 0.5 inch above each for its two-line
    # 10-point title, and 0.4 inch at the top for the figure's title
    side = 6.9 / (columns + 0.1 * (columns - 1))
    height = rows * (side + 0.5) + 0.4
    fig, axes = plt.subplots(rows, columns, figsize=(7, height), squeeze=False)
    fig.subplots_adjust(
        left=0.05 / 7,
        right=1 - 0.05 / 7,
        bottom=0.05 / height,
        top=1 - 0.85 / height,
        wspace=0.1,
        hspace=0.5 / side,
    )
    for ax in axes.flat:
        _draw_image(ax)
    for ax, i in zip(axes.flat, chosen.tolist(), strict=False):
        _draw_image(ax, images[i])
        true, guess = data.classes[labels[i]], data.classes[predicted[i]]
        ax.set_title(f"{true}\nas {guess}", fontsize=10, color="firebrick", linespacing=1.1)
    if len(chosen) == 0:
        axes[0, 0].text(0, 0.5, f"no misclassified {split} images", fontsize=11, va="center")
    if title is None:
        share = len(wrong) / max(1, len(labels))
        title = (
            f"the first {len(chosen)} of {len(wrong):,} misclassified {split} images "
            f"({share:.1%}): true class, as predicted"
        )
    fig.suptitle(title, fontsize=11, y=1 - 0.1 / height, va="top")
    return fig
