"""Open every page of the built book in a real browser and check what a reader sees.

`make browser-test` runs this after building the book. It serves `_build/html` on a local port
and drives Chromium with Playwright at two sizes, a desktop (1280x900) and a phone (390x844),
and fails, naming the page and the problem, when any page in `_toc.yml`:

- is wider than the phone's screen (only code cells and wide tables may scroll, in their own box);
- has a sidebar that does not open on the phone, or whose links do not navigate;
- shows a broken image, or a file of the book that does not load;
- raises a JavaScript error (apart from the documented KNOWN_HARMLESS_ERRORS below);
- shows raw math (`\\(`, `$$`) or a MathJax error instead of a rendered formula, or a formula
  with a stray backslash in it (`\\text{fan\\_out}` shows as "fan\\_out");
- shows a test marker (`# NBVAL...`) to the reader;
- splits one cell's printed output into several boxes;
- shows a report of `resnet_course.check` (it starts with ✅ or ❌) without a frame, so that it
  reads like the author's prose;
- on the phone, has a table that breaks a word in two ("exer/cise/s") or whose first column is
  not entirely on the screen;
- has launch buttons (Colab, Binder) although it is not a chapter in `notebooks/`, or lacks them
  although it is one; has no favicon or no logo; repeats the book's title in its tab title.

It saves a screenshot of every page at both sizes, and of the open sidebar on the phone, under
`_build/screenshots/` for a person to look at.

The browser: Playwright's own browser download needs the internet, so this uses a Chromium that
is already installed (on Debian/Ubuntu: `apt-get install chromium`), found through the
environment variable CHROMIUM (default /usr/bin/chromium). Without one it fails with a message
saying so; it never skips. Each run starts Chromium with a fresh, temporary profile.

Usage:
    python scripts/browser_test.py                    # every page, both sizes
    python scripts/browser_test.py --pages notebooks/05_resnet book/setup
    CHROMIUM=/path/to/chrome python scripts/browser_test.py
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import re
import sys
import threading
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CHROMIUM = "/usr/bin/chromium"
VIEWPORTS = {"desktop": (1280, 900), "phone": (390, 844)}
# Chromium talks to Google's servers in the background unless told not to; on a closed network
# those connections are refused and the browser can hang or log errors unrelated to the book.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Nothing leaves this machine: every host but the local server is unknown. The test needs no
    # network, and what the book fetches from elsewhere is listed at the end.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
# JavaScript errors that are known and do not affect readers: (pattern, why it is harmless).
# Every other console error or uncaught exception fails the test.
KNOWN_HARMLESS_ERRORS: list[tuple[str, str]] = []
LAUNCH_PAGES = "notebooks/"  # only these pages have a Colab set-up cell, so only they get buttons


def toc_pages(toc: Path) -> list[str]:
    """The pages of the book in reading order, as docnames ("book/intro", "notebooks/05_resnet").

    Args:
        toc: Path of `_toc.yml`.

    Returns:
        The root page, then every `file:` entry of every part, chapter and section.
    """
    data = yaml.safe_load(toc.read_text())
    pages = [data["root"]]

    def walk(entries: list[dict]) -> None:
        for entry in entries:
            if "file" in entry:
                pages.append(entry["file"])
            for key in ("parts", "chapters", "sections"):
                walk(entry.get(key, []))

    walk([data])
    return [re.sub(r"\.(md|ipynb)$", "", page) for page in pages]


def find_chromium() -> str:
    """The Chromium executable to drive, from $CHROMIUM or the Debian default.

    Returns:
        Its path.

    Raises:
        SystemExit: No executable there, with the ways to get one.
    """
    path = os.environ.get("CHROMIUM", DEFAULT_CHROMIUM)
    if not (Path(path).is_file() and os.access(path, os.X_OK)):
        sys.exit(
            f"browser-test: no Chromium at {path}. Install one (Debian/Ubuntu: "
            "`sudo apt-get install chromium`) or point CHROMIUM at a Chromium or Chrome "
            "executable, e.g. `make browser-test CHROMIUM=/usr/bin/google-chrome`."
        )
    return path


def serve(folder: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Serve a folder on a free local port in a background thread.

    Args:
        folder: The folder to serve (the built book).

    Returns:
        The server (call `shutdown()` when done) and its base URL, ending in "/".
    """

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base class's name)
            pass

    class QuietServer(http.server.ThreadingHTTPServer):
        def handle_error(self, request, client_address) -> None:
            # The browser closed the connection (a page closed while a file was on its way).
            if not isinstance(sys.exc_info()[1], ConnectionError):
                super().handle_error(request, client_address)

    handler = functools.partial(QuietHandler, directory=str(folder))
    server = QuietServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}/"


