"""Conventions every course notebook keeps (DESIGN.md, "Notebooks"). nbval runs them separately."""

import importlib.util
import json
import re

import nbformat
import pytest
from notebook_utils import NOTEBOOKS, ROOT, read, repository_url, tags, toc_files

_spec = importlib.util.spec_from_file_location("run_notebooks", ROOT / "scripts/run_notebooks.py")
run_notebooks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(run_notebooks)

ids = [p.name for p in NOTEBOOKS]
PAGES = NOTEBOOKS + sorted((ROOT / "book").glob("*.ipynb"))  # chapters and the book's own pages


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
            if "nbval-check-output" in tags(cell):
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
        if cell.cell_type == "code" and "nbval-check-output" in tags(cell):
            assert not re.search(r"\bfit\(|perf_counter|time\.time\(", cell.source), (
                f"cell {i}: a training or timing cell is output-checked"
            )


@pytest.mark.parametrize("path", PAGES, ids=[p.name for p in PAGES])
def test_test_markers_are_tags_not_comments(path):
    """nbval reads cell tags; a `# NBVAL_...` comment would be shown to every reader of the book."""
    notebook = read(path)
    for i, cell in enumerate(notebook.cells):
        assert "NBVAL_" not in cell.source, f"cell {i}: use an nbval-* cell tag, not a comment"


@pytest.mark.parametrize("path", PAGES, ids=[p.name for p in PAGES])
def test_no_cell_asserts_on_wall_time(path):
    """A slow reader or laptop must never fail: budgets are checked by scripts/run_notebooks.py."""
    notebook = read(path)
    for i, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        clock = r"(\w+)\s*=\s*time\.(?:perf_counter|time|monotonic)\(\)\s*-"
        timed = set(re.findall(clock, cell.source))
        for name in timed | {"elapsed", "seconds"}:
            assert not re.search(rf"assert[^\n]*\b{name}\b\s*[<>]", cell.source), (
                f"cell {i}: asserts on the wall time `{name}`; print it, the runner checks budgets"
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
    assert run_notebooks.over_budget(record["seconds"], full_run=True) == []


def test_the_runner_fails_a_notebook_over_its_budget(tmp_path):
    """The budget check is real: a notebook slower than its budget makes `make notebooks` fail."""
    path = tmp_path / "slow.ipynb"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import time; time.sleep(2)")])
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    times = tmp_path / "times.json"
    with pytest.raises(SystemExit, match=r"slow.ipynb took \d+ s, over its budget of 1 s"):
        run_notebooks.main([str(path)], budgets={"slow.ipynb": 1}, times_file=times)
    assert nbformat.read(path, as_version=4).cells[0].execution_count == 1  # it did run
    run_notebooks.main([str(path)], budgets={"slow.ipynb": 60}, times_file=times)  # within: fine
