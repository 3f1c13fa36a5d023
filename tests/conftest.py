"""Fixtures shared by many test modules."""

from __future__ import annotations

import pytest
from pg_support import (  # noqa: F401  (fixtures: SQLite, or both backends when marked)
    backend,
    parametrize_backends,
    pg_server,
    store,
    store_url,
)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrize_backends(metafunc)
