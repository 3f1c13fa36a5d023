"""The purge job: applies the retention settings to the webhook delivery log, the API
audit table and the intake's replay guard, once at start and then every interval.
(The AMI event log has its own, in ami/eventlog.py.)

On PostgreSQL several nodes share the tables: the purge runs under the "retention" job
lease (store/job_leases.py), on one node at a time and once per interval for the cluster.
Every node looks every `check_s` whether the job is due and free, so a dead holder's
purge is taken over once its lease has expired."""

from __future__ import annotations

import logging
from datetime import timedelta

from televox_pbx.clock import Clock
from televox_pbx.config.settings import Settings
from televox_pbx.store.db import Store
from televox_pbx.store.job_leases import JobLease, run_held
from televox_pbx.store.retention import purge_audit, purge_deliveries, purge_intake_seen

log = logging.getLogger(__name__)

INTERVAL_S = 3600.0
INTAKE_KEEP_S = 7200.0  # twice the largest intake.max_age_s
CHECK_S = 30.0  # on PostgreSQL: how often a node looks whether the purge is due and free
JOB = "retention"


class RetentionJob:
    def __init__(self, store: Store, settings: Settings, clock: Clock,
                 interval_s: float = INTERVAL_S, check_s: float = CHECK_S) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock
        self.interval_s = interval_s
        self.check_s = check_s
        self.lease = JobLease(store, JOB)
        self.runs = 0

    async def run(self) -> None:
        while True:
            await self.run_if_due()
            await self._clock.sleep(self.interval_s if self.lease.trivial else self.check_s)

    async def run_if_due(self) -> dict[str, int] | None:
        """One purge if this node takes the job (always, on one box); None otherwise."""
        try:
            return await run_held(self.lease, self._clock, self.step,
                                  interval_s=self.interval_s)
        except Exception:
            log.exception("retention purge failed; will retry")
            return None

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
