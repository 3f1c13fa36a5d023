"""The dialer wired to a PBX over AMI, with a call tracker turning events into outcomes.

The daemon (app.py) adds the voice side; this runner is enough to dial campaigns against
Asterisk or the simulator, and `python -m televox_pbx.campaigns.runner` runs it alone
(used by the crash-safety test, which SIGKILLs it mid-campaign and starts it again).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import logging
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

from televox_pbx.ami.client import AmiClient, AmiNotConnected, OriginateUnknown
from televox_pbx.ami.codec import AmiMessage
from televox_pbx.ami.tracker import CallTracker
from televox_pbx.campaigns.dialer import Dialer
from televox_pbx.campaigns.recovery import ReconcileReport
from televox_pbx.clock import Clock, SystemClock
from televox_pbx.config.settings import AmiSettings
from televox_pbx.domain import CallOutcome, Disposition, OriginateRequest
from televox_pbx.store import Store
from televox_pbx.store.attempts import in_flight, unfinished_attempts
from televox_pbx.store.campaigns import campaigns_in_states

log = logging.getLogger(__name__)

# What the voice side learned about a finished call: (turns, disposition). It may be a
# coroutine: the voice session often finishes saving just after the Hangup event.
SessionResult = tuple[int | None, Disposition | None]
SessionResults = Callable[[OriginateRequest, CallOutcome],
                          SessionResult | Awaitable[SessionResult]]


class CampaignRunner:
    """Originator for the dialer (registers each attempt with the tracker first) and the
    pump that feeds AMI events through the tracker back into `Dialer.on_outcome`."""

    def __init__(self, store: Store, client: AmiClient, clock: Clock, *,
                 workspace: str = "default", max_concurrent_global: int = 10,
                 reconcile_every_s: float = 30.0,
                 session_results: SessionResults | None = None) -> None:
        self._store = store
        self._session_results = session_results
        self._requests: dict[str, OriginateRequest] = {}
        self._client = client
        self._clock = clock
        self._reconcile_every_s = reconcile_every_s
        self.tracker = CallTracker(clock)
        self.dialer = Dialer(store, self, clock, workspace=workspace,
                             max_concurrent_global=max_concurrent_global, probe=client,
                             not_sent=(AmiNotConnected,), fate_unknown=(OriginateUnknown,))
        self._outcomes: asyncio.Queue[CallOutcome] = asyncio.Queue()
        self._unsubscribe = client.subscribe(self._on_event)

    def _on_event(self, msg: AmiMessage) -> None:
        for outcome in self.tracker.feed(msg):
            self._outcomes.put_nowait(outcome)

    async def originate(self, req: OriginateRequest) -> None:
        self.tracker.register(req.call_id)
        self._requests[req.call_id] = req
        try:
            await self._client.originate(req, amd=req.variables.get("TELEVOX_AMD") == "1")
        except OriginateUnknown:
            raise  # keep tracking: events or reconcile settle it
        except BaseException:
            self.tracker.reconcile(req.call_id, live=False)  # nothing to track
            self._requests.pop(req.call_id, None)
            raise

    async def recover(self) -> ReconcileReport:
        """Track every attempt a previous run left open BEFORE asking the PBX which are
        live, so a call that ends in between is still seen; then settle the gone ones."""
        for a in await unfinished_attempts(self._store):
            if a.id not in self.tracker.pending():
                self.tracker.register(a.id)
        report = await self.dialer.recover()
        for call_id in report.finalised:
            self.tracker.reconcile(call_id, live=False)
        return report

    async def pump(self) -> None:
        """Feed tracker outcomes to the dialer, forever (run it as a task)."""
        while True:
            outcome = await self._outcomes.get()
            turns: int | None = None
            disposition: Disposition | None = None
            req = self._requests.get(outcome.call_id)
            if outcome.status.is_final:
                await self.dialer.on_ended(outcome)  # the real end time, before any wait
                self._requests.pop(outcome.call_id, None)
                if req is not None and self._session_results is not None:
                    got = self._session_results(req, outcome)
                    turns, disposition = await got if inspect.isawaitable(got) else got
            await self.dialer.on_outcome(outcome, turns, disposition)

    async def reconcile_now(self) -> ReconcileReport:
        """Settle attempts whose channel is gone (also run after every AMI re-login)."""
        report = await self.dialer.reconcile()
        for call_id in report.finalised:
            self.tracker.reconcile(call_id, live=False)
        return report

    async def _reconcile_loop(self) -> None:
        while True:
            await self._clock.sleep(self._reconcile_every_s)
            await self.reconcile_now()

    async def idle(self) -> bool:
        active = await campaigns_in_states(self._store, ("RUNNING", "SCHEDULED"))
        return not active and await in_flight(self._store) == 0 and self._outcomes.empty()

    async def run(self, stop: asyncio.Event, *, exit_when_idle: bool = False) -> None:
        async with asyncio.TaskGroup() as tg:
            pump = tg.create_task(self.pump(), name="dialer-outcomes")
            rec = tg.create_task(self._reconcile_loop(), name="dialer-reconcile")
            dial = tg.create_task(self.dialer.run(stop), name="dialer")
            while not stop.is_set():
                if exit_when_idle and await self.idle():
                    stop.set()
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.2)
            self.dialer.poke()
            await dial
            pump.cancel()
            rec.cancel()

    def close(self) -> None:
        self._unsubscribe()


async def _main(args: argparse.Namespace) -> int:
    store = await Store.open(Path(args.db))
    # The secret comes from $TELEVOX_AMI_SECRET (never the command line).
    client = AmiClient(AmiSettings(port=args.ami_port), host=args.ami_host,
                       port=args.ami_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await client.start()
        runner = CampaignRunner(store, client, SystemClock(), workspace=args.workspace,
                                max_concurrent_global=args.max_concurrent)
        report = await runner.recover()
        log.info("recovered", extra={"kept": len(report.kept),
                                     "finalised": len(report.finalised)})
        await runner.run(stop, exit_when_idle=args.exit_when_idle)
        runner.close()
    finally:
        await client.close()
        await store.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    from televox_pbx.logs import setup_logging

    ap = argparse.ArgumentParser(prog="python -m televox_pbx.campaigns.runner")
    ap.add_argument("--db", required=True)
    ap.add_argument("--ami-host", default="127.0.0.1")
    ap.add_argument("--ami-port", type=int, required=True)
    ap.add_argument("--workspace", default="default")
    ap.add_argument("--max-concurrent", type=int, default=10)
    ap.add_argument("--exit-when-idle", action="store_true")
    args = ap.parse_args(argv)
    setup_logging("INFO")
    return asyncio.run(_main(args))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
