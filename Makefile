# The README's two commands, `make demo` and `make test`, each set up their
# own environment: a virtual environment (default .venv, or BEVT_VENV / VENV)
# that is created when missing and updated when a requirements file changes.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= $(or $(BEVT_VENV),.venv)
BIN := $(VENV)/bin
STAMP := $(VENV)/.bevt-installed
INSTALL_INPUTS := requirements.txt $(wildcard requirements/*.txt) setup.py \
	pyproject.toml bevt-startup.pth
LINT_PATHS := bevt tools tests configs projects setup.py

.PHONY: demo test lint pytest dev install clean check-space

# Create or update the environment; bevt is installed editable (so code
# changes need no reinstall) with its `.mim` symlinks and start-up hook.
$(STAMP): $(INSTALL_INPUTS)
	@test -x $(BIN)/python || $(MAKE) --no-print-directory check-space
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -r requirements/build.txt
	$(BIN)/python -m pip install -q -r requirements/runtime.txt \
		-r requirements/tests.txt
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	@touch $@

dev: $(STAMP)

# A new environment takes about 6.2 GB (pip's torch 2.14.1 is a CUDA build);
# refuse early, with the numbers, rather than fail half-way in pip.
VENV_MIN_FREE_MB ?= 6656
check-space:
	@parent=$$(dirname "$(abspath $(VENV))"); \
	while [ ! -d "$$parent" ]; do parent=$$(dirname "$$parent"); done; \
	free=$$(df -Pm "$$parent" | awk 'NR == 2 {print $$4}'); \
	if [ "$$free" -lt $(VENV_MIN_FREE_MB) ]; then \
		echo "error: creating the environment $(VENV) needs about" \
			"$(VENV_MIN_FREE_MB) MB free, $$parent has $$free MB;" \
			"free some space or set BEVT_VENV to a folder on another" \
			"disk (VENV_MIN_FREE_MB=0 skips this check)" >&2; \
		exit 1; \
	fi

demo: $(STAMP)
	$(BIN)/python tools/demo.py

lint: $(STAMP)
	$(BIN)/flake8 $(LINT_PATHS)
	$(BIN)/isort --check-only --diff $(LINT_PATHS)
	$(BIN)/yapf --diff --recursive $(LINT_PATHS)

# The suite in PYTEST_WORKERS processes (pytest-xdist; 0 runs it in this one).
PYTEST_WORKERS ?= 2
pytest: $(STAMP)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) tests

test: lint pytest

# A regular (non-editable) install into the current Python environment.
install:
	$(PYTHON) -m pip install .

clean:
	rm -rf build dist *.egg-info bevt/.mim work_dirs
