#!/usr/bin/env bash
# Sets up a fresh machine and runs the example job in sandboxes (the README's main command).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
python3 examples/quickstart.py
