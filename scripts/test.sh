#!/usr/bin/env bash
# Install everything from nothing, then run the whole test suite: real-model tests,
# ruff and mypy --strict included (tests/test_code_quality.py). This is the README's
# test command and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
.venv/bin/pytest -q -p no:cacheprovider
