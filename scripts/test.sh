#!/bin/sh
# Installs everything meshlet needs, then runs the linters, the type checker and the tests.
set -eu
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
.venv/bin/ruff format --check src tests
.venv/bin/ruff check src tests
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
