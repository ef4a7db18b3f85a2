"""The benchmarks run and end with the line the README promises.

Their ``main()`` runs in this process with tiny settings: this checks the scripts, not the speed
(speed targets are for ``make benchmarks``, never for tests).
"""

import importlib.util
import re

from notebook_utils import ROOT

NUMBER = r"-?\d+\.\d+"


def load(script: str):
    spec = importlib.util.spec_from_file_location(script, ROOT / "benchmarks" / f"{script}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_model_speed_prints_its_ratio_last(capsys):
    load("model_speed").main("--rounds 2 --steps 1 --batch-size 2 --archs resnet18".split())
    lines = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"resnet18 .* \d\.\d\d  \d\.\d\d \d\.\d\d", lines[-2]), lines[-2]
    assert re.fullmatch(r"speed_vs_torchvision=\d+\.\d\d", lines[-1]), lines[-1]


def test_train_speed_prints_median_and_spread_per_ratio_and_its_ratio_line_last(capsys):
    load("train_speed").main("--rounds 3 --steps 1 --batch-size 8 --workers 0".split())
    lines = capsys.readouterr().out.splitlines()
    for label in ("speedup: (b) / (c)", "data overhead: "):
        (line,) = [line for line in lines if line.startswith(label)]
        # the median (lowest to highest), then the ratio of each of the 3 rounds
        spread = rf"{NUMBER} \({NUMBER} to {NUMBER}\) +{NUMBER} {NUMBER} {NUMBER}"
        assert re.search(spread + "$", line), line
    last = rf"speedup_vs_dataloader=\d+\.\d\d data_overhead={NUMBER}%"
    assert re.fullmatch(last, lines[-1]), lines[-1]
