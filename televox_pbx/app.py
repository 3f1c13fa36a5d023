"""The composition root: builds every part of the daemon and wires them together.

Features never reach for globals; everything they need is passed in here. Shutdown runs
in stages: stop dialing -> let calls finish or time out -> close sockets -> flush the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from televox_pbx.agent.warmup import warm_prompts
from televox_pbx.ami.client import AmiClient, ConnectionState
from televox_pbx.ami.codec import AmiMessage
from televox_pbx.ami.eventlog import EventLog
from televox_pbx.audiosocket.server import AudioSocketServer
from televox_pbx.audiosocket.session import CallAudio, SessionHandler
from televox_pbx.campaigns.dnc import CallDnc, DncService
from televox_pbx.campaigns.phones import normalize_phone
from televox_pbx.campaigns.runner import CampaignRunner, SessionResult
from televox_pbx.clock import Clock, SystemClock
from televox_pbx.config.campaign import Campaign
from televox_pbx.config.loader import ConfigError, find_campaign
from televox_pbx.config.settings import Settings
from televox_pbx.control.server import ControlServer
from televox_pbx.control.service import start_control
from televox_pbx.domain import AmdStatus, CallOutcome, Disposition, OriginateRequest
from televox_pbx.store import Store
from televox_pbx.store.attempts import (
    close_stale_inbound,
    finish_inbound,
    record_inbound,
    unfinished_attempts,
)
from televox_pbx.store.call_lookup import settled
from televox_pbx.store.campaigns import campaigns_in_states, get_campaign
from televox_pbx.store.transcripts import (
    CallRecord,
    StoreCallbacks,
    StoreCallLog,
    callee_turns,
)
from televox_pbx.voice.amd import await_verdict
from televox_pbx.voice.interfaces import Llm
from televox_pbx.voice.session import CallPorts, SessionConfig, VoiceSessionFactory
from televox_pbx.voice.session import Engines as SessionEngines

log = logging.getLogger(__name__)

# After the PBX reports a hang-up, how long the voice session may take to save its result.
SESSION_RESULT_WAIT_S = 60.0
# Shutdown: how long calls in progress may go on once dialing has stopped.
DRAIN_CALLS_S = 30.0
# The shared prompt prefix of the active campaigns is evaluated before dialing starts
# (~20 s for one campaign on 2 cores); past this, dialing starts anyway.
WARM_PROMPTS_S = 90.0
_VAR_PREFIX = "TELEVOX_VAR_"


class ResultLog:
    """The sessions' CallLogPort: saves to the store and tells the runner what happened."""

    def __init__(self, store: Store) -> None:
        self._inner = StoreCallLog(store)
        self._results: dict[str, asyncio.Future[SessionResult]] = {}

    def _future(self, call_id: str) -> asyncio.Future[SessionResult]:
        fut = self._results.get(call_id)
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            self._results[call_id] = fut
        return fut

    async def save_call(self, record: CallRecord) -> None:
        try:
            await self._inner.save_call(record)
        finally:
            turns = callee_turns(record.turns)
            disposition = Disposition(record.disposition) if record.disposition else None
            fut = self._future(record.attempt_id)
            if not fut.done():
                fut.set_result((turns, disposition))

    def forget(self, call_id: str) -> None:
        """Nobody will wait for this call's result (inbound calls have no dialer)."""
        self._results.pop(call_id, None)

    async def wait(self, call_id: str, timeout_s: float) -> SessionResult:
        try:
            return await asyncio.wait_for(asyncio.shield(self._future(call_id)), timeout_s)
        except TimeoutError:
            log.warning("voice session result missing", extra={"call_id": call_id})
            return (None, None)
        finally:
            self._results.pop(call_id, None)


class AmiTransfer:
    """The sessions' TransferPort: an AMI Redirect of the call's channel."""

    def __init__(self, client: AmiClient) -> None:
        self._client = client

    async def transfer(self, call_id: str, target: Any) -> None:
        channels = await self._client.status()
        name = next((m.get("Channel") for m in channels if m.get("Uniqueid") == call_id), None)
        if name is None:
            raise RuntimeError("no live channel for this call")
        await self._client.send_action([
            ("Action", "Redirect"), ("Channel", name), ("Context", target.context),
            ("Exten", target.exten), ("Priority", str(target.priority))])


