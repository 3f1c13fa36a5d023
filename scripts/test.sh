#!/usr/bin/env bash
# Install everything from nothing, then lint, type-check and run the whole test suite
# (real-model tests included). This is the README's test command and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
.venv/bin/ruff check televox_pbx tests bench
.venv/bin/mypy
.venv/bin/pytest -q -p no:cacheprovider
