# stargazer: every target bootstraps what it needs itself (venv, pip, apt packages when root).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: all venv system-deps test test-rehearsal test-fast demo demo-stop rehearsal rehearsal-down bench docs serve serve-stop lint clean

all: test

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	@touch $(STAMP)

venv: $(STAMP)

system-deps:
	@bash scripts/install_system_deps.sh

## test: the whole suite (unit + integration with real RabbitMQ, nginx, gunicorn, Ray, git, ansible, chromium),
## ending with one `make rehearsal` run (six namespace hosts) that the fleet tests read before it is torn down
test: system-deps venv
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

## test-rehearsal: only the tests of the rehearsed fleet (one `make rehearsal` run, kept up while they read it)
test-rehearsal: system-deps venv
	$(PY) -m pytest -m rehearsal

## test-fast: unit tests only (no services started)
test-fast: venv
	$(PY) -m pytest -m "not integration"

## demo: the operator's path on this machine: ansible-playbook site.yml (inventory/demo.yml, every tier here),
## then collect from the GitHub simulator, Ray Tune on the Ray head, deploy by git push, serve; logs in var/demo/
demo: system-deps venv
	@$(PY) -m scripts.demo run

## demo-stop: stop everything the demo started (its supervisord: simulator, Ray head, serving stack)
demo-stop: venv
	@$(PY) -m scripts.demo stop

## rehearsal: the whole fleet on this machine (6 namespace hosts with sshd): site.yml twice, collect, Ray Tune
## on 3 nodes, deploy by git push, predictions over HTTPS, status.yml, fault drills; then torn down.
## REHEARSAL_KEEP=1 leaves the fleet up (inventory var/rehearsal/hosts.yml). Stage times: var/rehearsal/timings.json
rehearsal: system-deps venv
	$(PY) -m rehearsal all

## rehearsal-down: remove every namespace, process, account and file the rehearsal made
rehearsal-down: venv
	$(PY) -m rehearsal down

## bench: benchmarks, results to bench/results/ (then the docs' figures are rewritten from them)
bench: system-deps venv
	@bash scripts/bench.sh

## docs: rewrite the figures README.md and docs/*.md quote from bench/results/ (docs/benchmarks.md), and
## README's configuration table from the settings classes
docs: venv
	$(PY) -m bench.doc_numbers
	$(PY) -m scripts.settings_table

## serve / serve-stop: the demo's fleet through Ansible, serving what was deployed (else the newest trained model)
serve: system-deps venv
	@$(PY) -m scripts.demo serve

serve-stop: venv
	@$(PY) -m scripts.demo stop

lint: venv
	$(VENV)/bin/ruff check .
	cd playbooks && ../$(VENV)/bin/ansible-lint

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
