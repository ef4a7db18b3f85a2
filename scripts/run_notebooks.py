"""Re-executes the course notebooks in place, each top to bottom in a fresh kernel.

`make notebooks` runs this.

    python scripts/run_notebooks.py                          # every notebook, in order
    python scripts/run_notebooks.py notebooks/05_resnet.ipynb # just one

The committed outputs come from this command, run with the `default` compute profile unless
RESNET_COURSE_PROFILE says otherwise. Before running, it writes the repository URL from
_config.yml into each notebook's Colab badge and set-up cell, so the URL is set in one place.
Wall times, with the hardware, are recorded in results/notebook_times.json (read by the
teaching guide and checked against the chapters' budgets by the tests).

Budgets are the runner's job, never a notebook's: a notebook may print its run time but never
asserts on it (a reader who pauses, or a slow laptop, must not see a failure). On a CPU this
script fails, after running everything, when a notebook took longer than its budget in BUDGETS
or all of them together longer than TOTAL_BUDGET. On a GPU the chapters train more, by design,
and the times are only reported.
"""

import json
import os
import re
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from resnet_course import describe_device

ROOT = Path(__file__).resolve().parent.parent
GITHUB = re.compile(r"https://github\.com/[\w.-]+/[\w.-]+?(?=[/\"')\s]|\.git|$)")
COLAB = re.compile(r"https://colab\.research\.google\.com/github/[\w.-]+/[\w.-]+/")
TIMES = ROOT / "results" / "notebook_times.json"

# Seconds each notebook may take on a 2-core CPU in the default profile (the time a chapter's
# header promises, with some margin), and all of them together.
BUDGETS = {
    "01_conv_helpers.ipynb": 60,
    "02_basic_block.ipynb": 60,
    "03_bottleneck.ipynb": 60,
    "04_make_layer.ipynb": 60,
    "05_resnet.ipynb": 90,
    "06_cifar_family.ipynb": 180,
    "07_degradation.ipynb": 12 * 60,
    "08_variants.ipynb": 15 * 60,
    "09_fine_tuning.ipynb": 4 * 60,
    "10_pitfalls.ipynb": 180,
    "11_beyond.ipynb": 180,
    "12_scaling_out.ipynb": 2 * 60,
    "datasets.ipynb": 4 * 60,
    "intro.ipynb": 60,
    "teaching_guide.ipynb": 60,
}
DEFAULT_BUDGET = 180
TOTAL_BUDGET = 35 * 60


def repository_url() -> str:
    """The `repository: url:` of _config.yml (read without a YAML parser)."""
    text = (ROOT / "_config.yml").read_text()
    match = re.search(r"^repository:\s*\n\s+url:\s*(\S+)", text, re.M)
    if not match:
        sys.exit("_config.yml has no `repository: url:`")
    return match.group(1).rstrip("/")


def stamp_repository(nb: nbformat.NotebookNode, url: str) -> None:
    """Points the Colab badge and the Colab install line of the first two cells at `url`."""
    owner_repo = url.removeprefix("https://github.com/")
    for cell in nb.cells[:2]:
        cell.source = GITHUB.sub(url, cell.source)
        cell.source = COLAB.sub(
            f"https://colab.research.google.com/github/{owner_repo}/", cell.source
        )


def over_budget(
    seconds: dict[str, float], budgets: dict[str, float] = BUDGETS, full_run: bool = False
) -> list[str]:
    """One line per notebook over its budget (and one if a full run is over TOTAL_BUDGET)."""
    lines = [
        f"{name} took {s:.0f} s, over its budget of {budgets.get(name, DEFAULT_BUDGET):.0f} s"
        for name, s in seconds.items()
        if s > budgets.get(name, DEFAULT_BUDGET)
    ]
    if full_run and sum(seconds.values()) > TOTAL_BUDGET:
        lines.append(f"all notebooks took {sum(seconds.values()):.0f} s, over {TOTAL_BUDGET} s")
    return lines


def main(paths: list[str], budgets: dict[str, float] = BUDGETS, times_file: Path = TIMES) -> None:
    # The chapters first, then the book pages that show their results.
    notebooks = [Path(p).resolve() for p in paths] or [
        *sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")),
        *sorted((ROOT / "book").glob("*.ipynb")),
    ]
    profile = os.environ.setdefault("RESNET_COURSE_PROFILE", "default")
    os.environ.setdefault("RESNET_COURSE_PROGRESS", "0")  # no progress bars in committed outputs
    url = repository_url()
    record = json.loads(times_file.read_text()) if times_file.exists() else {}
    device = describe_device()
    if record.get("device") != device:  # times from other hardware are not comparable
        record = {}
    times = record.get("seconds", {})
    this_run = {}
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        stamp_repository(nb, url)
        print(f"{path.name}: running (profile {profile}) ...", flush=True)
        start = time.perf_counter()
        client = NotebookClient(
            nb,
            timeout=3600,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
        )
        client.execute()  # raises CellExecutionError, leaving the committed file untouched
        seconds = time.perf_counter() - start
        nbformat.write(nb, path)
        print(f"{path.name}: {seconds:.0f} s", flush=True)
        this_run[path.name] = seconds
        if profile == "default":
            times[path.name] = round(seconds, 1)
            record = {"device": device, "profile": profile, "seconds": dict(sorted(times.items()))}
            times_file.parent.mkdir(exist_ok=True)
            times_file.write_text(json.dumps(record, indent=1) + "\n")
    late = over_budget(this_run, budgets, full_run=not paths) if device.startswith("CPU") else []
    if late:
        sys.exit("Over budget on this CPU:\n  " + "\n  ".join(late))


if __name__ == "__main__":
    main(sys.argv[1:])
