# The README's two commands: `make demo` (set up + main job) and `make test` (set up + whole test suite).
VENV ?= .venv
PY := $(VENV)/bin/python
# A local CPU build of PyTorch on the dev/CI machines; an unpinned torch would pull a multi-GB CUDA build.
TORCH ?= torch==2.13.0

.PHONY: install demo test test-all bench clean

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e ".[test,tb]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/slotattn demo $(ARGS)

test: install
	$(PY) -m pytest

test-all: install
	$(PY) -m pytest --runslow

clean:
	rm -rf $(VENV) .pytest_cache build dist src/*.egg-info
