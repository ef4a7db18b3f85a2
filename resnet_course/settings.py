"""The course's settings: the environment variables that choose what every notebook trains on.

Tools tier: the notebooks import it but never copy it, so it is free to change (the tests
say what must hold).

Every function reads its variable when it is called, never at import, so a notebook (or a test)
can change a setting at any time. A value that is not allowed raises a ``ValueError`` that names
the variable and the values it takes (the budget's device is checked by
:func:`resnet_course.train.budget`, which knows the budgets).

- ``RESNET_COURSE_PROFILE``, :func:`profile`: how much every notebook trains (see
  :func:`resnet_course.train.budget`). ``default`` (when not set) is sized to the device: a few
  minutes per notebook on a laptop CPU, more on a GPU; ``smoke`` trains for seconds, to test that
  notebooks run (the test suite sets it).
- ``RESNET_COURSE_DATASET``, :func:`dataset`: the dataset every training chapter loads,
  ``shapes10`` (when not set), ``cifar10`` or ``fashion_mnist``.
- ``RESNET_COURSE_DATA``, :func:`data_folder`: the folder of downloaded datasets (default
  ``~/.cache/resnet_course``).
- ``RESNET_COURSE_PROGRESS``, :func:`progress`: ``0`` hides the progress bars.
- ``RESNET_COURSE_BUDGET_DEVICE``, :func:`budget_device`: ``cpu``, ``mps`` or ``cuda`` sizes the
  budget for that device type whatever the machine has (for tests).

The modules that use them: :mod:`~resnet_course.data` (the dataset and its folder),
:mod:`~resnet_course.train` (the profile, the budget's device, progress bars) and
:mod:`~resnet_course.distributed` (progress bars).
"""

import os
from pathlib import Path

PROFILES = ("smoke", "default")
DATASETS = ("shapes10", "cifar10", "fashion_mnist")


def profile() -> str:
    """The compute profile: ``$RESNET_COURSE_PROFILE``, ``"default"`` when not set.

    Returns:
        ``"smoke"`` (seconds of training, for tests) or ``"default"`` (sized to the device).

    Raises:
        ValueError: If the variable holds anything else.
    """
    name = os.environ.get("RESNET_COURSE_PROFILE", "default")
    if name not in PROFILES:
        raise ValueError(
            f"RESNET_COURSE_PROFILE={name!r} is not a profile; use 'default' (a few minutes per "
            f"notebook on a CPU, more on a GPU) or 'smoke' (seconds, for tests)"
        )
    return name


def dataset() -> str:
    """The dataset notebooks train on: ``$RESNET_COURSE_DATASET``, ``"shapes10"`` when not set.

    Returns:
        One of ``DATASETS``.

    Raises:
        ValueError: If the variable names no known dataset.
    """
    name = os.environ.get("RESNET_COURSE_DATASET", "shapes10")
    if name not in DATASETS:
        raise ValueError(
            f"RESNET_COURSE_DATASET={name!r} is not a dataset this course knows; "
            f"use one of {DATASETS}"
        )
    return name


def data_folder() -> Path:
    """The folder of downloaded datasets: ``$RESNET_COURSE_DATA``, else ``~/.cache/resnet_course``.

    The default does not depend on the folder a notebook runs in. An empty variable counts as not
    set.

    Returns:
        The folder as given (:func:`resnet_course.data.data_root` makes it absolute).
    """
    return Path(os.environ.get("RESNET_COURSE_DATA") or Path.home() / ".cache" / "resnet_course")


def progress() -> bool:
    """Whether to show progress bars: yes unless ``$RESNET_COURSE_PROGRESS`` is ``0``.

    Notebooks executed to be committed or tested set it to ``0``; the per-epoch summary lines are
    printed either way.

    Returns:
        False if the variable is ``"0"``, True otherwise.
    """
    return os.environ.get("RESNET_COURSE_PROGRESS", "1") != "0"


def budget_device() -> str | None:
    """The device type to size the training budget for: ``$RESNET_COURSE_BUDGET_DEVICE``.

    The tests set it to run the training chapters on a CPU with the shape of a GPU's budget.
    :func:`resnet_course.train.budget` checks the value (``cpu``, ``mps`` or ``cuda``).

    Returns:
        The variable's value, or None when it is not set (or empty): size for the real device.
    """
    return os.environ.get("RESNET_COURSE_BUDGET_DEVICE") or None
