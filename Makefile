# Flowdesk: `make run` starts the console, `make test` runs the suite. Both bootstrap .venv on first use.

PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: run test bench bench-history clean install venv-missing

run: $(STAMP)
	exec $(VPY) -m app.launcher

test: $(STAMP)
	$(VPY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(VPY) bench/throughput.py

bench-history: $(STAMP)
	$(VPY) bench/history.py

install: $(STAMP)

venv-missing: ;

# Reinstall when pyproject.toml changes, or when the venv's python is missing or broken
# (the phony prerequisite forces the rule; --clear rebuilds a venv whose interpreter moved).
$(STAMP): pyproject.toml $(if $(wildcard $(VPY)),,venv-missing)
	@if [ ! -x $(VPY) ] || ! $(VPY) -c '' 2>/dev/null; then \
		echo "Creating $(VENV) with $(PYTHON)"; \
		$(PYTHON) -m venv --clear $(VENV); \
	fi
	@echo "Installing Flowdesk and its test dependencies into $(VENV)"
	$(VPY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $@

# Stops a leftover embedded redis-server under instance/ before deleting its files.
clean:
	@if [ -S instance/redis.sock ] && [ -x $(VPY) ]; then \
		$(VPY) -c "from app.embedded import stop_embedded_redis; stop_embedded_redis('instance')" || true; \
	fi
	rm -rf instance .pytest_cache .hypothesis build test-artifacts *.egg-info
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -exec rm -rf {} +
