# The two quick-start commands. Each installs what it needs into .venv on first use.
.PHONY: demo test lint bench

demo:
	@scripts/bootstrap.sh
	.venv/bin/ftharness compare

test:
	@scripts/bootstrap.sh --test
	.venv/bin/python -m pytest

lint:
	@scripts/bootstrap.sh --test
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
