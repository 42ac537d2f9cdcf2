# Two commands for a newcomer: `make demo` and `make test`. Each creates .venv
# (with every extra) when it is missing.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
# Use a local copy of MovieLens-100K when there is one; otherwise the library
# downloads the official zip from GroupLens and verifies it on first use. An
# explicit TWO_STAGE_REC_DATA wins. The local copy is looked for in
# shared/data/ml-100k beside this checkout, then beside the repository it was
# cloned from when that is a local path: a fresh clone in a temporary
# directory (as CI makes) finds the same copy as the original checkout.
ORIGIN := $(filter /%,$(patsubst %/.git,%,$(patsubst file://%,%,$(shell git config --get remote.origin.url 2>/dev/null))))
DATA_CANDIDATES := $(abspath ../shared/data/ml-100k) $(if $(ORIGIN),$(abspath $(ORIGIN)/../shared/data/ml-100k))
LOCAL_DATA := $(firstword $(foreach dir,$(DATA_CANDIDATES),$(if $(wildcard $(dir)/u.data),$(dir))))
ifneq ($(LOCAL_DATA),)
export TWO_STAGE_REC_DATA ?= $(LOCAL_DATA)
endif
USER_ID ?= 55

.PHONY: demo test lint docs bench clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[all,dev,docs]"
	touch $@

demo: $(BIN)/.installed
	$(BIN)/two-stage-rec demo --user $(USER_ID)

# The test command (README, CI): lint and strict typing first, then every test.
test: lint
	$(BIN)/python -m pytest

lint: $(BIN)/.installed
	$(BIN)/ruff check src tests examples benchmarks
	$(BIN)/mypy

docs: $(BIN)/.installed
	$(BIN)/mkdocs build --strict

bench: $(BIN)/.installed
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) site .pytest_cache .mypy_cache
