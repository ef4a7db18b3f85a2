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


@pytest.mark.book
def test_launch_buttons_only_on_chapters(html):
    # Only the chapters in notebooks/ have the Colab set-up cell; the book's own pages read files
    # of the repository and would fail on Colab (book/_ext/course_pages.py removes the menu).
    for name in toc_files():
        page = (html / f"{name}.html").read_text()
        has_menu = "dropdown-launch-buttons" in page
        if name.startswith("notebooks/"):
            assert has_menu, f"{name}: a chapter without launch buttons"
        else:
            assert not has_menu, f"{name}: launch buttons on a page that cannot run on Colab"


@pytest.mark.book
def test_tab_titles_logo_and_favicon(html):
    for name in toc_files():
        page = (html / f"{name}.html").read_text()
        title = re.search(r"<title>(.*?)</title>", page, re.S).group(1).strip()
        parts = [part.strip() for part in title.split("&#8212;")]
        assert len(set(parts)) == len(parts), f"{name}: the tab title repeats itself: {title}"
        assert re.search(r'<link rel="icon" href="[^"]*favicon\.png"', page), f"{name}: no favicon"
        assert 'class="logo__image' in page, f"{name}: no logo"
    assert (html / "_static" / "favicon.png").is_file() and (
        html / "_static" / "logo.svg"
    ).is_file()


@pytest.mark.book
def test_printed_output_is_one_box_per_cell(html):
    # nb_merge_streams: a cell that prints ten times shows one box, not ten.
    from bs4 import BeautifulSoup

    for path in NOTEBOOKS:
        soup = BeautifulSoup((html / "notebooks" / f"{path.stem}.html").read_text(), "html.parser")
        for output in soup.select(".cell_output"):
            streams = [
                k for k in output.find_all(recursive=False) if "stream" in k.get("class", [])
            ]
            kinds = [("stderr" in k.get("class", [])) for k in streams]
            assert len(kinds) == len(set(kinds)), f"{path.name}: one cell's print in several boxes"


@pytest.mark.book
def test_each_script_is_included_once(html):
    # sphinx-thebe adds `const THEBE_JS_URL = ...` twice; the second is a JavaScript error.
    page = (html / "book" / "setup.html").read_text()
    scripts = re.findall(r"<script>(.*?)</script>", page, re.S)
    repeated = {s[:60] for s in scripts if scripts.count(s) > 1}
    assert not repeated, f"scripts included twice: {repeated}"


def test_binder_builds_without_the_repository():
    # repo2docker installs binder/environment.yml before the repository is copied in
    # (jupyterhub/repo2docker#1265): it must not install the course; postBuild does.
    import yaml

    env = yaml.safe_load((ROOT / "binder" / "environment.yml").read_text())
    pip = [d for d in env["dependencies"] if isinstance(d, dict)]
    assert not pip, "binder/environment.yml installs with pip before the repository is there"
    post_build = ROOT / "binder" / "postBuild"
    assert post_build.stat().st_mode & 0o111, "binder/postBuild must be executable"
    assert '-e ".[dev]"' in post_build.read_text()
    # The conda environment for people keeps installing the course from the checkout.
    root_env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert any(
        "-e .[book,dev]" in d.get("pip", [])
        for d in root_env["dependencies"]
        if isinstance(d, dict)
    )


def test_sphinx_book_theme_is_not_1_3():
    # 1.3.0's sidebar cannot be opened on a phone (executablebooks/sphinx-book-theme#999, #986);
    # pyproject.toml's `book` extra pins below it. `make browser-test` checks the real thing.
    from importlib.metadata import version

    assert not version("sphinx-book-theme").startswith("1.3."), (
        "sphinx-book-theme 1.3 breaks the book's sidebar: reinstall with "
        "`pip install -e '.[book]'`, which pins sphinx-book-theme<1.3"
    )