# Elements wider than the screen that are not inside a box that scrolls on its own: the culprits
# when a page is wider than the phone. Runs in the page.
OVERFLOW_JS = """(width) => {
  const pageWidth = document.documentElement.scrollWidth;
  if (pageWidth <= width) return {width: pageWidth, culprits: []};
  const scrolls = (el) => {
    for (let p = el.parentElement; p; p = p.parentElement) {
      const s = getComputedStyle(p);
      if (["auto", "scroll", "hidden"].includes(s.overflowX) && p !== document.body
          && p !== document.documentElement) return true;
    }
    return false;
  };
  const wide = [];
  for (const el of document.querySelectorAll("body *")) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.right <= width + 1 || scrolls(el) || el.closest(".skip-link")) continue;
    if (r.left <= 0 && r.right >= pageWidth - 1) continue;  // as wide as the page: a consequence
    if ([...el.children].some((c) => c.getBoundingClientRect().right > width + 1)) continue;
    wide.push(`<${el.tagName.toLowerCase()} class="${el.className}"> right edge at `
              + `${Math.round(r.right)} px: ${(el.textContent || "").trim().slice(0, 60)}`);
  }
  return {width: pageWidth, culprits: wide.slice(0, 5)};
}"""

# Raw TeX that should have become a formula, outside code (where it may legitimately appear).
RAW_MATH_JS = r"""() => {
  const walker = document.createTreeWalker(document.querySelector("main") || document.body,
                                           NodeFilter.SHOW_TEXT);
  const raw = [];
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (n.parentElement.closest("pre, code, script, style, mjx-container, .highlight")) continue;
    const m = n.textContent.match(/\\\(|\\\[|\$\$|\\begin\{/);
    if (m) raw.push(n.textContent.trim().slice(0, 80));
  }
  const unrendered = [...document.querySelectorAll("span.math, div.math")]
    .filter((el) => !el.querySelector("mjx-container")).map((el) => el.textContent.slice(0, 80));
  const errors = [...document.querySelectorAll("mjx-merror")].map((el) => el.textContent);
  // A backslash that MathJax shows as a character: TeX it did not understand as a command.
  const backslashes = [];
  if (window.MathJax && MathJax.startup && MathJax.startup.document && MathJax.startup.toMML) {
    for (const item of MathJax.startup.document.math) {
      const mml = MathJax.startup.toMML(item.root);
      if (/>[^<]*\\[^<]*</.test(mml)) backslashes.push(item.math.slice(0, 80));
    }
  }
  return {raw, unrendered, errors, backslashes};
}"""

# Reports of resnet_course.check shown in a cell's output (their first line starts with ✅ or ❌)
# that have no frame: no element between the report's text and its output box has a border.
UNFRAMED_REPORTS_JS = r"""() => {
  const walker = document.createTreeWalker(document.querySelector("main") || document.body,
                                           NodeFilter.SHOW_TEXT);
  const unframed = [];
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const output = n.parentElement.closest(".cell_output");
    if (!output || !/^\s*[\u2705\u274c]/.test(n.textContent)) continue;
    let framed = false;
    for (let el = n.parentElement; el && !framed; el = el.parentElement) {
      const s = getComputedStyle(el);
      framed = ["Top", "Right", "Bottom", "Left"].some((side) =>
        s[`border${side}Style`] !== "none" && parseFloat(s[`border${side}Width`]) > 0);
      if (el === output) break;
    }
    if (!framed) unframed.push(n.textContent.trim().slice(0, 60));
  }
  return unframed;
}"""

