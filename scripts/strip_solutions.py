"""Makes student copies of the notebooks: solutions removed, outputs cleared.

    python scripts/strip_solutions.py notebooks/*.ipynb -o handout/

A solution is a code cell whose source starts with `# Solution` (the course's convention; in the
book it is a collapsed cell). Exercise stubs and their check cells stay, so students still get
instant feedback from `resnet_course.check`.
"""

import argparse
from pathlib import Path

import nbformat


def strip(notebook: nbformat.NotebookNode) -> int:
    """Removes solution cells and every output in place; returns how many solutions it removed."""
    before = len(notebook.cells)
    notebook.cells = [
        cell
        for cell in notebook.cells
        if not (cell.cell_type == "code" and cell.source.lstrip().startswith("# Solution"))
    ]
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return before - len(notebook.cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("-o", "--output", type=Path, required=True, help="folder for the copies")
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    for path in args.notebooks:
        notebook = nbformat.read(path, as_version=4)
        removed = strip(notebook)
        nbformat.write(notebook, args.output / path.name)
        print(f"{path.name}: {removed} solutions removed -> {args.output / path.name}")


if __name__ == "__main__":
    main()
