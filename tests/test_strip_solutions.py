"""The teachers' tool that makes student copies keeps the exercises and drops the solutions."""

import subprocess
import sys

import nbformat
from notebook_utils import NOTEBOOKS, ROOT


def test_student_copy_has_exercises_and_checks_but_no_solutions(tmp_path):
    source = ROOT / "notebooks" / "02_basic_block.ipynb"
    assert source in NOTEBOOKS
    script = ROOT / "scripts" / "strip_solutions.py"
    subprocess.run(
        [sys.executable, script, source, "-o", tmp_path], check=True, capture_output=True
    )
    original = nbformat.read(source, as_version=4)
    copy = nbformat.read(tmp_path / source.name, as_version=4)
    solutions = [c for c in original.cells if c.source.lstrip().startswith("# Solution")]
    assert solutions and len(copy.cells) == len(original.cells) - len(solutions)
    assert not any(c.source.lstrip().startswith("# Solution") for c in copy.cells)
    assert any("check_block(MyBasicBlock)" in c.source for c in copy.cells)  # checks stay
    assert all(not c.get("outputs") for c in copy.cells if c.cell_type == "code")
