"""The book builds offline with warnings as errors; a reader finds what they need on its pages."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from notebook_utils import NOTEBOOKS, ROOT, repository_url, toc_files


@pytest.fixture(scope="module")
def html(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("book")
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    result = subprocess.run(
        [
            str(jupyter_book),
            "build",
            str(ROOT),
            "--path-output",
            str(out),
            "--all",
            "-W",
            "-n",
            "--keep-going",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    log = result.stdout[-3000:] + result.stderr[-3000:]
    assert result.returncode == 0, f"jupyter-book build failed (warnings are errors):\n{log}"
    return out / "_build" / "html"


@pytest.mark.book
def test_every_page_in_the_toc_is_rendered(html):
    for name in toc_files():
        page = html / f"{name}.html"
        assert page.exists(), f"{name} is in _toc.yml but {page.name} was not built"


@pytest.mark.book
def test_notebook_pages_have_launch_buttons_and_outputs(html):
    owner_repo = repository_url().removeprefix("https://github.com/")
    for path in NOTEBOOKS:
        page = (html / "notebooks" / f"{path.stem}.html").read_text()
        colab = (
            f"https://colab.research.google.com/github/{owner_repo}/blob/main/notebooks/{path.name}"
        )
        assert colab in page, f"{path.name}: no Colab launch button"
        assert "mybinder.org/v2/gh/" + owner_repo in page and "urlpath=lab" in page, (
            f"{path.name}: no Binder button opening JupyterLab"
        )
        assert "cell_output" in page, f"{path.name}: the page shows no outputs"
        assert "Traceback" not in page, f"{path.name}: a traceback is rendered"


@pytest.mark.book
def test_repository_and_issues_buttons(html):
    page = (html / f"{toc_files()[-1]}.html").read_text()
    assert repository_url() in page
    assert repository_url() + "/issues" in page


@pytest.mark.book
def test_citations_resolve(html):
    for page in html.rglob("*.html"):
        text = page.read_text()
        assert not re.search(r"\?\?|\[#[a-z]+\d{4}", text), f"{page.name}: unresolved citation"


@pytest.mark.book
def test_math_renders_without_a_cdn(html):
    # The pages load the MathJax the book carries, so formulas render offline (a classroom
    # without internet, a file:// copy of the book), not the raw \( ... \) source.
    page = (html / "book" / "intro.html").read_text()
    scripts = re.findall(r'<script[^>]*src="([^"]*mathjax[^"]*)"', page, re.I)
    assert scripts, "intro.html loads no MathJax"
    for src in scripts:
        assert not src.startswith(("http:", "https:", "//")), f"MathJax from a CDN: {src}"
        assert (html / "book" / src).resolve().is_file(), f"{src} is not in the built book"
