# make demo   create .venv if absent, install the project, run the bundled demo
# make test   install the test tools, then ruff, mypy --strict and the whole test suite (what CI runs)
# make check  the same without the tests marked slow (container, kill and interrupt, soak-like): a quick pass
# make fuzz   the property tests (hypothesis) with random examples instead of the repeatable ones
# Needs Python 3.11+ (with its venv module) and make; PYTHON=python3.12 picks an interpreter.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
TEST_INSTALLED := $(VENV)/.installed-test
BENCH_SCRIPTS := $(wildcard bench/parse_page.py bench/engine.py)

.PHONY: demo test check fuzz lint bench soak clean distclean

demo: $(INSTALLED)
	$(BIN)/crawler demo

test: lint
	$(BIN)/pytest

check: lint
	$(BIN)/pytest -m "not slow"

# tests/conftest.py marks every test written with @given `property`, and reads the profile's name.
fuzz: $(TEST_INSTALLED)
	HYPOTHESIS_PROFILE=random $(BIN)/pytest -m property

# mypy reads its files from pyproject.toml: crawler, tests, examples and bench.
lint: $(TEST_INSTALLED)
	$(BIN)/ruff check crawler tests examples bench
	$(BIN)/ruff format --check crawler tests examples bench
	$(BIN)/mypy
	$(BIN)/hadolint Dockerfile

# Quick benchmarks; bench/memory.py (1,000,000 claims, needs nginx) is run by hand, see its docstring.
# parse_page.py reads ../shared/corpus beside the project: without it, it says so and skips (exit 0).
bench: $(TEST_INSTALLED)
	@for script in $(BENCH_SCRIPTS); do echo "== $$script"; $(BIN)/python $$script || exit 1; done

# Soak: 100,000 claims over 1,000 loopback hosts (nginx, installed with apt when missing); prints descriptors and memory.
soak: $(TEST_INSTALLED)
	$(BIN)/python bench/soak.py

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "Python 3.11 or later is needed: make PYTHON=python3.11 ..." >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamp files: reinstall when pyproject.toml changes, not on every run.
$(INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(TEST_INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@ $(INSTALLED)

clean:
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
	rm -f demo.sqlite demo.sqlite-wal demo.sqlite-shm
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
