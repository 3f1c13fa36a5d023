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

from televox_pbx.ami.client import (
    AmiClient,
    AmiNotConnected,
    ConnectionState,
    OriginateUnknown,
)
from televox_pbx.ami.codec import AmiMessage
from televox_pbx.ami.tracker import CallTracker
from televox_pbx.campaigns.cluster_dial import ClusterDial
from televox_pbx.campaigns.dialer import Dialer
from televox_pbx.campaigns.recovery import ReconcileReport
from televox_pbx.clock import Clock, SystemClock, wait_for
from televox_pbx.config.settings import AmiSettings
from televox_pbx.domain import CallOutcome, Disposition, OriginateRequest
from televox_pbx.store import Store
from televox_pbx.store.attempts import unfinished_attempts
from televox_pbx.store.campaigns import campaigns_in_states
from televox_pbx.store.node_load import live_here
from televox_pbx.supervise import OwnedTasks, backoff_s, supervise

log = logging.getLogger(__name__)

# What the voice side learned about a finished call: (turns, disposition). It may be a
# coroutine: the voice session often finishes saving just after the Hangup event.
SessionResult = tuple[int | None, Disposition | None]
SessionResults = Callable[[OriginateRequest, CallOutcome],
                          SessionResult | Awaitable[SessionResult]]
# How often `run(exit_when_idle=True)` looks whether there is anything left to do.
_IDLE_POLL_S = 0.2


