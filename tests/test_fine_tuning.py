"""Chapter 9's weight-loading cell, run offline against a torch.hub cache that the test controls.

The chapter's committed outputs come from an offline machine, so there the branch that loads the
ImageNet weights never runs. These tests run the notebook's own cells three ways: with a state_dict
the test makes standing in for `resnet18-f37072fd.pth` in the cache, with an empty cache, and with
a download requested (as in Colab) while the network is unreachable.
"""

import sys
import types

import pytest
import torch
import torchvision
from notebook_utils import ROOT, read
from torchvision.models import ResNet18_Weights

NOTEBOOK = ROOT / "notebooks" / "09_fine_tuning.ipynb"
# The cells to run, each found by a line it contains: the imports, the weights enum, the loading.
CELLS = ("START = time.perf_counter()", "weights = ResNet18_Weights.DEFAULT", "DOWNLOAD_WEIGHTS =")


def code_cell(marker: str) -> str:
    cells = read(NOTEBOOK).cells
    sources = [c.source for c in cells if c.cell_type == "code" and marker in c.source]
    assert len(sources) == 1, f"expected one code cell containing {marker!r}, found {len(sources)}"
    return sources[0]


def run_loading_cells() -> dict:
    namespace: dict = {"sys": sys}  # imported by the Colab cell, which is not run here
    for marker in CELLS:
        exec(code_cell(marker), namespace)
    return namespace


@pytest.fixture
def hub(hub_dir, monkeypatch):
    """An empty torch.hub cache, no network, and not in Colab."""
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    return hub_dir


def test_cached_weights_are_loaded_and_named(hub, capsys):
    weights = ResNet18_Weights.DEFAULT
    torch.manual_seed(3)
    state = torchvision.models.resnet18().state_dict()
    hub.mkdir(parents=True)
    torch.save(state, hub / weights.url.rsplit("/", 1)[-1])

    namespace = run_loading_cells()
    out = capsys.readouterr().out
    assert namespace["have_imagenet"]
    model = namespace["imagenet_model"]
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert f"This run uses the ImageNet weights {weights}" in out and "weights=None" not in out


def test_without_the_file_it_says_weights_none(hub, capsys):
    namespace = run_loading_cells()
    out = capsys.readouterr().out
    assert not namespace["have_imagenet"]
    assert "This run uses weights=None (random weights)" in out
    assert "not in the torch.hub cache" in out
    assert namespace["imagenet_model"].fc.out_features == 1000  # the architecture, unloaded


def test_a_download_asked_for_offline_is_an_error_not_a_fallback(hub, monkeypatch):
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    with pytest.raises(RuntimeError, match="could not download.*copy it to"):
        run_loading_cells()
