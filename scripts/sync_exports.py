"""Keeps the notebooks' export cells identical to the package: the package is the source of truth.

A chapter ends a section with a code cell tagged ``export:MODULE`` (``export:layers``,
``export:blocks``, ``export:resnet``, ``export:cifar``) that holds the complete final definitions
of what it built, exactly as ``resnet_course/MODULE.py`` has them (docstrings and comments
included), after the imports they need. So a learner reads the real code, and the package can
change without the notebooks quietly drifting away from it.

    python scripts/sync_exports.py --check   # what the tests run: exit 1, with a diff, on drift
    python scripts/sync_exports.py --write   # copy the package's definitions into the cells
    make sync                                 # the same as --write

Which definitions a cell holds is the cell's choice (its ``class`` and ``def`` names); what they
say is the package's. The check fails when
- an export cell differs from what ``--write`` would write (run ``make sync``);
- a cell's tag does not name a module of the reference tier, or a cell defines something that
  module does not (or anything but imports and definitions);
- a required definition is exported by no notebook, or by more than one cell.

Required: every public definition of the reference tier. "Public" means a top-level class or
function of ``layers.py``, ``blocks.py``, ``resnet.py`` or ``cifar.py`` whose name is in the
package's ``__all__`` (the package's declared API: a helper such as ``check_images`` is not in it),
except the presets: functions whose return annotation is one of the tier's own classes
(``resnet18`` ... ``resnet152`` return ``ResNet``; ``resnet20`` ... ``plain110`` return
``CifarResNet``). A preset only picks arguments; the chapters import presets, never retype them.

``--write`` rewrites only the source of export cells (outputs, ids and metadata stay), and only
notebooks whose export cells changed are saved.
"""

import argparse
import ast
import difflib
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "resnet_course"
REFERENCE = ("layers", "blocks", "resnet", "cifar")  # the tier the notebooks copy
TAG = "export"


@dataclass
class Module:
    """One module of the reference tier, parsed."""

    name: str
    text: str
    imports: list[ast.Import | ast.ImportFrom]
    definitions: dict[str, ast.FunctionDef | ast.ClassDef]
    top_level: set[str]  # the names the module itself defines (definitions, assignments)

    def source(self, name: str) -> str:
        """The exact text of a definition in the module file, decorators included."""
        node = self.definitions[name]
        start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        return "\n".join(self.text.splitlines()[start - 1 : node.end_lineno])


@dataclass
class ExportCell:
    """A notebook cell tagged ``export`` or ``export:MODULE``."""

    notebook: Path
    index: int
    cell: nbformat.NotebookNode
    module: str | None  # None when the tag does not name a module

    @property
    def where(self) -> str:
        return f"{self.notebook.name} cell {self.index}"


def bound_names(tree: ast.Module, imports: bool = True) -> set[str]:
    """Names a piece of code binds at its top level: definitions, assignments and imports."""
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
        elif isinstance(node, ast.Import | ast.ImportFrom) and imports:
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def parse_module(name: str, root: Path = ROOT) -> Module:
    text = (root / PACKAGE / f"{name}.py").read_text()
    tree = ast.parse(text)
    return Module(
        name=name,
        text=text,
        imports=[n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)],
        definitions={n.name: n for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)},
        top_level=bound_names(tree, imports=False),
    )


def package_all(root: Path = ROOT) -> set[str]:
    """The names in the package's ``__all__`` (read from ``__init__.py``, not imported)."""
    for node in ast.parse((root / PACKAGE / "__init__.py").read_text()).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            return set(ast.literal_eval(node.value))
    raise ValueError(f"{PACKAGE}/__init__.py has no __all__: it declares what is public")


def required(modules: dict[str, Module], public: set[str]) -> set[tuple[str, str]]:
    """(module, name) of every public definition of the reference tier except the presets."""
    classes = {
        name
        for module in modules.values()
        for name, node in module.definitions.items()
        if isinstance(node, ast.ClassDef)
    }
    result = set()
    for module in modules.values():
        for name, node in module.definitions.items():
            preset = (
                isinstance(node, ast.FunctionDef)
                and isinstance(node.returns, ast.Name)
                and node.returns.id in classes
            )
            if name in public and not preset:
                result.add((module.name, name))
    return result


