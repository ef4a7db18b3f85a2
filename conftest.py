"""Settings for every test run (`make test`, plain `pytest`, and the nbval notebook kernels).

The notebook kernels inherit this process's environment, so setting the variables here makes
every notebook under nbval train in the `smoke` profile (seconds) and without progress bars.
"""

import os

import pytest

os.environ.setdefault("RESNET_COURSE_PROFILE", "smoke")
os.environ.setdefault("RESNET_COURSE_PROGRESS", "0")
os.environ.setdefault("MPLBACKEND", "Agg")
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:  # `make test`: one worker per core
    # each worker's notebook kernels and torchrun children get their share of the cores (on
    # two cores, two workers of two threads each spend a third of their time waiting)
    workers = int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))

# The longest files first (seconds on a 2-core CPU, measured): with workers, each file runs
# in one worker, and a long one left for last would keep one worker busy while the others wait.
LONGEST_FIRST = [
    "tests/test_training_chapters.py",  # 95
    "tests/test_distributed.py",  # 35
    "notebooks/08_variants.ipynb",  # 35
    "tests/test_check.py",  # 21
    "notebooks/12_scaling_out.ipynb",  # 20
    "notebooks/07_degradation.ipynb",  # 19
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = item.nodeid.split("::")[0]
        return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the order within a file, and of the other files, is kept


@pytest.fixture(autouse=True)
def _doctest_names(request: pytest.FixtureRequest) -> None:
    """The names the package's docstring examples (``>>>``, run by ``--doctest-modules``) use:
    ``torch``, ``data`` (a small Shapes-10) and ``my_resnet18`` (a learner's model; torchvision's
    stands in for it)."""
    if type(request.node).__name__ != "DoctestItem":
        return
    namespace = request.getfixturevalue("doctest_namespace")  # one dict for the whole session
    if "torch" in namespace:
        return
    import torch
    import torchvision

    from resnet_course import make_shapes10

    namespace["torch"] = torch
    namespace["data"] = make_shapes10(train_size=256, test_size=64, seed=0)
    namespace["my_resnet18"] = torchvision.models.resnet18()
