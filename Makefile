# txmsg: the two commands a new user needs are `make demo` and `make test`.
VENV ?= .venv
PYTHON ?= python3
export VENV PYTHON

SOURCES := setup.cfg pyproject.toml requirements-dev.txt $(shell find txmsg twisted -name '*.py' 2>/dev/null)

.PHONY: help venv servers demo test unit unit-oldest integration lint typecheck bench clean

help:
	@echo "make demo   set everything up and run the demo"
	@echo "make test   set everything up and run every test (unit + integration)"
	@echo "make venv   create $(VENV) and install txmsg into it"
	@echo "make servers  make sure Redis and RabbitMQ run on 127.0.0.1"
	@echo "make unit / make integration   one suite only"
	@echo "make unit-oldest   the unit suite on the oldest Twisted setup.cfg allows (.venv-oldest)"
	@echo "make lint   ruff check, ruff format --check and mypy (make test runs it too)"
	@echo "make typecheck   mypy only"
	@echo "make bench  run the benchmarks"

$(VENV)/.installed: $(SOURCES)
	scripts/setup-venv.sh
	@touch $@

venv: $(VENV)/.installed

servers:
	scripts/ensure-servers.sh

demo: venv servers
	scripts/demo.sh

test: venv servers
	scripts/run-tests.sh

lint: venv
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# mypy with the mypy-zope plugin; configuration in pyproject.toml [tool.mypy]
typecheck: venv
	$(VENV)/bin/mypy

unit: venv
	$(VENV)/bin/trial txmsg

unit-oldest:
	scripts/setup-oldest-venv.sh
	.venv-oldest/bin/trial txmsg

integration: venv servers
	$(VENV)/bin/python -m twisted.trial tests

bench: venv servers
	$(VENV)/bin/python -m pip install --quiet -r requirements-bench.txt
	@for b in benchmarks/[!_]*.py; do echo "==> $$b"; $(VENV)/bin/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .venv-oldest build dist *.egg-info _trial_temp twisted/plugins/dropin.cache benchmarks/.build .mypy_cache