class CampaignRunner:
    """Originator for the dialer (registers each attempt with the tracker first) and the
    pump that feeds AMI events through the tracker back into `Dialer.on_outcome`.

    Readiness: after every AMI login the runner settles the attempts it may have lost
    track of (the first time: `recover()`, unless `recover_on_login` is off; afterwards:
    a reconcile through CoreShowChannels). `ready()` is True only once that has finished
    for the current login, so no Originate goes out on a link whose calls are unknown.
    """

    def __init__(self, store: Store, client: AmiClient, clock: Clock, *,
                 workspace: str = "default", max_concurrent_global: int = 10,
                 capacity: int | None = None, live_elsewhere: Callable[[], int] = lambda: 0,
                 reconcile_every_s: float = 30.0,
                 session_results: SessionResults | None = None,
                 recover_on_login: bool = True) -> None:
        """`recover_on_login=False`: a short-lived runner beside the daemon (`televox
        call`) leaves the daemon's unfinished attempts alone: its first login is ready
        at once; later logins reconcile as usual."""
        self._store = store
        self._session_results = session_results
        self._requests: dict[str, OriginateRequest] = {}
        self._client = client
        self._clock = clock
        self._reconcile_every_s = reconcile_every_s
        self.tracker = CallTracker(clock)
        self.dialer = Dialer(store, self, clock, workspace=workspace,
                             max_concurrent_global=max_concurrent_global,
                             capacity=capacity, live_elsewhere=live_elsewhere, probe=client,
                             not_sent=(AmiNotConnected,), fate_unknown=(OriginateUnknown,),
                             cluster=ClusterDial(store) if store.node is not None else None)
        self._outcomes: asyncio.Queue[CallOutcome] = asyncio.Queue()
        self._tasks = OwnedTasks("campaign-runner")
        # Final outcomes waiting for their voice session's result, one task each.
        self._finishing = OwnedTasks("outcome-pump")
        self._ending: set[str] = set()  # final outcome seen, session result awaited
        self._recover_on_login = recover_on_login
        self._recovered = False  # recover() has run (or was not ours to run)
        self._settled_login = 0  # the login (client.connections) last settled
        self._settling: asyncio.Task[None] | None = None
        self._unsubscribe = client.subscribe(self._on_event)
        self._unlisten = client.add_state_listener(self._on_ami_state)
        self._closed = False

    def _on_event(self, msg: AmiMessage) -> None:
        for outcome in self.tracker.feed(msg):
            self._outcomes.put_nowait(outcome)

    # -- readiness ----------------------------------------------------------------------

    def ready(self) -> bool:
        """Originator.ready: logged in, and the attempts of the time before this login
        are settled. Asking starts that settling if nobody has yet (a runner built after
        its client logged in)."""
        if self._client.state is not ConnectionState.LOGGED_IN:
            return False
        if self._settled_login == self._client.connections:
            return True
        self._ensure_settling()
        return False

    async def wait_ready(self, timeout_s: float) -> bool:
        """Until `ready()` (True) or `timeout_s` on the clock (False)."""
        async def until_ready() -> None:
            while not self.ready():
                settling = self._settling
                if settling is not None and not settling.done():
                    await asyncio.wait({settling})
                else:
                    await self._clock.sleep(_IDLE_POLL_S)
        try:
            await wait_for(self._clock, until_ready(), timeout_s)
        except TimeoutError:
            return False
        return True

    def _on_ami_state(self, state: ConnectionState) -> None:
        if state is ConnectionState.LOGGED_IN:
            self._ensure_settling()  # after a reconnect: which of our calls survived?

    def _ensure_settling(self) -> None:
        if self._settling is None or self._settling.done():
            self._settling = self._tasks.spawn(self._settle(), "ami-settle")

    async def _settle(self) -> None:
        """Until the current login is settled; a failure while still logged in is
        retried after a backoff, a lost link waits for the next login to start again."""
        failures = 0
        while (self._client.state is ConnectionState.LOGGED_IN
               and self._settled_login != self._client.connections):
            login = self._client.connections
            first = not self._recovered
            try:
                if first and not self._recover_on_login:  # another process's attempts
                    self._recovered = True
                    report = ReconcileReport([], [])
                else:
                    report = await (self.recover() if first else self.reconcile_now())
            except Exception as exc:
                if self._client.state is not ConnectionState.LOGGED_IN:
                    log.warning("AMI link lost while reconciling; again after re-login",
                                extra={"error": repr(exc)})
                    return
                failures += 1
                delay = backoff_s(failures, 1.0, 30.0)
                log.exception("reconcile after AMI login failed; retrying",
                              extra={"failures": failures, "retry_in_s": delay})
                await self._clock.sleep(delay)
                continue
            if self._client.connections == login:
                self._settled_login = login
            log.info("recovered unfinished attempts" if first else
                     "reconciled after AMI login",
                     extra={"kept": len(report.kept), "finalised": len(report.finalised),
                            "login": login})

    # -- Originator ---------------------------------------------------------------------

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
        login = self._client.connections
        logged_in = self._client.state is ConnectionState.LOGGED_IN
        for a in await unfinished_attempts(self._store):
            if a.id not in self.tracker.pending():
                self.tracker.register(a.id)
        report = await self.dialer.recover()
        for call_id in report.finalised:
            self.tracker.reconcile(call_id, live=False)
        self._recovered = True
        if logged_in and self._client.connections == login:
            self._settled_login = max(self._settled_login, login)
        return report

    # -- outcomes -----------------------------------------------------------------------

    async def pump(self) -> None:
        """Feed tracker outcomes to the dialer, forever (run it as a task). A final
        outcome that waits for its voice session's result waits in a task of its own, so
        one missing result never holds up the other calls' outcomes."""
        while True:
            outcome = await self._outcomes.get()
            req = self._requests.get(outcome.call_id)
            if outcome.status.is_final:
                await self.dialer.on_ended(outcome)  # the real end time, before any wait
                self._requests.pop(outcome.call_id, None)
                if req is not None and self._session_results is not None:
                    self._ending.add(req.call_id)
                    self._finishing.spawn(self._finish(req, outcome),
                                          f"outcome-{req.call_id}", {"call_id": req.call_id})
                    continue
            await self.dialer.on_outcome(outcome, None, None)

    async def _finish(self, req: OriginateRequest, outcome: CallOutcome) -> None:
        turns: int | None = None
        disposition: Disposition | None = None
        assert self._session_results is not None
        try:
            try:
                got = self._session_results(req, outcome)
                turns, disposition = await got if inspect.isawaitable(got) else got
            except Exception:  # the PBX's word on the call still counts
                log.exception("voice session result unavailable",
                              extra={"call_id": req.call_id})
            await self.dialer.on_outcome(outcome, turns, disposition)
        finally:
            self._ending.discard(req.call_id)

    async def reconcile_now(self) -> ReconcileReport:
        """Settle attempts whose channel is gone (also run after every AMI re-login)."""
        # Calls whose Hangup was seen and whose session result is on its way are not
        # reconcile's to settle: their real result would arrive as a duplicate.
        report = await self.dialer.reconcile(skip=frozenset(self._ending))
        for call_id in report.finalised:
            self.tracker.reconcile(call_id, live=False)
        return report

    async def _reconcile_loop(self) -> None:
        while True:
            await self._clock.sleep(self._reconcile_every_s)
            if self._client.state is not ConnectionState.LOGGED_IN:
                continue  # the reconcile after the next login covers this turn
            try:
                await self.reconcile_now()
            except AmiNotConnected as exc:  # the link went down under us: same
                log.warning("periodic reconcile skipped: AMI not connected",
                            extra={"error": str(exc)})

    async def idle(self) -> bool:
        """Nothing left for this daemon: no campaign running or scheduled, and none of its
        own calls unfinished. On a cluster another node's calls (inbound, call-now) are
        that node's to finish; a campaign with calls anywhere is still RUNNING."""
        active = await campaigns_in_states(self._store, ("RUNNING", "SCHEDULED"))
        return (not active and await live_here(self._store) == 0 and self._outcomes.empty()
                and not self._finishing)

    async def run(self, stop: asyncio.Event, *, exit_when_idle: bool = False) -> None:
        """The dialer, the outcome pump and the periodic reconcile, each supervised (a
        failure is logged and that loop restarts after a backoff), until `stop`."""
        clock = self._clock
        async with asyncio.TaskGroup() as tg:
            pump = tg.create_task(supervise("outcome pump", self.pump, clock),
                                  name="dialer-outcomes")
            rec = tg.create_task(supervise("reconcile loop", self._reconcile_loop, clock),
                                 name="dialer-reconcile")
            dial = tg.create_task(supervise("dialer loop", lambda: self.dialer.run(stop),
                                            clock, stop=stop), name="dialer")
            while not stop.is_set():
                try:
                    if exit_when_idle and await self.idle():
                        stop.set()
                        break
                except Exception:
                    log.exception("idle check failed")
                with contextlib.suppress(TimeoutError):
                    await wait_for(clock, stop.wait(), _IDLE_POLL_S)
            self.dialer.poke()
            await dial
            pump.cancel()
            rec.cancel()

    def close(self) -> None:
        """Stop listening and cancel the owned tasks (`aclose` also awaits them)."""
        if not self._closed:
            self._closed = True
            self._unsubscribe()
            self._unlisten()
        self._tasks.cancel()
        self._finishing.cancel()

    async def aclose(self) -> None:
        self.close()
        await self._tasks.aclose()
        await self._finishing.aclose()
        if self.dialer.warmups is not None:
            await self.dialer.warmups.aclose()


async def _main(args: argparse.Namespace) -> int:
    store = await Store.open(args.db)  # a SQLite file or a postgresql:// URL
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
        await runner.aclose()
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
