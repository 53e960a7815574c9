# The task runner is the CI contract: the README names `make demo` and `make test`,
# and .ci/run calls `make test`.
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: help install demo test lint typecheck unit integration up down status

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-13s %s\n", $$1, $$2}'

install: ## install everything bethos needs (idempotent, cached)
	@bash scripts/install.sh

demo: install ## run the whole pipeline end to end on local defaults
	@$(BIN)/bethos demo

# Five processes share the tests (pytest-xdist): the integration tests mostly wait on the
# stack, so more of them at once than cores. They share one stack; a server a module starts for
# itself is one module's at a time (tests/stack_lock.py). The tests' own scheduler
# (tests/lanes.py) hands out one queue, the tests of each Flink cluster of the tests' own to one
# process.
XDIST := -n 5

test: install lint typecheck ## the whole test suite: lint, types, unit and integration tests
	@$(BIN)/pytest -ra $(XDIST) $(PYTEST_ARGS)

lint: ## ruff
	@$(BIN)/ruff check . && $(BIN)/ruff format --check .

typecheck: ## mypy
	@$(BIN)/mypy

unit: ## unit and property tests only (no servers)
	@$(BIN)/pytest -ra $(XDIST) -m "not integration" $(PYTEST_ARGS)

integration: ## integration tests against the real servers
	@$(BIN)/pytest -ra $(XDIST) -m integration $(PYTEST_ARGS)

up: install ## start the local stack
	@$(BIN)/bethos up

down: ## stop the local stack
	@$(BIN)/bethos down

status: ## show the local stack and its jobs
	@$(BIN)/bethos status
