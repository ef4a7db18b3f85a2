"""The notebooks and the package cannot drift apart: ``scripts/sync_exports.py --check`` passes.

Each chapter ends a section with a cell tagged ``export:MODULE`` holding the final definition of
what it built, exactly as ``resnet_course/MODULE.py`` has it. The first test checks the course;
the others check the tool itself, on a small made-up package and notebook in a temporary folder.
"""

import importlib.util
import textwrap
from pathlib import Path

import nbformat
import pytest
from notebook_utils import ROOT

_spec = importlib.util.spec_from_file_location("sync_exports", ROOT / "scripts/sync_exports.py")
sync_exports = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sync_exports)


def test_every_export_cell_is_the_package_code(capsys):
    status = sync_exports.main(["--check"])
    assert status == 0, capsys.readouterr().err


def test_required_exports_are_the_reference_tier_public_definitions():
    modules = {name: sync_exports.parse_module(name) for name in sync_exports.REFERENCE}
    required = sync_exports.required(modules, sync_exports.package_all())
    # The tier's public classes and functions; presets (resnet18, resnet20, plain20, ...) and
    # helpers outside __all__ are not required.
    assert {("blocks", "BasicBlock"), ("resnet", "ResNet"), ("cifar", "CifarResNet")} <= required
    names = {name for _, name in required}
    assert not names & {"resnet18", "resnet152", "resnet20", "plain110"}
    assert not any(name.startswith("_") for name in names)


# A made-up package with the four reference modules, and one notebook exporting from three.
PACKAGE = {
    "__init__.py": '__all__ = ["Block", "Net", "double", "net3"]\n',
    "layers.py": '''
        """Layers."""

        import math


        def double(x: int) -> int:
            """Twice x."""
            return 2 * x  # the comment is part of the code


        def _private(x):
            return math.sqrt(x)
        ''',
    "blocks.py": '''
        from torch import Tensor, nn

        from .layers import double

        SCALE = 3


        class Block(nn.Module):
            """A block.

            Args:
                width: How wide.
            """

            def forward(self, x: Tensor) -> Tensor:
                return double(x) * SCALE
        ''',
    "resnet.py": '''
        from torch import nn

        from .blocks import Block


        def check(x):
            """Public by its name, but not in __all__: a helper, not exported."""


        class Net(nn.Module):
            """A net."""

            def __init__(self) -> None:
                super().__init__()
                self.block = Block()


        def net3(**kwargs) -> Net:
            """A preset: returns one of the tier's classes, so it is not exported."""
            return Net(**kwargs)
        ''',
    "cifar.py": '"""Nothing yet."""\n',
}


def make_repo(root: Path, cells: list[nbformat.NotebookNode]) -> Path:
    (root / "resnet_course").mkdir()
    for name, text in PACKAGE.items():
        (root / "resnet_course" / name).write_text(textwrap.dedent(text).lstrip())
    (root / "notebooks").mkdir()
    path = root / "notebooks" / "01_demo.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    return path


def code(source: str, *tags: str, outputs: list | None = None) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": list(tags)} if tags else {})
    cell.outputs = outputs or []
    return cell


def stub_cells() -> list[nbformat.NotebookNode]:
    """A notebook whose export cells hold stubs: right names, wrong code."""
    return [
        nbformat.v4.new_markdown_cell("# Demo"),
        code("def double(x):\n    return x + x", "export:layers"),
        code(
            "SCALE = 3\nprint(SCALE)",
            "nbval-check-output",
            outputs=[nbformat.v4.new_output("stream", text="3\n")],
        ),
        code("class Block:\n    pass", "export:blocks"),
        code("class Net:\n    pass", "export:resnet"),
    ]


def run(root: Path, *args: str) -> int:
    return sync_exports.main(list(args), root=root)


