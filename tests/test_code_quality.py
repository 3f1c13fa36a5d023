"""ruff and mypy --strict over the package, as part of the test suite (issue: foundation)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          check=False)


def test_ruff_is_clean() -> None:
    done = _run(str(BIN / "ruff"), "check", "televox_pbx", "tests", "bench")
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_strict_is_clean() -> None:
    done = _run(str(BIN / "mypy"), "--strict", "televox_pbx")
    assert done.returncode == 0, done.stdout + done.stderr
