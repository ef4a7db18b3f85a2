"""The notebooks and the package cannot drift apart.

Each chapter ends a section with one cell tagged `export` that holds the complete final definition
of what it built. Its code must be the package's code: same abstract syntax tree (so comments,
formatting and docstrings may differ, nothing else).
"""

import ast
import difflib

import pytest
from notebook_utils import NOTEBOOKS, ROOT, read, tags

# Every definition the chapters build must be exported by one of them.
REQUIRED = {"conv3x3", "conv1x1", "BasicBlock", "Bottleneck", "ResNet"}


def strip_docstrings(node: ast.AST) -> ast.AST:
    for child in ast.walk(node):
        body = getattr(child, "body", None)
        if (
            isinstance(child, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef | ast.Module)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            child.body = body[1:] or [ast.Pass()]
    return node


def package_definitions() -> dict[str, tuple[str, ast.AST]]:
    found = {}
    for path in sorted((ROOT / "resnet_course").glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef):
                found[node.name] = (path.name, node)
    return found


def exported() -> list[tuple[str, int, ast.AST]]:
    """(notebook, cell index, definition) for every definition in an `export` cell."""
    result = []
    for path in NOTEBOOKS:
        for i, cell in enumerate(read(path).cells):
            if "export" in tags(cell):
                assert cell.cell_type == "code", (
                    f"{path.name} cell {i}: `export` tag on a non-code cell"
                )
                for node in ast.parse(cell.source).body:
                    if isinstance(node, ast.Import | ast.ImportFrom):
                        continue
                    assert isinstance(node, ast.FunctionDef | ast.ClassDef), (
                        f"{path.name} cell {i}: an export cell holds only imports and definitions, "
                        f"found: {ast.unparse(node)[:60]}"
                    )
                    result.append((path.name, i, node))
    return result


EXPORTED = exported()


@pytest.mark.parametrize(
    "notebook, cell, node", EXPORTED, ids=[f"{nb}:{node.name}" for nb, _, node in EXPORTED]
)
def test_export_cell_is_identical_to_the_package(notebook, cell, node):
    definitions = package_definitions()
    assert node.name in definitions, (
        f"{notebook} cell {cell} exports {node.name}, which the package does not define"
    )
    module, reference = definitions[node.name]
    ours = ast.unparse(strip_docstrings(node))
    theirs = ast.unparse(strip_docstrings(reference))
    diff = "\n".join(
        difflib.unified_diff(
            theirs.splitlines(),
            ours.splitlines(),
            f"resnet_course/{module}",
            f"{notebook} cell {cell}",
            lineterm="",
        )
    )
    assert ours == theirs, f"{node.name} differs between the package and the notebook:\n{diff}"


def test_every_chapter_definition_is_exported():
    if not NOTEBOOKS:
        pytest.skip("no notebooks yet")
    missing = REQUIRED - {node.name for _, _, node in EXPORTED}
    assert not missing, f"no notebook exports {sorted(missing)}"


def test_a_changed_definition_is_caught():
    """The comparison is not vacuous: one changed line makes the ASTs differ."""
    _, reference = package_definitions()["BasicBlock"]
    changed = ast.parse(ast.unparse(reference).replace("out += identity", "out = out + identity"))
    assert ast.unparse(strip_docstrings(changed.body[0])) != ast.unparse(
        strip_docstrings(reference)
    )
