"""A small Sphinx extension for the book's pages (loaded through `_config.yml`).

It changes three things the theme does for every page, per page:

- Launch buttons (Colab, Binder) only on the pages under `launch_buttons_pages` ("notebooks/"):
  only the chapters have the Colab set-up cell, so only they run there. The book's own pages
  (intro, datasets, teaching guide) are notebooks too, but read files of the repository and would
  fail on Colab.
- The home page's browser tab reads "ResNet from Scratch", not "ResNet from Scratch — ResNet from
  Scratch": Sphinx appends the book's title to every page's title, even when they are equal.
- Each script is included once: sphinx-thebe adds its `const THEBE_JS_URL = ...` twice, and the
  second copy is a JavaScript error ("Identifier 'THEBE_JS_URL' has already been declared").
"""

from typing import Any

from markupsafe import Markup
from sphinx.application import Sphinx


def launch_buttons_only_on_chapters(
    app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree: Any
) -> None:
    """Drop the launch-buttons group from pages outside `launch_buttons_pages`.

    Runs after sphinx-book-theme adds the group (its handler has priority 501).
    """
    if pagename.startswith(app.config.launch_buttons_pages):
        return
    buttons = context.get("header_buttons", [])
    buttons[:] = [button for button in buttons if button.get("label") != "launch-buttons"]


def title_once(
    app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree: Any
) -> None:
    """Leave the " — book title" suffix off a page whose title is the book's title."""
    if Markup(context.get("title") or "").striptags() == context.get("docstitle"):
        context["docstitle"] = ""


def scripts_once(
    app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree: Any
) -> None:
    """Remove repeated <script> entries (same file or body, same attributes), keeping the first."""
    seen, unique = set(), []
    for script in context.get("script_files", []):
        key = (str(script.filename or ""), tuple(sorted(script.attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_config_value("launch_buttons_pages", "notebooks/", "html", [str])
    app.connect("html-page-context", launch_buttons_only_on_chapters, priority=900)
    app.connect("html-page-context", title_once, priority=900)
    app.connect("html-page-context", scripts_once, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
