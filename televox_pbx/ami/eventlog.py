"""The AMI event log: every event, masked, to the store and a rotating JSON-lines file.

`record()` is a cheap synchronous subscriber for AmiClient; a flusher (`run()`) writes
batches so a busy Asterisk is not slowed down by one INSERT per event.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections import deque
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path

from televox_pbx.ami.client import looks_like_uuid
from televox_pbx.ami.codec import AmiMessage
from televox_pbx.clock import Clock, sleep_or_wake
from televox_pbx.config.settings import EventLogSettings
from televox_pbx.logs import mask_phone
from televox_pbx.store.db import Store
from televox_pbx.store.events import EventRow, insert_events, prune_events
from televox_pbx.store.timefmt import iso

log = logging.getLogger(__name__)

_ALWAYS_MASKED = frozenset({"secret", "password"})
_CALL_ID_KEYS = ("Uniqueid", "Linkedid", "DestUniqueid", "ActionID", "UUID", "CallId")
_PRUNE_EVERY_S = 3600.0
_DIAL_KEYS = frozenset({"dialstring", "channel", "destchannel"})
# The caller's number in our own dialplan's UserEvent (TelevoxInbound, asterisk/extensions.conf):
# masked whatever `mask_fields` says, like a secret.
_NUMBER_KEYS = frozenset({"callerid"})


def mask_value(value: str) -> str:
    """A phone-like value keeps enough to correlate; anything else with digits is hidden."""
    if not any(ch.isdigit() for ch in value):
        return value  # "s", "<unknown>", "amd": no number to protect
    masked = mask_phone(value)
    return masked if masked != value else "***"


def masked_fields(msg: AmiMessage, mask: Iterable[str]) -> dict[str, str | list[str]]:
    """Fields as a dict (repeated keys -> list) with secrets and numbers masked."""
    names = {m.lower() for m in mask}
    names |= {"dest" + m for m in names}  # DestCallerIDNum etc. on Dial* events
    is_contact_var = (msg.event == "VarSet"
                      and (msg.get("Variable") or "").startswith("TELEVOX_VAR_"))
    out: dict[str, str | list[str]] = {}
    for key, value in msg.fields:
        k = key.lower()
        if k in _ALWAYS_MASKED:
            value = "***"
        elif k in names or k in _NUMBER_KEYS or (is_contact_var and k == "value"):
            value = mask_value(value)
        elif k in _DIAL_KEYS:
            value = mask_phone(value)  # PJSIP/<number>@trunk on failed originates
        prev = out.get(key)
        if prev is None:
            out[key] = value
        elif isinstance(prev, list):
            prev.append(value)
        else:
            out[key] = [prev, value]
    return out


def event_call_id(msg: AmiMessage) -> str | None:
    """The attempt UUID an event belongs to, if any field carries one."""
    if msg.event == "VarSet" and msg.get("Variable") == "TELEVOX_CALL_ID":
        value = msg.get("Value")
        if looks_like_uuid(value):
            return (value or "").lower()
    for key in _CALL_ID_KEYS:
        value = msg.get(key)
        if looks_like_uuid(value):
            return (value or "").lower()
    return None


class RotatingJsonl:
    """Append-only JSON lines with size-based rotation (path, path.1 ... path.N)."""

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups

    def write(self, lines: list[str]) -> None:
        data = "".join(line + "\n" for line in lines).encode("utf-8")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            size = 0
        if size and size + len(data) > self.max_bytes:
            self._rotate()
        with self.path.open("ab") as f:
            f.write(data)

    def _rotate(self) -> None:
        if self.backups == 0:
            self.path.unlink(missing_ok=True)
            return
        for n in range(self.backups - 1, 0, -1):
            src = self._backup(n)
            if src.exists():
                os.replace(src, self._backup(n + 1))
        os.replace(self.path, self._backup(1))

    def _backup(self, n: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{n}")

    def prune(self, older_than: datetime) -> int:
        """Delete rotated files last written before `older_than`."""
        removed = 0
        cutoff = older_than.timestamp()
        for n in range(1, self.backups + 1):
            p = self._backup(n)
            with contextlib.suppress(FileNotFoundError):
                if p.stat().st_mtime < cutoff:
                    p.unlink()
                    removed += 1
        return removed


class EventLog:
    def __init__(self, store: Store | None, settings: EventLogSettings, clock: Clock, *,
                 flush_interval_s: float = 0.25, max_batch: int = 2000,
                 max_buffer: int = 200_000, jsonl: bool = True) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock
        self._mask = tuple(settings.mask_fields)
        self._interval = flush_interval_s
        self._max_batch = max_batch
        self._buf: deque[EventRow] = deque()
        self._max_buffer = max_buffer
        self._file = (RotatingJsonl(settings.jsonl_path, settings.max_bytes, settings.backups)
                      if jsonl else None)
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self.dropped = 0
        self.written = 0

    def record(self, msg: AmiMessage) -> None:
        """AmiClient subscriber: queue one event (never blocks, never raises on overflow)."""
        if msg.event is None:
            return
        if len(self._buf) >= self._max_buffer:
            self._buf.popleft()
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("AMI event log is behind; dropping oldest events",
                            extra={"dropped": self.dropped})
        self._buf.append(EventRow(received_at=self._clock.now(), event=msg.event,
                                  call_id=event_call_id(msg),
                                  fields=masked_fields(msg, self._mask)))
        if len(self._buf) >= self._max_batch:
            self._wake.set()

    @property
    def backlog(self) -> int:
        return len(self._buf)

    async def flush(self) -> int:
        """Write everything queued so far; returns how many events were written."""
        total = 0
        async with self._lock:
            while self._buf:
                n = min(len(self._buf), self._max_batch)
                batch = [self._buf.popleft() for _ in range(n)]
                if self._store is not None:
                    try:
                        await insert_events(self._store, batch)
                    except BaseException:
                        self._buf.extendleft(reversed(batch))  # keep them for the retry
                        raise
                if self._file is not None:
                    lines = [json.dumps({"received_at": iso(r.received_at), "event": r.event,
                                         "call_id": r.call_id, "fields": r.fields},
                                        ensure_ascii=False) for r in batch]
                    await asyncio.to_thread(self._file.write, lines)
                total += n
        self.written += total
        return total

    async def prune(self) -> int:
        """Apply retention_days to the table and the rotated files."""
        cutoff = self._clock.now() - timedelta(days=self._settings.retention_days)
        removed = 0
        if self._store is not None:
            removed += await prune_events(self._store, cutoff)
        if self._file is not None:
            removed += await asyncio.to_thread(self._file.prune, cutoff)
        return removed

    async def run(self) -> None:
        """Flush every interval (or when a batch fills) until cancelled; flush on the way out."""
        next_prune = self._clock.monotonic()
        try:
            while True:
                if self._clock.monotonic() >= next_prune:
                    try:
                        await self.prune()
                    except Exception:
                        log.exception("AMI event log retention failed")
                    next_prune = self._clock.monotonic() + _PRUNE_EVERY_S
                await sleep_or_wake(self._clock, self._interval, self._wake)
                self._wake.clear()
                try:
                    await self.flush()
                except Exception:
                    log.exception("AMI event log write failed; will retry")
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.flush())
