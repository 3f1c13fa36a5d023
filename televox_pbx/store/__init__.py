"""The store: aiosqlite in WAL mode, versioned migrations. All SQL lives in this package."""

from televox_pbx.store.db import Store, StoreError

__all__ = ["Store", "StoreError"]
