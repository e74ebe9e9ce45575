#!/usr/bin/env bash
# Sets up a fresh machine (scripts/setup.sh) and runs every check: format, lint, types, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== ruff format --check"; ruff format --check .
echo "== ruff check";          ruff check .
echo "== mypy --strict";       mypy sandbox
echo "== pytest";              python3 -m pytest -q -p no:cacheprovider "$@"
