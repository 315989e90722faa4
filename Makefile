# Two commands on a fresh machine (see README):  `make repro`  and  `make test`.
# Both install what they need (Debian packages for the embedded game, a .venv through the
# constraints file) and skip what is already there.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --progress-bar off -c constraints.txt
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
# Minetest engine + game + mob API, a virtual X server and Mesa's software OpenGL (llvmpipe).
APT_PKGS := minetest minetest-data minetest-mod-mobs-redo xvfb libgl1-mesa-dri
# The test suite also opens the report site in a headless browser (tests/test_site.py).
TEST_APT_PKGS := chromium
PYTEST_ARGS ?= --durations=15
# stages at once in `make repro` (independent stages side by side, see jvla/repro.py; JOBS=1: `dvc repro`)
JOBS ?= 2
export OMP_NUM_THREADS ?= 1
export DVC_NO_ANALYTICS := 1
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: repro report pipeline test test-minestudio setup apt apt-test venv minestudio lint clean

## repro: set up, then run the whole pipeline on the embedded default (Minetest, tiny models)
repro: setup
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m jvla.pipeline --check
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(if $(filter 1,$(JOBS)),$(VENV)/bin/dvc repro,$(PY) -m jvla.repro --jobs $(JOBS))
	$(PY) -m jvla.report.readme

## report: rebuild the report site results/site/ from the results (the pipeline's last stage alone)
report: venv
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m jvla.pipeline --check
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/dvc repro --single-item report

## pipeline: regenerate pipeline.yaml and dvc.yaml after editing `variants`, the stage table or imports
pipeline: venv
	$(PY) -m jvla.pipeline

## test: set up, then run the test suite
test: setup apt-test
	$(PY) -m pytest $(PYTEST_ARGS)

setup: apt venv

# $(call apt_install,packages): install the Debian packages that are missing
define apt_install
missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
if [ -n "$$missing" ]; then \
  echo "apt: installing$$missing"; \
  $(SUDO) apt-get update -q && \
  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
else echo "apt: all packages present"; fi
endef

apt:
	@$(call apt_install,$(APT_PKGS))

apt-test:
	@$(call apt_install,$(TEST_APT_PKGS))

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) -e '.[dev,ray]'
	touch $@

## minestudio: the paper-scale backend (real Minecraft); see README "Paper scale"
minestudio: venv
	bash scripts/install_minestudio.sh $(VENV)

## test-minestudio: MineStudio's own classes vs our translation, in a separate venv (CI runs it)
MS_VENV ?= .venv-minestudio
test-minestudio:
	$(MAKE) minestudio VENV=$(MS_VENV)
	$(MS_VENV)/bin/python -m pytest -q -m minestudio tests/test_minestudio_sim.py

lint:
	$(VENV)/bin/ruff check jvla tests benchmarks
	$(VENV)/bin/ruff format --check jvla tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache
