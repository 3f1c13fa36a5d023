"""The purge job: applies the retention settings to the webhook delivery log, the API
audit table and the intake's replay guard, once at start and then every interval.
(The AMI event log has its own, in ami/eventlog.py.)"""

from __future__ import annotations

import logging
from datetime import timedelta

from televox_pbx.clock import Clock
from televox_pbx.config.settings import Settings
from televox_pbx.store.db import Store
from televox_pbx.store.retention import purge_audit, purge_deliveries, purge_intake_seen

log = logging.getLogger(__name__)

INTERVAL_S = 3600.0
INTAKE_KEEP_S = 7200.0  # twice the largest intake.max_age_s


class RetentionJob:
    def __init__(self, store: Store, settings: Settings, clock: Clock,
                 interval_s: float = INTERVAL_S) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock
        self.interval_s = interval_s
        self.runs = 0

    async def run(self) -> None:
        while True:
            try:
                await self.step()
            except Exception:
                log.exception("retention purge failed; will retry")
            await self._clock.sleep(self.interval_s)

    async def step(self) -> dict[str, int]:
        now = self._clock.now()
        s = self._settings
        out = {
            "webhook_deliveries": await purge_deliveries(
                self._store, now - timedelta(days=s.webhooks.log_retention_days)),
            "api_audit": await purge_audit(
                self._store, now - timedelta(days=s.http.audit_retention_days)),
            "intake_seen": await purge_intake_seen(
                self._store, now - timedelta(seconds=INTAKE_KEEP_S)),
        }
        self.runs += 1
        if any(out.values()):
            log.info("retention purge", extra=out)
        return out
