# txmsg: the two commands a new user needs are `make demo` and `make test`.
VENV ?= .venv
PYTHON ?= python3
export VENV PYTHON

SOURCES := setup.cfg pyproject.toml requirements-dev.txt $(shell find txmsg twisted -name '*.py' 2>/dev/null) $(wildcard txmsg/ops/dashboard/static/*)

.PHONY: help venv servers browser demo test test-browser screenshots unit unit-oldest integration lint typecheck bench clean test-cluster test-limits

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
	@echo "make test-browser   the dashboard's end-to-end test in chromium only"
	@echo "make screenshots   refresh docs/img/dashboard-*.png from that test"
	@echo "make test-limits   the limits proof with 1,000 tasks at 50/s on three workers (~40 s; docs/limits.md)"
	@echo "make test-cluster   the failover proofs: RabbitMQ cluster, worker on Redis Sentinel (~5 min; docs/scaling.md)"

$(VENV)/.installed: $(SOURCES)
	scripts/setup-venv.sh
	@touch $@

venv: $(VENV)/.installed

servers:
	scripts/ensure-servers.sh

# Debian's chromium + chromedriver for the dashboard's browser test
browser:
	scripts/ensure-browser.sh

demo: venv servers
	scripts/demo.sh

test: venv servers browser
	scripts/run-tests.sh

test-browser: venv servers browser
	$(VENV)/bin/python -m twisted.trial tests.test_dashboard_browser

screenshots: venv servers browser
	TXMSG_SCREENSHOTS=$(CURDIR)/docs/img $(VENV)/bin/python -m twisted.trial tests.test_dashboard_browser

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

integration: venv servers browser
	$(VENV)/bin/python -m twisted.trial tests

# Not part of `make test`: starts a private 3-node RabbitMQ cluster
# (scripts/rabbitmq-cluster.sh) and stops nodes under load, and a worker on
# Redis with Sentinel (scripts/redis-sentinel.sh) across a killed master; see docs/scaling.md.
test-cluster: venv servers
	$(VENV)/bin/python -m twisted.trial --temp-directory=_trial_temp_cluster tests_cluster

# `make test` runs the same test with 300 tasks; see docs/limits.md.
test-limits: venv servers
	TXMSG_LIMITS_TASKS=1000 $(VENV)/bin/python -m twisted.trial --temp-directory=_trial_temp_limits tests.test_worker_limits

bench: venv servers
	$(VENV)/bin/python -m pip install --quiet -r requirements-bench.txt
	@for b in benchmarks/[!_]*.py; do echo "==> $$b"; $(VENV)/bin/python $$b || exit 1; done
	$(VENV)/bin/python -m pip install --quiet --no-deps "arq >= 0.26"
	$(VENV)/bin/python benchmarks/worker.py --broker redis

clean:
	rm -rf $(VENV) .venv-oldest build dist *.egg-info _trial_temp twisted/plugins/dropin.cache benchmarks/.build .mypy_cache
