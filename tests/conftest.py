"""Fixtures shared by many test modules."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pg_support import pg_server  # noqa: F401  (one throw-away PostgreSQL per session)

from televox_pbx.store import Store


@pytest.fixture
async def store() -> AsyncIterator[Store]:
    """A migrated in-memory store, closed after the test."""
    s = await Store.open(":memory:")
    yield s
    await s.close()
