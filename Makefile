# The README's commands. Each one creates the virtual environment .venv first if it is missing
# (or older than pyproject.toml), so a fresh clone needs nothing else.
#   make book       build the book into _build/html (the main job)
#   make test       run every test: the package, the notebooks under nbval, the book build
#   make notebooks  re-execute every notebook in place (the committed outputs come from this)
#   make lab        open the notebooks in JupyterLab
#   make browser-test  open every page of the book in Chromium, desktop and phone size (CHROMIUM=...)

PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(BIN):$(PATH)

.PHONY: book test notebooks lab benchmarks sync browser-test clean help

help:
	@sed -n '3,7p' Makefile

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[book,dev]'
	touch $(STAMP)

book: $(STAMP)
	$(BIN)/jupyter-book build . --all -W -n --keep-going
	@echo "Open _build/html/index.html"

# One worker process per core, at most 4 (pytest-xdist; a notebook kernel of chapter 8
# peaks at 3 GB); a notebook or test file stays in one worker, in order. `pytest` alone runs
# everything in one process (what a quick `pytest tests/test_x.py` does).
test: $(STAMP)
	$(BIN)/python -m pytest -n auto --maxprocesses 4 --dist loadfile --no-loadscope-reorder

notebooks: $(STAMP)
	$(BIN)/python scripts/run_notebooks.py $(NOTEBOOKS)

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks

benchmarks: $(STAMP)
	$(BIN)/python benchmarks/model_speed.py
	$(BIN)/python benchmarks/train_speed.py

# After editing layers.py, blocks.py, resnet.py or cifar.py: copy them into the notebooks'
# export cells (the package is the source of truth; `make test` fails until they agree).
sync: $(STAMP)
	$(BIN)/python scripts/sync_exports.py --write

# The browser test drives an installed Chromium (Playwright cannot download one offline):
# Debian/Ubuntu `apt-get install chromium`, or CHROMIUM=/path/to/chrome. It builds the book first
# when a source is newer than the build, and saves screenshots under _build/screenshots/.
CHROMIUM ?= /usr/bin/chromium
BOOK_SOURCES := _config.yml _toc.yml $(wildcard book/*.* book/_ext/*.py notebooks/*.ipynb _static/*)

$(BIN)/playwright: $(STAMP)
	$(BIN)/python -m pip install -e '.[book,dev,browser]'
	touch $@

# A stamp, not index.html: jupyter-book writes index.html (a redirect) only once, so its date
# would stay older than any edited source and every run would rebuild the book.
_build/html/.browser-test-book: $(BOOK_SOURCES) $(STAMP)
	$(BIN)/jupyter-book build . --all -W -n --keep-going
	touch $@

browser-test:
	@test -x "$(CHROMIUM)" || { echo "browser-test: no Chromium at $(CHROMIUM). Install one \
	(Debian/Ubuntu: sudo apt-get install chromium) or run make browser-test CHROMIUM=/path/to/chrome." >&2; \
	exit 1; }
	$(MAKE) $(BIN)/playwright _build/html/.browser-test-book
	CHROMIUM="$(CHROMIUM)" $(BIN)/python scripts/browser_test.py

clean:
	rm -rf _build .pytest_cache
