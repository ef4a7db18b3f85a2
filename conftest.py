"""Settings for every test run (`make test`, plain `pytest`, and the nbval notebook kernels).

The notebook kernels inherit this process's environment, so setting the variables here makes
every notebook under nbval train in the `smoke` profile (seconds) and without progress bars.
"""

import os

import pytest

os.environ.setdefault("RESNET_COURSE_PROFILE", "smoke")
os.environ.setdefault("RESNET_COURSE_PROGRESS", "0")
os.environ.setdefault("MPLBACKEND", "Agg")


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
