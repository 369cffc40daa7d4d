# Every target creates its own virtual environment on first use, so a fresh clone needs only
# Python 3.11 and pip. The constraints file keeps PyTorch on the local CPU build.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint browser postgres bench notebooks clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@# cnnlab's native kernels, compiled for this processor into ~/.cache/cnnlab (about a second;
	@# without a compiler, training uses PyTorch's operators and the first run says nothing).
	-@$(BIN)/python -m cnnlab.kernels >/dev/null
	touch $(STAMP)

# An editable install leaves cnnlab's own modules uncompiled, and where Python may not write
# bytecode (PYTHONDONTWRITEBYTECODE, common in containers and CI) every command compiles them
# again: 0.15-0.2 s of each start, measured. compileall writes them regardless, and only what
# changed since (nearly free when nothing did).
BYTECODE := $(BIN)/python -m compileall -q src

demo: $(STAMP)
	@$(BYTECODE)
	$(BIN)/cnnlab train

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples

test: lint browser postgres
	@$(BYTECODE)
	$(BIN)/python -m pytest

# The report is tested in a real browser: Debian's Chromium, installed when root can install it.
# Without it the browser test is skipped and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "chromium is not installed: the report's browser test will be skipped"

# The sweep's shared-storage test starts a real PostgreSQL server of its own (initdb and pg_ctl
# into a temporary folder, on a free port of 127.0.0.1): Debian's server, installed when root
# can install it. Without it that test is skipped and says why.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null 2>&1; } || \
	  echo "PostgreSQL is not installed: the sweep's PostgreSQL test will be skipped"

bench: $(STAMP)
	@$(BYTECODE)
	$(BIN)/python bench/run.py

# Every notebook in examples/, executed with its full settings and rendered with its outputs to
# build/notebooks/*.html for reading (the committed notebooks stay without outputs). FAST=1 uses
# the quick settings of the test suite instead. Each runs in a scratch folder, so the data and
# models it writes stay out of the repository.
NOTEBOOKS := $(wildcard examples/*.ipynb)
notebooks: $(STAMP)
	@mkdir -p build/notebooks
	@for nb in $(NOTEBOOKS); do \
	  name=$$(basename $$nb .ipynb); work=build/notebooks/$$name.work; \
	  rm -rf $$work && mkdir -p $$work && cp $$nb $$work/ && \
	  ( cd $$work && CNNLAB_EXAMPLES_FAST=$(if $(FAST),1,0) ../../../$(BIN)/jupyter nbconvert \
	      --to html --execute --ExecutePreprocessor.timeout=3600 \
	      --ExecutePreprocessor.kernel_name=python3 --output-dir .. $$name.ipynb ) || exit 1; \
	  rm -rf $$work; \
	done
	@echo "rendered: build/notebooks/*.html"

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache
