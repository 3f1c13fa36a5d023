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


def test_no_fakes_in_the_product_package() -> None:
    # Fakes live with the tests; the product package holds only what a user runs.
    package = Path(__file__).resolve().parents[1] / "televox_pbx"
    fakes = [p.relative_to(package) for p in package.rglob("*.py") if "fake" in p.stem]
    assert fakes == []