def test_write_copies_the_package_and_touches_nothing_else(tmp_path, capsys):
    path = make_repo(tmp_path, stub_cells())
    before = nbformat.read(path, as_version=4)
    assert run(tmp_path, "--check") == 1
    assert run(tmp_path, "--write") == 0
    assert run(tmp_path, "--check") == 0, capsys.readouterr().err
    after = nbformat.read(path, as_version=4)
    assert [c.id for c in after.cells] == [c.id for c in before.cells]
    for i in (0, 2):  # markdown and a plain code cell with its output: unchanged
        assert after.cells[i] == before.cells[i]
    for old, new in zip(before.cells, after.cells, strict=True):
        assert new.metadata == old.metadata
    double = textwrap.dedent('''
        def double(x: int) -> int:
            """Twice x."""
            return 2 * x  # the comment is part of the code''')
    assert after.cells[1].source == double.lstrip()  # no imports: `double` uses none
    # Imports: the module's own, made absolute; `SCALE` was defined by a cell above, so it is
    # not imported; `double` comes from the package.
    assert after.cells[3].source.startswith(
        "from torch import Tensor, nn\n\nfrom resnet_course.layers import double\n\n\nclass Block"
    )
    assert after.cells[4].source.startswith(
        "from torch import nn\n\nfrom resnet_course.blocks import Block\n\n\nclass Net"
    )


def test_a_changed_line_or_docstring_in_the_package_is_caught_and_written(tmp_path, capsys):
    path = make_repo(tmp_path, stub_cells())
    run(tmp_path, "--write")
    blocks = tmp_path / "resnet_course" / "blocks.py"
    for old, new in [
        ("return double(x) * SCALE", "return double(x) + SCALE"),
        ("width: How wide.", "width: How wide, in channels."),
    ]:
        blocks.write_text(blocks.read_text().replace(old, new))
        capsys.readouterr()
        assert run(tmp_path, "--check") == 1
        err = capsys.readouterr().err
        assert "01_demo.ipynb cell 3 differs from resnet_course/blocks.py" in err
        assert "run `make sync`" in err
        assert f"-        {new}" in err and f"+        {old}" in err  # package -, notebook +
        assert run(tmp_path, "--write") == 0
        assert new in nbformat.read(path, as_version=4).cells[3].source
        assert run(tmp_path, "--check") == 0


def test_a_missing_export_is_reported_and_presets_and_helpers_are_not_required(tmp_path, capsys):
    make_repo(tmp_path, stub_cells()[:4])  # no cell exports Net
    run(tmp_path, "--write")
    capsys.readouterr()
    assert run(tmp_path, "--check") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "no notebook exports resnet.Net: end the chapter that builds it with a code cell tagged "
        "`export:resnet` holding its definition, then run make sync"
    ]  # net3 (a preset), check (not in __all__) and _private are not required


def test_tags_must_name_a_reference_module(tmp_path, capsys):
    cells = stub_cells()
    cells[3].metadata.tags = ["export"]
    cells[4].metadata.tags = ["export:data"]
    path = make_repo(tmp_path, cells)
    assert run(tmp_path, "--check") == 1
    err = capsys.readouterr().err
    assert "cell 3: its tag ['export'] must name the reference module the cell copies" in err
    assert "cell 4: its tag ['export:data'] must name the reference module" in err
    assert "export:layers, export:blocks, export:resnet, export:cifar" in err
    # The one-off migration names the module of a bare `export` tag.
    sync_exports.retag([path], root=tmp_path)
    assert nbformat.read(path, as_version=4).cells[3].metadata.tags == ["export:blocks"]


@pytest.mark.parametrize(
    "source, tag, words",
    [
        ("class Net:\n    pass", "export:resnet", "resnet.Net is exported by 2 cells"),
        ("def triple(x):\n    return 3 * x", "export:resnet", "defines triple, which resnet_"),
        ("import math\n\nprint(math.pi)", "export:cifar", "holds only imports and definitions"),
    ],
)
def test_a_wrong_export_cell_is_reported(tmp_path, capsys, source, tag, words):
    make_repo(tmp_path, [*stub_cells(), code(source, tag)])
    assert run(tmp_path, "--write") == 1
    assert words in capsys.readouterr().err
