"""Conventions every course notebook keeps (DESIGN.md, "Notebooks"). nbval runs them separately."""

import json
import re

import pytest
from notebook_utils import NOTEBOOKS, ROOT, read, repository_url, tags, toc_files

ids = [p.name for p in NOTEBOOKS]


@pytest.fixture(params=NOTEBOOKS, ids=ids)
def nb(request):
    return request.param, read(request.param)


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ has no NN_topic.ipynb notebooks"


def test_kernel_is_python3(nb):
    path, notebook = nb
    assert notebook.metadata.kernelspec.name == "python3"


def test_opens_with_title_badge_and_colab_setup(nb):
    path, notebook = nb
    first, second = notebook.cells[0], notebook.cells[1]
    url = repository_url()
    owner_repo = url.removeprefix("https://github.com/")
    assert first.cell_type == "markdown" and first.source.startswith("# "), "first cell: a # title"
    badge = f"https://colab.research.google.com/github/{owner_repo}/blob/main/notebooks/{path.name}"
    assert badge in first.source, f"first cell: an Open-in-Colab badge linking to {badge}"
    for heading in ("What you will learn", "Prerequisites", "Time and hardware"):
        assert heading in first.source, f"first cell: a '{heading}' paragraph"
    assert second.cell_type == "code"
    assert '"google.colab" in sys.modules' in second.source
    assert f"resnet-course @ git+{url}" in second.source, (
        "Colab cell installs the course from _config.yml's URL"
    )
    assert "torch" not in second.source, "the Colab cell must never (re)install torch"


def test_closes_with_summary_and_exercises(nb):
    path, notebook = nb
    headings = [
        line
        for c in notebook.cells
        if c.cell_type == "markdown"
        for line in c.source.splitlines()
        if line.startswith("## ")
    ]
    assert any("Summary" in h for h in headings), "a ## Summary section"
    assert any("Exercises" in h for h in headings), "a ## Exercises section"


def test_solutions_are_collapsed(nb):
    path, notebook = nb
    for i, cell in enumerate(notebook.cells):
        if cell.cell_type == "code" and cell.source.lstrip().startswith("# Solution"):
            assert "hide-input" in tags(cell), (
                f"cell {i}: a solution is tagged hide-input (book toggle)"
            )
            assert cell.metadata.get("jupyter", {}).get("source_hidden"), (
                f"cell {i}: a solution is collapsed in JupyterLab (metadata.jupyter.source_hidden)"
            )


def test_executed_top_to_bottom_without_errors(nb):
    path, notebook = nb
    code = [c for c in notebook.cells if c.cell_type == "code" and c.source.strip()]
    counts = [c.execution_count for c in code]
    assert counts == list(range(1, len(code) + 1)), (
        f"run top to bottom in one fresh kernel ({counts})"
    )
    for i, cell in enumerate(code):
        for output in cell.outputs:
            assert output.output_type != "error", (
                f"code cell {i}: error output {output.get('ename')}"
            )
            assert output.get("name") != "stderr" or "Traceback" not in output.text


def test_outputs_have_no_addresses_paths_or_stray_figure_reprs(nb):
    path, notebook = nb
    for i, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            text = output.get("text", "") + str(output.get("data", {}).get("text/plain", ""))
            assert not re.search(r"/work/|/home/|/root/|/tmp/|C:\\\\", text), (
                f"cell {i}: absolute path"
            )
            if "NBVAL_CHECK_OUTPUT" in cell.source:
                assert not re.search(r" at 0x[0-9a-f]+", text), (
                    f"cell {i}: memory address in checked output"
                )
            # A figure shown by plt.show() carries a "<Figure size ...>" text fallback beside its
            # PNG; a stray repr is one with no image: the value of a plot call left at the end.
            stray = "image/png" not in output.get("data", {})
            assert not (stray and re.match(r"\[?<(Figure|matplotlib|Axes)", text)), (
                f"cell {i}: end plot cells with `;` or plt.show() (stray {text[:30]!r})"
            )


def test_stochastic_cells_are_not_compared(nb):
    """Timings and training results vary run to run: those cells must not be output-checked."""
    path, notebook = nb
    for i, cell in enumerate(notebook.cells):
        if cell.cell_type == "code" and "NBVAL_CHECK_OUTPUT" in cell.source:
            assert not re.search(r"\bfit\(|perf_counter|time\.time\(", cell.source), (
                f"cell {i}: a training or timing cell is output-checked"
            )


def test_every_notebook_is_in_the_table_of_contents():
    listed = set(toc_files())
    for path in NOTEBOOKS:
        assert f"notebooks/{path.stem}" in listed, f"{path.name} is missing from _toc.yml"


def test_committed_times_are_within_budget():
    """`make notebooks` records each notebook's wall time; the issues set the budgets."""
    times_file = ROOT / "results" / "notebook_times.json"
    if not times_file.exists():
        pytest.skip("no recorded times yet")
    record = json.loads(times_file.read_text())
    assert record["profile"] == "default" and record["device"]
    times = record["seconds"]
    budget = {"degradation": 15 * 60, "variants": 12 * 60}
    for name, seconds in times.items():
        # Chapters 1-5 (building the network) must run in under a minute, the others in 3.
        default = 60 if name[:2] in {"01", "02", "03", "04", "05"} else 3 * 60
        limit = next((v for k, v in budget.items() if k in name), default)
        assert seconds <= limit, f"{name} took {seconds:.0f} s, over its {limit} s budget"
