"""scripts/browser_test.py without a browser: it covers every page and never skips silently.

`make browser-test` runs the real thing in Chromium; `make test` must not need a browser, so these
tests only check the script's own logic.
"""

import importlib.util
import os
import subprocess
import sys

from notebook_utils import ROOT, toc_files

SCRIPT = ROOT / "scripts" / "browser_test.py"


def load_script():
    spec = importlib.util.spec_from_file_location("browser_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_it_checks_every_page_of_the_toc():
    pages = load_script().toc_pages(ROOT / "_toc.yml")
    assert len(pages) == len(set(pages))
    assert sorted(pages) == sorted(toc_files())


def test_without_chromium_it_fails_and_says_how_to_get_one(tmp_path):
    env = dict(os.environ, CHROMIUM=str(tmp_path / "no-such-chromium"))
    result = subprocess.run(
        [sys.executable, "-W", "error", str(SCRIPT), "--html", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0, "no browser must be a failure, not a skip"
    assert "no Chromium at" in result.stderr and "apt-get install chromium" in result.stderr
