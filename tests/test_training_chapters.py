"""The training chapters run on every device's budget, not only on the CPU's.

A chapter sizes its training from `rc.budget()`, which depends on the device: a GPU trains more
epochs on more images. A check written for the CPU's numbers can fail on exactly the path a chapter
recommends ("run it on a GPU"). `RESNET_COURSE_BUDGET_DEVICE` sizes the budget for another device
type; with the `smoke` profile that budget keeps the other device's shape at a size that runs in
seconds here. Each chapter must run top to bottom with it, every assertion included.
"""

import nbformat
import pytest
from nbclient import NotebookClient
from notebook_utils import ROOT

CHAPTERS = ["07_degradation.ipynb", "08_variants.ipynb", "09_fine_tuning.ipynb"]


@pytest.mark.parametrize("device", ["cuda"])
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_runs_on_another_devices_budget(chapter, device, monkeypatch, tmp_path):
    monkeypatch.setenv("RESNET_COURSE_PROFILE", "smoke")
    monkeypatch.setenv("RESNET_COURSE_BUDGET_DEVICE", device)
    monkeypatch.setenv("RESNET_COURSE_PROGRESS", "0")
    path = ROOT / "notebooks" / chapter
    nb = nbformat.read(path, as_version=4)
    # a last cell proves that the kernel really sized its training for the other device
    nb.cells.append(nbformat.v4.new_code_cell(f"assert rc.budget().device == {device!r}"))
    NotebookClient(  # raises CellExecutionError, naming the cell, when a cell fails
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