# Tables on a phone: a word broken across two lines (a column squeezed below its longest word),
# and a first column that is not entirely on the screen (the column that says what a row is).
TABLES_JS = r"""(width) => {
  const broken = [], offscreen = [];
  for (const table of document.querySelectorAll("main table")) {
    const walker = document.createTreeWalker(table, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      // Words: a line may break after a hyphen, a dash or a slash, never inside a word.
      for (const m of n.textContent.matchAll(/[^\s\-\u2010-\u2014\/]+/g)) {
        const range = document.createRange();
        range.setStart(n, m.index);
        range.setEnd(n, m.index + m[0].length);
        const tops = new Set([...range.getClientRects()].filter((r) => r.width > 0)
                               .map((r) => Math.round(r.top)));
        if (tops.size > 1) broken.push(m[0]);
      }
    }
    const first = table.querySelector("tr > :first-child");
    const r = first && first.getBoundingClientRect();
    if (r && (r.left < 0 || r.right > width + 1)) offscreen.push(first.textContent.trim());
  }
  return {broken: broken.slice(0, 5), offscreen};
}"""

# Images: make lazy ones load now, wait for all, return those that failed.
IMAGES_JS = """async () => {
  const imgs = [...document.images];
  imgs.forEach((i) => { i.loading = "eager"; });
  await Promise.all(imgs.map((i) => i.complete ? null
    : new Promise((done) => { i.addEventListener("load", done); i.addEventListener("error", done);
                              setTimeout(done, 10000); })));
  return imgs.filter((i) => !(i.complete && i.naturalWidth > 0)).map((i) => i.currentSrc || i.src)
    .filter((src) => src.startsWith(location.origin));
}"""

# Printed output cut into several boxes: consecutive stream outputs of one cell.
SPLIT_STREAMS_JS = """() => [...document.querySelectorAll(".cell_output")].filter((out) => {
  const kids = [...out.children];
  return kids.some((k, i) => i > 0 && k.classList.contains("stream")
                   && kids[i - 1].classList.contains("stream")
                   && k.classList.contains("stderr") === kids[i - 1].classList.contains("stderr"));
}).length"""

# Wait until MathJax has typeset the page (at most 20 s: then the raw-math check reports it).
MATHJAX_READY_JS = """() => Promise.race([
  new Promise((done) => setTimeout(() => done(false), 20000)),
  (window.MathJax && MathJax.startup && MathJax.startup.promise)
    ? MathJax.startup.promise.then(() => true) : true])"""


def visible_primary_toggle(page):
    """The sidebar's menu button that a reader can see (the theme has several, some hidden)."""
    for button in page.locator("button.primary-toggle, label.primary-toggle").all():
        if button.is_visible():
            return button
    return None


def visible_sidebar_links(page, width: int) -> list:
    """Links of the primary sidebar (or its phone drawer) that are on the screen."""
    links = []
    for link in page.locator(
        "#pst-primary-sidebar a.reference, #pst-primary-sidebar-modal a.reference"
    ).all():
        box = link.bounding_box() if link.is_visible() else None
        if box and box["x"] >= 0 and box["x"] + 20 <= width:
            links.append(link)
    return links


