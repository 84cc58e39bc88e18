# Two entry points, each self-contained on a fresh machine:
#   make demo   - virtual environment + pseudo3d, then `pseudo3d demo`
#   make test   - virtual environment + pseudo3d[dev], then the linter (ruff), and the type checker (mypy) beside the tests
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt

.PHONY: demo test bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip

$(VENV)/.installed-run: pyproject.toml constraints.txt | $(PY)
	$(PIP) -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml constraints.txt | $(PY)
	$(PIP) -e ".[dev]"
	touch $@

demo: $(VENV)/.installed-run
	$(VENV)/bin/pseudo3d demo

# mypy runs beside the tests (its log is printed after them); either failing fails the target.
test: $(VENV)/.installed-dev
	./scripts/ensure-test-browser.sh
	$(PY) -m ruff check src tests bench
	@$(PY) -m mypy > $(VENV)/mypy.log 2>&1 & mypy=$$!; \
	$(PY) -m pytest -q; tests=$$?; \
	wait $$mypy; types=$$?; echo "mypy:"; cat $(VENV)/mypy.log; \
	test $$tests -eq 0 && test $$types -eq 0

bench: $(VENV)/.installed-dev
	$(PY) bench/bench_build.py

clean:
	rm -rf $(VENV) pseudo3d-demo .pytest_cache
