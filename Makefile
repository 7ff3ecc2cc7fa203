# Two commands for a newcomer: `make demo` and `make test`. Everything else is detail.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: demo test lint typecheck check install clean bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## Run the sample job against the embedded Bambora sandbox, then show the report.
demo: $(STAMP)
	rm -f payments.report.csv
	$(BIN)/cancel-worker run samples/payments.csv --sandbox --report payments.report.csv; \
	  code=$$?; echo; echo "exit code: $$code (1 = some references did not end canceled; see the report)"; \
	  echo; if command -v column >/dev/null; then column -s, -t < payments.report.csv | cut -c1-160; \
	  else cat payments.report.csv; fi; \
	  echo; echo "outcomes:"; $(BIN)/python -c "import csv, collections; \
	  print(dict(collections.Counter(r['outcome'] for r in csv.DictReader(open('payments.report.csv')))))"; \
	  echo "exit code: $$code (1 = some references did not end canceled; see the report)"

## The whole test suite, plus lint and type checks (what CI runs).
test: $(STAMP)
	$(BIN)/ruff check worker tests benchmarks scripts
	VENV=$(VENV) bash scripts/check-deploy.sh
	$(BIN)/ruff format --check worker tests benchmarks scripts
	$(BIN)/mypy
	$(BIN)/pytest -q

## The benchmarks (benchmarks/README.md); the bench extra adds the chart and py-spy.
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