def tolerant_parse(source: str) -> ast.Module:
    """Parses a code cell, ignoring IPython's ``%magic`` and ``!shell`` lines; empty if invalid."""
    lines = ["" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()]
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError:
        return ast.Module(body=[], type_ignores=[])


def used_names(nodes: list[ast.AST]) -> set[str]:
    return {n.id for node in nodes for n in ast.walk(node) if isinstance(n, ast.Name)}


def absolute(node: ast.Import | ast.ImportFrom) -> ast.Import | ast.ImportFrom:
    """``from .blocks import X`` becomes ``from resnet_course.blocks import X``."""
    if isinstance(node, ast.ImportFrom) and node.level:
        module = f"{PACKAGE}.{node.module}" if node.module else PACKAGE
        return ast.ImportFrom(module=module, names=node.names, level=0)
    return node


def keep_used(node: ast.Import | ast.ImportFrom, used: set[str]) -> ast.AST | None:
    """The import with only the names ``used`` needs, or None when it needs none of them."""
    names = [a for a in node.names if (a.asname or a.name).split(".")[0] in used]
    if not names:
        return None
    if isinstance(node, ast.Import):
        return ast.Import(names=names)
    return ast.ImportFrom(module=node.module, names=names, level=node.level)


def render(module: Module, names: list[str], defined_above: set[str]) -> str:
    """The source an export cell of ``module`` defining ``names`` must have.

    Args:
        module: The parsed package module the cell copies.
        names: The definitions the cell holds, in the cell's order.
        defined_above: Names the notebook binds in code cells above this one: a name of the
            same module used by the definitions (``Shortcut``, ``PadShortcut``) is imported from
            the package only when the notebook has not defined it already.

    Returns:
        The imports the definitions use (the module's own, relative ones made absolute), a blank
        line between outside and package imports, then each definition exactly as in the module.
    """
    nodes = [module.definitions[name] for name in names]
    used = used_names(nodes) - set(names)
    outside, inside = [], []
    for node in module.imports:
        kept = keep_used(absolute(node), used)
        if kept is not None:
            is_package = isinstance(kept, ast.ImportFrom) and kept.module.startswith(PACKAGE)
            (inside if is_package else outside).append(ast.unparse(kept))
    same_module = sorted((used & module.top_level) - set(names) - defined_above)
    if same_module:
        inside.append(f"from {PACKAGE}.{module.name} import {', '.join(same_module)}")
        inside.sort()  # the import order ruff (isort) keeps: by module name
    imports = "\n\n".join(group for group in ("\n".join(outside), "\n".join(inside)) if group)
    definitions = "\n\n\n".join(module.source(name) for name in names)
    return f"{imports}\n\n\n{definitions}" if imports else definitions


def notebooks(root: Path = ROOT) -> list[Path]:
    return sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def export_cells(path: Path, nb: nbformat.NotebookNode) -> list[ExportCell]:
    cells = []
    for i, cell in enumerate(nb.cells):
        for tag in cell.get("metadata", {}).get("tags", []):
            if tag == TAG or tag.startswith(f"{TAG}:"):
                module = tag.partition(":")[2] or None
                cells.append(ExportCell(path, i, cell, module))
    return cells


def cell_definitions(export: ExportCell, modules: dict[str, Module]) -> tuple[list[str], list[str]]:
    """The names an export cell defines, and the problems that stop it being synced."""
    if export.module not in modules:
        tag = export.cell.metadata["tags"]
        return [], [
            f"{export.where}: its tag {tag} must name the reference module the cell copies, "
            f"one of {', '.join(f'{TAG}:{m}' for m in REFERENCE)}"
        ]
    if export.cell.cell_type != "code":
        return [], [f"{export.where}: `{TAG}:{export.module}` tags a non-code cell; untag it"]
    try:
        tree = ast.parse(export.cell.source)
    except SyntaxError as err:
        return [], [f"{export.where}: the cell does not parse ({err}); fix it, then run make sync"]
    names, problems = [], []
    module = modules[export.module]
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            continue
        if not isinstance(node, ast.FunctionDef | ast.ClassDef):
            problems.append(
                f"{export.where}: an export cell holds only imports and definitions; move "
                f"`{ast.unparse(node)[:60]}` to a cell of its own"
            )
        elif node.name not in module.definitions:
            problems.append(
                f"{export.where}: defines {node.name}, which {PACKAGE}/{module.name}.py does not; "
                f"add it there, or fix the cell's tag `{TAG}:{module.name}`"
            )
        else:
            names.append(node.name)
    return names, problems


