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


def test_refuses_to_overwrite_notebooks_with_solutions(tmp_path):
    source = tmp_path / "notebooks" / "02_basic_block.ipynb"
    source.parent.mkdir()
    source.write_bytes((ROOT / "notebooks" / "02_basic_block.ipynb").read_bytes())
    script = ROOT / "scripts" / "strip_solutions.py"
    before = source.read_bytes()
    # the teacher's mistake: -o the notebooks' own folder
    done = subprocess.run(
        [sys.executable, script, source, "-o", source.parent], capture_output=True, text=True
    )
    assert done.returncode != 0 and source.read_bytes() == before  # solutions kept
    assert "source notebook itself" in done.stderr and "nothing written" in done.stderr
    assert "Choose another output folder with -o" in done.stderr
    # a teacher's copy elsewhere (with solutions) is protected the same way
    other = tmp_path / "copy"
    other.mkdir()
    (other / source.name).write_bytes(before)
    done = subprocess.run(
        [sys.executable, script, source, "-o", other], capture_output=True, text=True
    )
    assert done.returncode != 0 and "still has solutions" in done.stderr
    assert (other / source.name).read_bytes() == before
    # asked explicitly, it writes
    subprocess.run([sys.executable, script, source, "-o", other, "--overwrite"], check=True)
    copy = nbformat.read(other / source.name, as_version=4)
    assert not any(c.source.lstrip().startswith("# Solution") for c in copy.cells)
    # a student copy already there (no solutions) is simply replaced
    subprocess.run([sys.executable, script, source, "-o", other], check=True)
