"""The code learners read stays tidy: ruff lint and ruff format (configured in pyproject.toml)."""

import subprocess
import sys
from pathlib import Path

from notebook_utils import ROOT

RUFF = Path(sys.executable).with_name("ruff")
PATHS = ["resnet_course", "tests", "benchmarks", "scripts", "conftest.py"]


def test_ruff_lint():
    result = subprocess.run([RUFF, "check", *PATHS], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format():
    result = subprocess.run(
        [RUFF, "format", "--check", *PATHS], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, "run `ruff format`:\n" + result.stdout + result.stderr


def test_the_longest_first_list_names_files_that_exist():
    """conftest.py runs these files first so that `make test`'s workers finish together; a
    renamed file would silently lose its place."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("root_conftest", ROOT / "conftest.py")
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)
    missing = [p for p in conftest.LONGEST_FIRST if not (ROOT / p).is_file()]
    assert not missing, f"conftest.LONGEST_FIRST names files that do not exist: {missing}"
