"""The store's one timestamp format: ISO-8601 UTC text that sorts as time does."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(at: datetime) -> str:
    """'2026-01-05T15:00:00.000Z' (as the schema's defaults); fixed width, so text order is
    time order."""
    u = at.astimezone(UTC)
    return u.strftime("%Y-%m-%dT%H:%M:%S.") + f"{u.microsecond // 1000:03d}Z"


def parse_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
