"""Makes student copies of the notebooks: solutions removed, outputs cleared.

    python scripts/strip_solutions.py notebooks/*.ipynb -o handout/

It refuses to write over its source notebooks, or over any file that still holds solutions (a
teacher's notebook), unless given ``--overwrite``: nothing is written then.

A solution is a code cell whose source starts with `# Solution` (the course's convention; in the
book it is a collapsed cell). Exercise stubs and their check cells stay, so students still get
instant feedback from `resnet_course.check`.
"""

import argparse
import sys
from pathlib import Path

import nbformat


def _is_solution(cell: nbformat.NotebookNode) -> bool:
    return cell.cell_type == "code" and cell.source.lstrip().startswith("# Solution")


def strip(notebook: nbformat.NotebookNode) -> int:
    """Removes solution cells and every output in place; returns how many solutions it removed."""
    before = len(notebook.cells)
    notebook.cells = [cell for cell in notebook.cells if not _is_solution(cell)]
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return before - len(notebook.cells)


def _refusal(source: Path, target: Path) -> str | None:
    """Why writing the student copy of ``source`` to ``target`` would destroy work, if it would."""
    if not target.exists():
        return None
    if target.resolve() == source.resolve():
        return f"{target} is the source notebook itself: its solutions would be lost"
    try:
        existing = nbformat.read(target, as_version=4)
    except Exception:  # not a notebook: the user wrote it, keep it
        return f"{target} exists and is not a notebook"
    if any(_is_solution(cell) for cell in existing.cells):
        return f"{target} still has solutions (a teacher's notebook?)"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("-o", "--output", type=Path, required=True, help="folder for the copies")
    parser.add_argument(
        "--overwrite", action="store_true", help="write over notebooks that have solutions"
    )
    args = parser.parse_args()
    targets = [(path, args.output / path.name) for path in args.notebooks]
    refusals = [r for path, target in targets if (r := _refusal(path, target))]
    if refusals and not args.overwrite:
        sys.exit(
            "strip_solutions: nothing written. "
            + "; ".join(refusals)
            + ". Choose another output folder with -o, or pass --overwrite to replace them."
        )
    args.output.mkdir(parents=True, exist_ok=True)
    for path, target in targets:
        notebook = nbformat.read(path, as_version=4)
        removed = strip(notebook)
        nbformat.write(notebook, target)
        print(f"{path.name}: {removed} solutions removed -> {target}")


if __name__ == "__main__":
    main()
