# teminal — two commands on a fresh machine:
#   make run    the whole notebook pipeline on the embedded default (offline, CPU, ~11 min)
#   make test   all tests: unit, reference, papermill pipeline, nbval notebooks, browser
# Each target creates and fills .venv first if it is absent.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PARAMS ?= params/default.yaml
NBVAL  := --nbval --nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg
ROOT_OK := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: install browser run test test-fast notebooks lab mlflow bench profile

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	@touch $@

install: $(VENV)/.installed

# Debian chromium + playwright for tests/test_browser.py (apt-get: root or sudo); idempotent
browser: install
	bash .ci/install_browser.sh $(VENV)

run: install
	$(PY) -m teminal run $(PARAMS)

# TEMINAL_REQUIRE_BROWSER: the browser test fails (not skips) when it cannot run
test: install browser
	TEMINAL_REQUIRE_BROWSER=1 $(PY) -m pytest tests notebooks $(NBVAL) -p no:cacheprovider

test-fast: install
	$(PY) -m pytest tests -m "not slow" -p no:cacheprovider

# re-execute the committed notebooks on their smoke defaults, under the deterministic CPU mode
# (teminal/determinism.py, as nbval runs them), and store the outputs nbval checks
notebooks: install
	$(PY) -m teminal.notebook_tools refresh notebooks/*.ipynb

# JupyterLab on working copies in lab/ (ignored by git; made once, then yours): running or
# saving a notebook there never touches the committed notebooks/ (nbval's reference outputs)
lab: install
	$(PY) -m teminal.notebook_tools lab lab
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=$(CURDIR) --LabApp.default_url=/lab/tree/lab $(ROOT_OK)

mlflow: install
	$(VENV)/bin/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlruns/mlflow.db

bench: install
	$(PY) benchmarks/trunk_cache.py
	$(PY) benchmarks/profile_run.py

profile: install
	$(PY) benchmarks/profile_run.py --params $(PARAMS)
