# Two commands for a newcomer: `make demo` and `make test`. Everything else is detail.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: demo test lint typecheck check install clean bench sim constraints

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## Run the sample job against the embedded Bambora sandbox, then show the report.
## The sample is built to end with exit 1 (three invalid rows need a person); the
## demo says what the code it got means (worker/exits.py) and itself succeeds.
demo: $(STAMP)
	@rm -f payments.report.csv payments.report.csv.runs.jsonl payments.report.csv.html
	@$(BIN)/cancel-worker run samples/payments.csv --sandbox --report payments.report.csv; \
	  code=$$?; echo; $(BIN)/python scripts/demo_table.py payments.report.csv $$code; \
	  echo "(the sample holds three invalid rows on purpose; its not_cancelable and"; \
	  echo " not_found rows are follow-ups, which alone end with 0)"; \
	  echo "report card (one HTML page of the night):"; \
	  echo "  $(CURDIR)/payments.report.csv.html"

## The whole test suite, plus lint, type checks and the docs site in strict mode (what CI runs).
test: $(STAMP)
	$(BIN)/ruff check worker tests benchmarks scripts
	VENV=$(VENV) bash scripts/check-deploy.sh
	$(BIN)/ruff format --check worker tests benchmarks scripts
	$(BIN)/mypy
	$(BIN)/mkdocs build --strict --quiet
	$(BIN)/pytest -q

## The benchmarks (benchmarks/README.md); the bench extra adds the chart and py-spy.
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python benchmarks/run.py

## The deterministic simulator on more seeds than CI runs: `make sim SEEDS=100000`.
## Prints histories/s, seeds explored and violations found (tests/sim, README).
SEEDS ?= 10000
sim: $(STAMP)
	PYTHONPATH=. $(BIN)/python -m tests.sim --seeds $(SEEDS)

## Pin the image's dependencies (constraints.txt) to what .venv runs: after an upgrade.
constraints: $(STAMP)
	$(BIN)/python scripts/pin-constraints.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