class Check:
    """Runs the checks on one page at one size and collects the problems found."""

    def __init__(self, page, base: str, name: str, viewport: str, shots: Path):
        self.page, self.base, self.name, self.viewport = page, base, name, viewport
        self.shots = shots
        self.problems: list[str] = []
        self.external: set[str] = set()  # resources on other hosts, refused

    def on_page_error(self, error) -> None:
        self.fail(f"JavaScript error: {error}")

    def on_console(self, message) -> None:
        if message.type != "error":
            return
        where = message.location.get("url", "")
        if "ERR_NAME_NOT_RESOLVED" in message.text and not where.startswith(self.base):
            return  # a request to another host, refused: listed by on_request_failed
        if any(re.search(pattern, message.text) for pattern, _ in KNOWN_HARMLESS_ERRORS):
            return
        self.fail(f"console error: {message.text} ({where})")

    def on_request_failed(self, request) -> None:
        if request.url.startswith(self.base):
            self.fail(f"failed to load {request.url}: {request.failure}")
        else:
            self.external.add(request.url)

    def on_response(self, response) -> None:
        if response.status >= 400:
            self.fail(f"HTTP {response.status} for {response.url}")

    def fail(self, message: str) -> None:
        self.problems.append(f"{self.name} [{self.viewport}]: {message}")

    def shot(self, suffix: str = "", full_page: bool = True) -> None:
        # A whole chapter is 20,000 px or more: JPEG, which Chromium encodes much faster than PNG.
        ext = ".jpg" if full_page else ".png"
        path = self.shots / self.viewport / (self.name.replace("/", "__") + suffix + ext)
        path.parent.mkdir(parents=True, exist_ok=True)
        quality = {"quality": 70} if full_page else {}
        self.page.screenshot(path=str(path), full_page=full_page, timeout=300000, **quality)

    def run(self, next_page: str) -> None:
        page, width = self.page, VIEWPORTS[self.viewport][0]
        page.goto(self.base + self.name + ".html", wait_until="load", timeout=90000)
        page.evaluate(MATHJAX_READY_JS)
        for src in page.evaluate(IMAGES_JS):
            self.fail(f"broken image {src}")
        overflow = page.evaluate(OVERFLOW_JS, width)
        if overflow["width"] > width:
            self.fail(
                f"the page is {overflow['width']} px wide on a {width} px screen (it pans "
                "sideways); widest elements: " + "; ".join(overflow["culprits"])
            )
        math = page.evaluate(RAW_MATH_JS)
        for text in math["raw"] + math["unrendered"]:
            self.fail(f"raw math shown instead of a formula: {text!r}")
        for text in math["errors"]:
            self.fail(f"MathJax error in a formula: {text!r}")
        for tex in math["backslashes"]:
            self.fail(f"a formula shows a stray backslash: {tex!r}")
        text = page.locator("main").text_content() or ""
        for marker in sorted(set(re.findall(r"#\s*NBVAL\w*", text, re.I))):
            self.fail(f"test marker {marker!r} shown to readers")
        if split := page.evaluate(SPLIT_STREAMS_JS):
            self.fail(f"{split} cell(s) print their output in several boxes (nb_merge_streams)")
        for report in page.evaluate(UNFRAMED_REPORTS_JS):
            self.fail(f"a check report has no frame (reads like prose): {report!r}")
        if self.viewport == "phone":
            tables = page.evaluate(TABLES_JS, width)
            if tables["broken"]:
                self.fail("a table breaks words in two: " + ", ".join(map(repr, tables["broken"])))
            for cell in tables["offscreen"]:
                self.fail(f"a table's first column is not on the screen: {cell[:40]!r}")
        self.shot()
        if self.viewport == "desktop":
            self.check_header()
        else:
            self.check_phone_sidebar(next_page)

    def check_header(self) -> None:
        page = self.page
        title = page.title()
        if m := re.fullmatch(r"(.+?) \W (.+)", title):
            if m.group(1).strip() == m.group(2).strip():
                self.fail(f"the tab's title repeats itself: {title!r}")
        if not page.locator("link[rel~='icon']").count():
            self.fail("no favicon")
        if not any(img.is_visible() for img in page.locator("img.logo__image").all()):
            self.fail("no logo in the sidebar")
        launch = page.locator(".dropdown-launch-buttons")
        if self.name.startswith(LAUNCH_PAGES):
            labels = " ".join(launch.locator("a").all_text_contents()) if launch.count() else ""
            for service in ("Colab", "Binder"):
                if service not in labels:
                    self.fail(f"no {service} launch button on a notebook chapter")
        elif launch.count():
            self.fail("launch buttons on a page that cannot run on Colab (not in notebooks/)")
        searches = [b for b in page.locator(".search-button-field").all() if b.is_visible()]
        if len(searches) > 1:
            self.fail(f"{len(searches)} search boxes are visible; one is enough")
        # The menu button hides the sidebar on a desktop (sphinx-book-theme 1.3.0 broke this).
        toggle = visible_primary_toggle(page)
        if toggle is None:
            self.fail("no visible button to hide the sidebar")
            return
        sidebar = page.locator("#pst-primary-sidebar")
        toggle.click()
        page.wait_for_timeout(400)
        if sidebar.is_visible() and (sidebar.bounding_box() or {}).get("width", 0) > 10:
            self.fail("the menu button does not hide the sidebar")

    def check_phone_sidebar(self, next_page: str) -> None:
        page, width = self.page, VIEWPORTS["phone"][0]
        toggle = visible_primary_toggle(page)
        if toggle is None:
            self.fail("no visible menu button on the phone")
            return
        toggle.click()
        page.wait_for_timeout(600)  # the drawer slides in
        self.shot("__sidebar", full_page=False)
        links = visible_sidebar_links(page, width)
        if not links:
            self.fail("the menu button does not open the sidebar: no chapter link on the screen")
            return
        target = self.base + next_page + ".html"
        hrefs = [link.evaluate("a => a.href") for link in links]
        if target not in hrefs:
            self.fail(f"the open sidebar has no link to {next_page}")
            return
        links[hrefs.index(target)].click()
        try:
            page.wait_for_url(target, wait_until="commit", timeout=30000)
        except Exception:  # Playwright's TimeoutError; the message says what went wrong
            self.fail(f"the sidebar link to {next_page} does not navigate (at {page.url})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--html", type=Path, default=ROOT / "_build" / "html")
    parser.add_argument("--screenshots", type=Path, default=ROOT / "_build" / "screenshots")
    parser.add_argument("--pages", nargs="*", help="docnames to check (default: every page)")
    args = parser.parse_args()

    chromium = find_chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sys.exit(
            "browser-test: Playwright is not installed. `make browser-test` installs it "
            "(pip install -e '.[browser]'); or run `python -m pip install playwright`."
        )
    if not (args.html / "index.html").is_file():
        sys.exit(f"browser-test: no book in {args.html}. Build it first: `make book`.")

    everything = toc_pages(ROOT / "_toc.yml")
    pages = args.pages or everything
    start = time.perf_counter()
    server, base = serve(args.html)
    problems: list[str] = []
    external: set[str] = set()
    try:
        with sync_playwright() as playwright:
            # launch() gives the browser a fresh temporary profile (--user-data-dir) each run.
            browser = playwright.chromium.launch(
                executable_path=chromium, headless=True, args=CHROMIUM_ARGS
            )
            for viewport, (width, height) in VIEWPORTS.items():
                phone = viewport == "phone"
                context = browser.new_context(
                    viewport={"width": width, "height": height},
                    is_mobile=phone,
                    has_touch=phone,
                    device_scale_factor=1,
                )
                for name in pages:
                    page = context.new_page()
                    page.set_default_timeout(120000)  # a busy machine renders long pages slowly
                    check = Check(page, base, name, viewport, args.screenshots)
                    page.on("pageerror", check.on_page_error)
                    page.on("console", check.on_console)
                    page.on("requestfailed", check.on_request_failed)
                    page.on("response", check.on_response)
                    following = everything[(everything.index(name) + 1) % len(everything)]
                    try:
                        check.run(following)
                    except Exception as error:  # report it with the page's name, keep going
                        check.fail(f"{type(error).__name__}: {error}".splitlines()[0])
                    problems += check.problems
                    external.update(check.external)
                    verdict = "FAILED" if check.problems else "ok"
                    line = f"{viewport:8} {name:32} {verdict}"
                    print(line, *check.problems, sep="\n  ", flush=True)
                    page.close()
                context.close()
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
    seconds = time.perf_counter() - start
    print(
        f"\n{len(pages)} pages x {len(VIEWPORTS)} sizes in {seconds:.0f} s; screenshots in "
        f"{args.screenshots}"
    )
    if external:
        print("Not checked (on other hosts, refused offline):", *sorted(external), sep="\n  ")
    if problems:
        print(f"\n{len(problems)} problem(s):", *problems, sep="\n  ")
        return 1
    print("No problems found.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
