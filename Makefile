# Set-up on a fresh Debian machine with Python >= 3.10: `make demo` trains the flagship spec on
# bundled data; `make test` runs the test suite. Both create .venv and install what they need.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test deps dot cxx chromium clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.deps: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e '.[test]'
	# PyTorch is the test oracle and the benchmark reference (CPU build, pinned); not a run-time dependency
	$(BIN)/python -m pip install -q 'torch==2.13.0' 'pytorch-crf==0.7.2' || echo "torch not installed: live PyTorch comparisons will be skipped"
	touch $@

dot:
	@command -v dot >/dev/null || (apt-get update -qq && apt-get install -y -qq graphviz >/dev/null) || echo "could not install graphviz; pictures fall back to DOT files"

# headless Chromium: tests/test_report.py opens report.html in it (tests/browser.py)
chromium:
	@command -v chromium-headless-shell >/dev/null || command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium-headless-shell >/dev/null) || echo "could not install chromium-headless-shell; the browser test of the report will be skipped"

# a C++ compiler: tests/test_fused_gpu.py compiles the GPU kernels' bodies to test them on the host
cxx:
	@command -v c++ >/dev/null || (apt-get update -qq && apt-get install -y -qq g++ >/dev/null) || echo "could not install g++"

deps: $(VENV)/.deps dot cxx chromium

demo: deps
	$(BIN)/rnndsl run specs/pos_tagger.rnn --epochs 6

test: deps
	$(BIN)/python -m pytest -q -n 2 tests

clean:
	rm -rf $(VENV) runs