def sync(root: Path = ROOT, write: bool = False) -> tuple[list[str], list[Path]]:
    """Compares (and with ``write``, updates) every export cell against the package.

    Args:
        root: The repository: ``resnet_course/`` and ``notebooks/`` are read from it.
        write: Copy the package's definitions into the export cells that differ.

    Returns:
        The problems found (empty when all is in sync; with ``write``, only those it could not
        fix), and the notebooks it saved.
    """
    modules = {name: parse_module(name, root) for name in REFERENCE}
    problems: list[str] = []
    exported: dict[tuple[str, str], list[str]] = {}
    saved = []
    for path in notebooks(root):
        nb = nbformat.read(path, as_version=4)
        cells = {e.index: e for e in export_cells(path, nb)}
        changed, defined_above = False, set()
        for i, cell in enumerate(nb.cells):
            export = cells.get(i)
            if export is not None:
                names, found = cell_definitions(export, modules)
                problems += found
                for name in names:
                    exported.setdefault((export.module, name), []).append(export.where)
                if names and not found:
                    expected = render(modules[export.module], names, defined_above)
                    if cell.source != expected:
                        if write:
                            cell.source, changed = expected, True
                        else:
                            problems.append(drift(export, expected))
            if cell.cell_type == "code":
                defined_above |= bound_names(tolerant_parse(cell.source))
        if changed:
            nbformat.write(nb, path)
            saved.append(path)
    for (module, name), places in sorted(exported.items()):
        if len(places) > 1:
            problems.append(
                f"{module}.{name} is exported by {len(places)} cells ({', '.join(places)}); "
                f"keep one, in the chapter that builds it, and drop the tag from the others"
            )
    for module, name in sorted(required(modules, package_all(root)) - set(exported)):
        problems.append(
            f"no notebook exports {module}.{name}: end the chapter that builds it with a code "
            f"cell tagged `{TAG}:{module}` holding its definition, then run make sync"
        )
    return problems, saved


def drift(export: ExportCell, expected: str) -> str:
    diff = difflib.unified_diff(
        expected.splitlines(),
        export.cell.source.splitlines(),
        f"{PACKAGE}/{export.module}.py (what make sync writes)",
        export.where,
        lineterm="",
    )
    return (
        f"{export.where} differs from {PACKAGE}/{export.module}.py; the package is the source "
        f"of truth: run `make sync` (or edit the package, then sync)\n" + "\n".join(diff)
    )


def retag(paths: list[Path], root: Path = ROOT) -> list[Path]:
    """Turns each bare ``export`` tag into ``export:MODULE``, MODULE being the reference module
    that defines every class and function in the cell. Touches nothing but those tags.

    Returns:
        The notebooks it saved.
    """
    modules = {name: parse_module(name, root) for name in REFERENCE}
    saved = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        changed = False
        for export in export_cells(path, nb):
            if export.module is not None:
                continue
            tree = tolerant_parse(export.cell.source)
            names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)}
            homes = [m for m in REFERENCE if names and names <= set(modules[m].definitions)]
            if len(homes) != 1:
                raise SystemExit(
                    f"{export.where}: cannot tell which module defines {sorted(names)}; "
                    f"tag the cell `{TAG}:MODULE` by hand"
                )
            tags = export.cell.metadata["tags"]
            tags[tags.index(TAG)] = f"{TAG}:{homes[0]}"
            changed = True
        if changed:
            nbformat.write(nb, path)
            saved.append(path)
    return saved


def main(argv: list[str] | None = None, root: Path = ROOT) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--check", action="store_true", help="report drift, change nothing")
    action.add_argument("--write", action="store_true", help="copy the package into the cells")
    action.add_argument(
        "--retag",
        action="store_true",
        help="turn bare `export` tags into `export:MODULE` (a one-off migration)",
    )
    args = parser.parse_args(argv)
    if args.retag:
        for path in retag(notebooks(root), root):
            print(f"retagged {path.relative_to(root)}")
        return 0
    problems, saved = sync(root, write=args.write)
    for path in saved:
        print(f"wrote {path.relative_to(root)}")
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems and not args.write:
        print("every export cell is identical to the package")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