class VoiceRunner(CampaignRunner):
    """The campaign runner, plus: every attempt's AudioSocket handler is registered
    before its Originate goes out, so the answered call finds its agent waiting."""

    def __init__(self, *args: Any, handler_for: Callable[[OriginateRequest], SessionHandler]
                 | None, audiosocket: AudioSocketServer, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._handler_for = handler_for
        self._audiosocket = audiosocket

    async def originate(self, req: OriginateRequest) -> None:
        if self._handler_for is not None:
            self._audiosocket.expect(req.call_id, self._handler_for(req))
        await super().originate(req)


@dataclass
class Health:
    ami_state: str
    ami_mode: str
    models: list[dict[str, Any]] = field(default_factory=list)
    calls_active: int = 0
    audiosocket_refused: int = 0


class App:
    def __init__(self, settings: Settings, *, clock: Clock | None = None,
                 load_models: bool = True, engines: SessionEngines | None = None,
                 audiosocket_port: int | None = None, recover: bool = True,
                 control: bool = True) -> None:
        """`recover=False`: a short-lived App beside the daemon (`televox call`) leaves the
        daemon's unfinished attempts alone. `control=False`: no control channel (only
        the daemon serves one)."""
        self.settings = settings
        self.clock = clock or SystemClock()
        self.load_models = load_models or engines is not None
        self._engines = engines
        self._audiosocket_port = audiosocket_port
        self._recover = recover
        self.store: Store | None = None
        self.sim: Any = None  # televox_pbx.sim.pbx.Simulator when no Asterisk is configured
        self.client: AmiClient | None = None
        self.audiosocket: AudioSocketServer | None = None
        self.runner: VoiceRunner | None = None
        self.eventlog: EventLog | None = None
        self.factory: VoiceSessionFactory | None = None
        self._holder: Any = None  # televox_pbx.voice.engines.holder.Engines
        self._results: ResultLog | None = None
        self._logins = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._control = control and settings.control.enabled
        self.control: ControlServer | None = None

    @property
    def ami_mode(self) -> str:
        return "asterisk" if self.settings.ami.host else "simulator"

    # -- start ---------------------------------------------------------------------------

    async def start(self) -> None:
        s = self.settings
        if self._control:  # first: a second daemon on this database stops here
            self.control = await start_control(self)
        self.store = store = await Store.open(s.database.path)
        engines = await self._load_engines()
        self._results = ResultLog(store)
        port = self._audiosocket_port if self._audiosocket_port is not None else \
            s.audiosocket.port
        self.audiosocket = AudioSocketServer(self.clock, host=s.audiosocket.bind_host,
                                             port=port, inbound_handler=self._inbound_handler())
        await self.audiosocket.start()
        host, ami_port, secret = await self._start_pbx(engines)
        self.client = client = AmiClient(s.ami, clock=self.clock, host=host, port=ami_port,
                                         secret=secret)
        if engines is not None:
            dnc = CallDnc(DncService(store, s.workspace, s.default_country, self.clock))
            ports = CallPorts(dnc=dnc,
                              callbacks=StoreCallbacks(store), log=self._results,
                              transfer=AmiTransfer(client))
            self.factory = VoiceSessionFactory(
                engines, ports, self.clock, SessionConfig(recordings_dir=s.recordings_dir))
            if self._recover:  # the daemon, not a one-off `televox call` beside it
                # Before the first dial: a call would otherwise wait for it in silence.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._warm_prompts(engines.llm), WARM_PROMPTS_S)
        self.eventlog = EventLog(store, s.events, self.clock)
        client.subscribe(self.eventlog.record)
        client.subscribe(self._on_event)
        self.runner = VoiceRunner(
            store, client, self.clock, workspace=s.workspace,
            max_concurrent_global=s.max_concurrent_calls,
            session_results=self._session_results,
            handler_for=self._handler_for if self.factory is not None else None,
            audiosocket=self.audiosocket)
        client.add_state_listener(self._on_ami_state)
        await client.start()
        with contextlib.suppress(TimeoutError):
            await client.wait_logged_in(timeout_s=10.0)
        if self._recover:
            await close_stale_inbound(store)
            report = await self.runner.recover()
            log.info("recovered unfinished attempts",
                     extra={"kept": len(report.kept), "finalised": len(report.finalised)})

    async def _warm_prompts(self, llm: Llm) -> None:
        """The active campaigns' shared prompt prefix, evaluated before their first call."""
        assert self.store is not None
        rows = await campaigns_in_states(self.store, ("RUNNING", "SCHEDULED"))
        await warm_prompts(llm, [c for row in rows if (c := row.config()) is not None])

    async def _load_engines(self) -> SessionEngines | None:
        if self._engines is not None:
            return self._engines
        if not self.load_models:
            return None
        from televox_pbx.voice.engines.holder import Engines

        self._holder = holder = Engines(self.settings.models)
        await holder.preload()
        return SessionEngines(vad=holder.vad(), stt=holder.stt(), llm=holder.llm(),
                              tts=holder.tts())

    async def _start_pbx(self, engines: SessionEngines | None,
                         ) -> tuple[str, int, SecretStr | None]:
        """Asterisk when configured; otherwise the embedded simulator on loopback."""
        s = self.settings
        if s.ami.host:
            return s.ami.host, s.ami.port, s.ami.secret()
        from televox_pbx.sim.pbx import Simulator
        from televox_pbx.sim.scenario import Scenario, load_scenario
        from televox_pbx.sim.speech import speech_from_tts

        scenario_path = s.simulator.scenario
        scenario = load_scenario(scenario_path) if scenario_path and scenario_path.exists() \
            else Scenario()
        assert self.audiosocket is not None
        self.sim = Simulator(
            scenario, audiosocket=("127.0.0.1", self.audiosocket.port), clock=self.clock,
            speech=speech_from_tts(engines.tts) if engines is not None else None,
            allow_placeholder_speech=engines is None, out_dir=s.simulator.recordings_dir)
        port = await self.sim.start("127.0.0.1", 0)
        return "127.0.0.1", port, SecretStr("simulator")

    # -- wiring --------------------------------------------------------------------------

    def _on_ami_state(self, state: ConnectionState) -> None:
        """After a reconnect, ask the PBX which of our calls survived (never re-dial)."""
        if state != ConnectionState.LOGGED_IN or self.runner is None:
            return
        self._logins += 1
        if self._logins > 1:
            task = asyncio.get_running_loop().create_task(self._reconcile_after_login())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _reconcile_after_login(self) -> None:
        assert self.runner is not None
        try:
            report = await self.runner.reconcile_now()
            log.info("reconciled after AMI reconnect",
                     extra={"kept": len(report.kept), "finalised": len(report.finalised)})
        except Exception:
            log.exception("reconcile after AMI reconnect failed")

    def _on_event(self, msg: AmiMessage) -> None:
        """The inbound dialplan announces each call's AudioSocket UUID before connecting."""
        if msg.event != "UserEvent" or (msg.get("UserEvent") or "").lower() != "televoxinbound":
            return
        call_id = msg.get("CallId")
        if call_id and self.audiosocket is not None:
            self.audiosocket.announce_inbound(call_id.lower(), msg.get("CallerID"))

    async def _campaign_for(self, req: OriginateRequest) -> Campaign | None:
        name = req.variables.get("TELEVOX_CAMPAIGN")
        if not name or self.store is None:
            return None
        row = await get_campaign(self.store, name)
        return row.config() if row is not None else None

    def _handler_for(self, req: OriginateRequest) -> SessionHandler:
        variables = {k.removeprefix(_VAR_PREFIX): v for k, v in req.variables.items()
                     if k.startswith(_VAR_PREFIX)}
        call_id = req.call_id.lower()

        async def handle(call: CallAudio) -> None:
            campaign = await self._campaign_for(req)
            if campaign is None or self.factory is None:
                log.error("no campaign for answered call", extra={"call_id": call_id})
                await call.hangup()
                return
            session = self.factory.create(
                campaign=campaign, call_id=call_id, phone=req.phone, variables=variables,
                zone=req.variables.get("TELEVOX_ZONE") or None,
                amd_wait=lambda timeout_s: await_verdict(
                    lambda: self._amd_status(req.call_id), self.clock, timeout_s))
            await session(call)
        return handle

    def _amd_status(self, call_id: str) -> AmdStatus | None:
        """AMD() ran in the dialplan; the call tracker reads its UserEvent, which may come
        after the audio has connected (the session waits for it, bounded)."""
        outcome = self.runner.tracker.outcome(call_id) if self.runner is not None else None
        return outcome.amd_status if outcome is not None else None

    def _inbound_handler(self) -> SessionHandler | None:
        name = self.settings.inbound_campaign
        if name is None:
            return None
        try:
            campaign = find_campaign(self.settings, name)
        except ConfigError as exc:
            raise RuntimeError(f"inbound_campaign {name!r} does not load: {exc}") from exc
        if campaign is None:
            raise RuntimeError(f"inbound_campaign {name!r}: no {name}.yaml in campaigns_dir")

        async def handle(call: CallAudio) -> None:
            if self.factory is None:
                await call.hangup()
                return
            assert self.store is not None
            store = self.store
            caller = call.caller_id or ""
            # E.164, like every number in the store: the live-attempt guard and an opt-out
            # on this call must match the same person in the campaigns.
            e164 = normalize_phone(caller, self.settings.default_country).e164
            await record_inbound(store, call.call_id, e164 or caller, self.clock.now())
            try:
                await self.factory.inbound_handler(campaign)(call)
            finally:
                await finish_inbound(store, call.call_id, self.clock.now())
                if self._results is not None:
                    self._results.forget(call.call_id)
        return handle

    async def _session_results(self, req: OriginateRequest,
                               outcome: CallOutcome) -> SessionResult:
        if self.audiosocket is not None:
            self.audiosocket.discard(req.call_id.lower())
        if outcome.answered_at is None or self._results is None or self.factory is None:
            return (None, None)
        return await self._results.wait(req.call_id.lower(), SESSION_RESULT_WAIT_S)

    # -- run and stop --------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, *, exit_when_idle: bool = False) -> None:
        assert self.runner is not None and self.eventlog is not None
        async with asyncio.TaskGroup() as tg:
            events = tg.create_task(self.eventlog.run(), name="eventlog")
            await self.runner.run(stop, exit_when_idle=exit_when_idle)
            await self._drain_calls()
            events.cancel()

    async def _drain_calls(self) -> None:
        """Dialing has stopped but calls already up go on: keep feeding their results to
        the dialer until none is in flight (at most DRAIN_CALLS_S), so a SIGTERM mid-call
        still closes the attempt and moves the contact on."""
        assert self.runner is not None and self.store is not None
        store = self.store
        loop = asyncio.get_running_loop()
        pump = loop.create_task(self.runner.pump(), name="drain")
        deadline = loop.time() + DRAIN_CALLS_S
        calls = [a.id for a in await unfinished_attempts(store)]
        try:
            while loop.time() < deadline:
                if await settled(store, calls):
                    break
                await asyncio.sleep(0.1)  # results land in the store; poll it
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump

    def health(self) -> Health:
        h = Health(ami_state=self.client.state.value if self.client else "disconnected",
                   ami_mode=self.ami_mode)
        if self._holder is not None:
            h.models = [dataclasses.asdict(st) for st in self._holder.status()]
        if self.audiosocket is not None:
            stats = self.audiosocket.stats()
            h.calls_active, h.audiosocket_refused = stats.active, stats.refused
        return h

    async def stop(self) -> None:
        """Staged: dialing has stopped (run returned) -> calls drain -> sockets -> store."""
        if self.control is not None:
            await self.control.close()
            self.control = None
        if self.audiosocket is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.audiosocket.wait_idle(), DRAIN_CALLS_S)
            await self.audiosocket.close()
        for task in self._tasks:
            task.cancel()
        if self.runner is not None:
            self.runner.close()
        if self.client is not None:
            await self.client.close()
        if self.sim is not None:
            await self.sim.close()
        if self.eventlog is not None:
            await self.eventlog.flush()
        if self.store is not None:
            await self.store.close()
            self.store = None
        if self._holder is not None:
            self._holder.close()
