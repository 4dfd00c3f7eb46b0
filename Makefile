# Every target does its own set-up: it creates .venv when missing and (re)installs vssm with its extras when
# pyproject.toml or this Makefile changed. mmcv 2.1.0 comes from tools/install_mmcv.py (cached wheel or a C++20 source build).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.vssm-installed
TORCH_PIN := torch==2.14.1 torchvision==0.29.1
EXTRAS ?= mm,nnunet,plot,export,dev
PYTEST_ARGS ?=
REPORT_DIR ?= runs/report

.PHONY: setup test report refresh lint clean-venv

$(PY):
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; vssm supports Python 3.10-3.12 (CI: 3.11). Set PYTHON=/path/to/python3.11" >&2; exit 1; }
	@$(PYTHON) tools/check_python.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml Makefile tools/install_mmcv.py | $(PY)
	$(PY) -m pip install --quiet $(TORCH_PIN) "setuptools>=77,<81"
	$(PY) tools/install_mmcv.py
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	@touch $(STAMP)

setup: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

# The main job writes into $(REPORT_DIR) (git-ignored): targets.*, zoo.* and model_cards/ with refreshed tables.
report: $(STAMP)
	$(PY) benchmarks/targets.py --output $(REPORT_DIR)
	$(PY) tools/report.py --output $(REPORT_DIR) --targets $(REPORT_DIR)/targets.csv

# The same, written over the committed results: benchmarks/targets.*, reports/ and the cards' generated tables.
refresh: $(STAMP)
	$(PY) benchmarks/targets.py --update-repo
	$(PY) tools/report.py --update-repo

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean-venv:
	rm -rf $(VENV)
