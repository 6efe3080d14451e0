# kdh_ai: two commands do all set-up on a fresh machine with Python 3.11 and make:
#   make demo   creates .venv (pinned), runs the demo job on bundled sample audio
#   make test   same install, then the whole test suite
# Label Studio runs from its own virtual environment (.venv-ls): it pins Django and much else.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
LS_VENV := .venv-ls
LS_VERSION := 1.23.2
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip --disable-pip-version-check
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
# OpenAI Whisper (the second engine) without its triton requirement (1 GB, GPU only): its runtime
# dependencies are pinned in pyproject.toml, the package itself goes in with --no-deps.
OPENAI_WHISPER := openai-whisper==20250625

.PHONY: install system-deps bench-deps demo test lab bench clean help

help:
	@echo "make demo    set up everything and run the demo job on the bundled sample audio"
	@echo "make test    set up everything and run the whole test suite"
	@echo "make lab     open the trainee notebooks in JupyterLab"
	@echo "make bench   run the speed benchmarks (minutes)"

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "kdh_ai needs Python 3.11 (found %d.%d); set PYTHON=/path/to/python3.11" % sys.version_info[:2])'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade "pip>=24"
	$(PIP) install -q -e ".[dev]"
	$(PIP) install -q --no-deps "$(OPENAI_WHISPER)"
	$(PY) -m ipykernel install --sys-prefix --name kdh-ai --display-name "kdh_ai (.venv)" >/dev/null
	touch $@

$(LS_VENV)/.installed:
	$(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/pip --disable-pip-version-check install -q --upgrade "pip>=24"
	$(LS_VENV)/bin/pip --disable-pip-version-check install -q "label-studio==$(LS_VERSION)"
	touch $@

install: $(VENV)/.installed $(LS_VENV)/.installed

# Headless Chromium renders the client report in the tests, PostgreSQL backs the hub server's tests (Debian's
# packages; needs root, as on CI).
system-deps:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing Chromium for the report test (apt-get)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "WARNING: Chromium is missing; the report test will fail: apt-get install chromium"; fi; }
	@# PostgreSQL for the hub server (one Label Studio per client; its tests start a private cluster)
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing PostgreSQL for the hub tests (apt-get)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	  else echo "WARNING: PostgreSQL is missing; the hub tests will fail: apt-get install postgresql"; fi; }
	@# strace traces the no-outbound-connection test (tests/test_offline.py; unshare is in util-linux).
	@command -v strace >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing strace for the offline test (apt-get)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq strace >/dev/null; \
	  else echo "WARNING: strace is missing; the offline test will fail: apt-get install strace"; fi; }

demo: install
	$(PY) -m pipelines.demo

test: install system-deps
	$(VENV)/bin/pytest -q

lab: install
	$(VENV)/bin/jupyter lab notebooks/

# Synthetic speech for the transcription and routing benchmarks (Debian's flite/festival voices and sox).
bench-deps:
	@command -v flite >/dev/null 2>&1 && command -v festival >/dev/null 2>&1 && command -v sox >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing flite, festival voices and sox for the benchmarks (apt-get)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq flite festival \
	      festvox-us-slt-hts festvox-kallpc16k festvox-kdlpc16k sox >/dev/null; \
	  else echo "WARNING: install flite festival festvox-us-slt-hts festvox-kallpc16k festvox-kdlpc16k sox"; fi; }

bench: install bench-deps
	$(PY) benchmarks/transcription_speed.py
	$(PY) benchmarks/routing.py
	$(PY) benchmarks/routing.py --prior-batches 1
	$(PY) benchmarks/routing.py --task classification
	$(PY) benchmarks/classification.py
	$(PY) benchmarks/quality_speed.py
	$(PY) benchmarks/labelstudio_bulk.py
	$(PY) benchmarks/long_recordings.py

clean:
	rm -rf $(VENV) $(LS_VENV) demo_out .pytest_cache
