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
