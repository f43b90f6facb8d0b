# The two commands of the README: `make start` (set up, then open the chat on the shipped defaults)
# and `make test` (set up, then run the test suite). Both are safe to repeat.
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup start test lint
setup:
	@scripts/setup.sh

start: setup
	@$(BIN)/inspector chat

test: setup
	@$(BIN)/python -m ruff check .
	@$(BIN)/python -m pytest -q

lint: setup
	@$(BIN)/python -m ruff check .
