"""The benchmarks run and end with the line the README promises (tiny settings: this checks the
scripts, not the speed; speed targets are for `make benchmarks`, never for tests)."""

import re
import subprocess
import sys

import pytest
from notebook_utils import ROOT


@pytest.mark.parametrize(
    ("script", "args", "last_line"),
    [
        (
            "model_speed.py",
            ["--rounds", "2", "--steps", "1", "--batch-size", "2", "--device", "cpu"],
            r"speed_vs_torchvision=\d+\.\d\d",
        ),
        (
            "train_speed.py",
            [
                "--rounds",
                "1",
                "--steps",
                "1",
                "--batch-size",
                "8",
                "--workers",
                "0",
                "--device",
                "cpu",
            ],
            r"speedup_vs_dataloader=\d+\.\d\d data_overhead=-?\d+\.\d%",
        ),
    ],
)
def test_benchmark_prints_its_ratio_last(script, args, last_line):
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert re.fullmatch(last_line, result.stdout.strip().splitlines()[-1]), result.stdout[-1000:]
