"""The composition root: builds every part of the daemon and wires them together.

Features never reach for globals; everything they need is passed in here. Shutdown runs
in stages: stop dialing -> let calls finish or time out -> close sockets -> flush the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from televox_pbx.agent.warmup import campaign_warmer, warm_prompts
from televox_pbx.ami.client import AmiClient, ConnectionState
from televox_pbx.ami.eventlog import EventLog
from televox_pbx.app_calls import CallHandlers
from televox_pbx.app_ports import AmiTransfer, ResultLog, VoiceRunner
from televox_pbx.audiosocket.server import AudioSocketServer
from televox_pbx.campaigns.dnc import CallDnc, DncService
from televox_pbx.campaigns.node_reconcile import NodeReconciler, node_reconciler
from televox_pbx.campaigns.prompt_warmups import PromptWarmups
from televox_pbx.clock import Clock, SystemClock, wait_for
from televox_pbx.config.capacity import effective as effective_capacity
from televox_pbx.config.settings import Settings
from televox_pbx.control.server import ControlServer
from televox_pbx.control.service import start_control
from televox_pbx.ivr.wiring import IvrCalls
from televox_pbx.knowledge.index import KnowledgeIndex
from televox_pbx.knowledge.startup import start_knowledge
from televox_pbx.lease_keeper import LeaseKeeper, start_lease
from televox_pbx.sms.ami import AmiMessenger
from televox_pbx.sms.responder import LlmResponder
from televox_pbx.sms.service import SmsService
from televox_pbx.startup import check_database, startup_error
from televox_pbx.store import Store
from televox_pbx.store.attempts import close_stale_inbound, unfinished_attempts
from televox_pbx.store.call_lookup import settled
from televox_pbx.store.campaigns import campaigns_in_states
from televox_pbx.store.tool_calls import StoreToolCalls
from televox_pbx.store.transcripts import StoreCallbacks
from televox_pbx.supervise import supervise
from televox_pbx.voice.agent_extras import agent_voices
from televox_pbx.voice.interfaces import Llm
from televox_pbx.voice.session import CallPorts, SessionConfig
from televox_pbx.voice.session import Engines as SessionEngines
from televox_pbx.voice.session_factory import VoiceSessionFactory
from televox_pbx.web.call_extras import CallExtras

log = logging.getLogger(__name__)

# Shutdown: how long calls in progress may go on once dialing has stopped.
DRAIN_CALLS_S = 30.0
# Start: how long the first reconcile after login may take before start() returns anyway
# (the dialer waits for `ready()` in any case).
READY_WAIT_S = 10.0
# How often the shutdown drain looks in the store for the calls' results.
_DRAIN_POLL_S = 0.1
# The shared prompt prefix of the active campaigns is evaluated before dialing starts
# (~20 s for one campaign on 2 cores); past this, dialing starts anyway.
WARM_PROMPTS_S = 90.0


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
                 control: bool = True, http_port: int | None = None) -> None:
        """`recover=False`: a short-lived App beside the daemon (`televox call`) leaves the
        daemon's unfinished attempts alone. `control=False`: no control channel (only
        the daemon serves one). `http_port`: serve the API and the outgoing webhooks
        (0: any free port); None: neither (only the daemon serves them)."""
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
        self.sms: SmsService | None = None
        self.ivr: IvrCalls | None = None
        self.eventlog: EventLog | None = None
        self.lease: LeaseKeeper | None = None  # on PostgreSQL: this node's epoch and lease
        self.nodes: NodeReconciler | None = None  # ... and settles dead nodes' calls
        self.factory: VoiceSessionFactory | None = None
        self.knowledge: KnowledgeIndex | None = None
        self.calls: CallHandlers | None = None  # what answers each call's audio
        self._holder: Any = None  # televox_pbx.voice.engines.holder.Engines
        self._results: ResultLog | None = None
        self._stage = "settings"  # what start() is doing, for a one-line failure
        self._closed = False
        self._control = control and settings.control.enabled
        self.control: ControlServer | None = None
        self._http_port = http_port
        self.web: Any = None  # televox_pbx.web.server.WebService when serving the API
        # POST /api/v1/calls extras by contact id, taken when that contact's call goes out.
        self.call_extras: dict[str, CallExtras] = {}
        # The voice capacity, checked against this box's cores (config/capacity.py).
        self.capacity = effective_capacity(settings.capacity)

    @property
    def ami_mode(self) -> str:
        return "asterisk" if self.settings.ami.host else "simulator"

    # -- start ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start every part, in order. On failure, what was started is closed again in
        reverse and a StartupError says, in one line, what failed and how to fix it."""
        try:
            await self._start()
        except BaseException as exc:
            stage = self._stage
            await self._close()
            if isinstance(exc, Exception):
                raise startup_error(stage, exc, self.settings,
                                    audiosocket_port=self._audiosocket_port,
                                    http_port=self._http_port) from exc
            raise

    async def _start(self) -> None:
        s = self.settings
        self._stage = "control"
        if self._control:  # first: a second daemon on this database stops here
            self.control = await start_control(self)
        if self.capacity.warning is not None:
            log.warning(self.capacity.warning)
        log.info("voice capacity", extra={"conversations": self.capacity.conversations,
                                          "cores": self.capacity.cores})
        self._stage = "database"
        if not s.database.is_postgres:
            check_database(s.database.path)
        self.store = store = await Store.open(s.database.target(),
                                              password=s.database.password())
        if s.database.is_postgres and self._recover:  # the daemon, one of several nodes
            voice = self.capacity.conversations if self.load_models else None
            self.lease = await start_lease(store, self.clock, s, capacity=voice)
            self.nodes = node_reconciler(store, self.clock, s)
        self._stage = "knowledge"
        self.knowledge = knowledge = await start_knowledge(s)
        self._stage = "models"
        engines = await self._load_engines()
        self._results = results = ResultLog(store, self.clock)
        port = self._audiosocket_port if self._audiosocket_port is not None else \
            s.audiosocket.port
        self._stage = "inbound numbers"
        self.calls = calls = CallHandlers(self, results)
        self._stage = "audiosocket"
        # Only the daemon answers inbound calls: a one-off `televox call` has no node
        # identity, so its inbound rows would be no node's on a cluster.
        self.audiosocket = AudioSocketServer(
            self.clock, host=s.audiosocket.bind_host, port=port,
            inbound_handler=calls.inbound() if self._recover else None)
        await self.audiosocket.start()
        self._stage = "simulator"
        host, ami_port, secret = await self._start_pbx(engines)
        self._stage = "wiring"
        self.client = client = AmiClient(s.ami, clock=self.clock, host=host, port=ami_port,
                                         secret=secret)
        if engines is not None:
            dnc = CallDnc(DncService(store, s.workspace, s.default_country, self.clock))
            ports = CallPorts(dnc=dnc,
                              callbacks=StoreCallbacks(store), log=self._results,
                              transfer=AmiTransfer(client), knowledge=knowledge,
                              tool_calls=StoreToolCalls(store, self.clock))
            self.factory = VoiceSessionFactory(
                engines, ports, self.clock, SessionConfig(recordings_dir=s.recordings_dir))
            if self._recover:  # the daemon, not a one-off `televox call` beside it
                # Before the first dial: a call would otherwise wait for it in silence.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._warm_prompts(engines.llm), WARM_PROMPTS_S)
        self.eventlog = EventLog(store, s.events, self.clock)
        client.subscribe(self.eventlog.record)
        client.subscribe(calls.on_event)
        # The runner settles unfinished attempts after every login (the first time by
        # recovering what a previous run left open) and only then reports ready().
        self.runner = VoiceRunner(
            store, client, self.clock, workspace=s.workspace,
            max_concurrent_global=s.max_concurrent_calls,
            # The voice capacity bounds conversations; with no voice engines, no agent talks.
            capacity=self.capacity.conversations if engines is not None else None,
            live_elsewhere=lambda: calls.inbound_live,
            session_results=calls.session_results,
            handler_for=calls.outbound if self.factory is not None else None,
            audiosocket=self.audiosocket, recover_on_login=self._recover)
        # SMS campaigns send through the dialer; inbound texts arrive as UserEvents.
        self.sms = SmsService(store, AmiMessenger(client), self.clock, workspace=s.workspace,
                              responder=LlmResponder(engines.llm) if engines else None,
                              sms_from=frozenset(n.number for n in s.numbers if n.sms)
                              if s.numbers else None)
        self.runner.dialer.sms = self.sms
        if engines is not None and self._recover:
            self.runner.dialer.warmups = PromptWarmups(campaign_warmer(engines.llm), self.clock)
        self.ivr = IvrCalls(store, s, self.clock, engines.tts if engines else None)
        client.subscribe(self.sms.on_event)
        self._stage = "recovery"
        if self._recover:
            await close_stale_inbound(store)
        self._stage = "ami"
        await client.start()
        self._stage = "recovery"
        if client.state is ConnectionState.LOGGED_IN:
            await self.runner.wait_ready(READY_WAIT_S)
        if self._http_port is not None:
            self._stage = "http"
            from televox_pbx.web.server import serve_app
            self.web = await serve_app(self, self._http_port)
        self._stage = "running"

    async def _warm_prompts(self, llm: Llm) -> None:
        """The active campaigns' and the inbound agents' shared prompt prefix, evaluated
        before their first call."""
        assert self.store is not None
        rows = await campaigns_in_states(self.store, ("RUNNING", "SCHEDULED"))
        inbound = list(self.calls.routes.campaigns.values()) if self.calls is not None else []
        await warm_prompts(llm, [*inbound, *(c for row in rows if (c := row.config()))])

    async def _load_engines(self) -> SessionEngines | None:
        if self._engines is not None:
            return self._engines
        if not self.load_models:
            return None
        from televox_pbx.voice.engines.holder import VAD_MODEL_ID, Engines

        self._holder = holder = Engines(self.settings.models)
        # Absent files show at once; otherwise they would after loading the models
        # before them, which takes seconds.
        m = self.settings.models
        for model in (VAD_MODEL_ID, m.stt, m.llm, m.tts):
            problems = holder.registry.missing(model)
            if problems:
                raise RuntimeError(f"model {model!r}: {'; '.join(problems)}")
        await holder.preload()
        engines = SessionEngines(vad=holder.vad(), stt=holder.stt(), llm=holder.llm(),
                                 tts=holder.tts(), turn=holder.turn(), voices=await
                                 asyncio.to_thread(agent_voices, holder,
                                                   self.settings.agents_dir))
        if not self.settings.capacity.scheduler:
            return engines
        from televox_pbx.voice.engines.scheduled import EngineScheduler

        return EngineScheduler.create(self.clock).wrap(engines)

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

    # -- run and stop --------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, *, exit_when_idle: bool = False) -> None:
        assert self.runner is not None and self.eventlog is not None
        async with asyncio.TaskGroup() as tg:
            events = tg.create_task(supervise("event log writer", self.eventlog.run,
                                              self.clock), name="eventlog")
            lease = tg.create_task(supervise("node lease", self.lease.run, self.clock),
                                   name="lease") if self.lease is not None else None
            nodes = tg.create_task(supervise("dead nodes", self.nodes.run, self.clock),
                                   name="dead-nodes") if self.nodes is not None else None
            texts = tg.create_task(supervise("inbound texts", self.sms.run, self.clock),
                                   name="sms-inbound") if self.sms is not None else None
            await self.runner.run(stop, exit_when_idle=exit_when_idle)
            await self._drain_calls()
            events.cancel()
            for task in (lease, nodes):
                if task is not None:
                    task.cancel()
            if texts is not None:
                texts.cancel()

    async def _drain_calls(self) -> None:
        """Dialing has stopped but calls already up go on: keep feeding their results to
        the dialer until none is in flight (at most DRAIN_CALLS_S on the clock), so a
        SIGTERM mid-call still closes the attempt and moves the contact on."""
        assert self.runner is not None and self.store is not None
        store = self.store
        pump = asyncio.get_running_loop().create_task(
            supervise("outcome pump (drain)", self.runner.pump, self.clock), name="drain")
        deadline = self.clock.monotonic() + DRAIN_CALLS_S
        calls = [a.id for a in await unfinished_attempts(store)]
        try:
            while self.clock.monotonic() < deadline:
                if await settled(store, calls):
                    break
                await self.clock.sleep(_DRAIN_POLL_S)  # results land in the store; poll it
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
        """Staged: dialing has stopped (run returned) -> no new calls over the control
        channel or the API -> calls drain -> sockets -> store."""
        await self._close_control()
        await self._close_web()
        if self.audiosocket is not None:
            with contextlib.suppress(TimeoutError):
                await wait_for(self.clock, self.audiosocket.wait_idle(), DRAIN_CALLS_S)
        await self._close()

    async def _close(self) -> None:
        """Close whatever was started, in reverse order; a part that fails to close is
        logged and the rest still close. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        steps: list[tuple[str, Callable[[], Awaitable[object]]]] = [("http", self._close_web)]
        if self.runner is not None:
            steps.append(("runner", self.runner.aclose))
        if self.client is not None:
            steps.append(("ami client", self.client.close))
        if self.sim is not None:
            steps.append(("simulator", self.sim.close))
        if self.audiosocket is not None:
            steps.append(("audiosocket", self.audiosocket.close))
        if self.eventlog is not None and self.store is not None:
            steps.append(("event log", self.eventlog.flush))
        if self.knowledge is not None:
            steps.append(("knowledge", self.knowledge.close))
        steps += [("store", self._close_store), ("models", self._close_models),
                  ("control", self._close_control)]
        for name, close in steps:
            try:
                await close()
            except Exception:
                log.exception("closing failed", extra={"part": name})

    async def _close_web(self) -> None:
        web, self.web = self.web, None
        if web is not None:
            await web.close()

    async def _close_control(self) -> None:
        control, self.control = self.control, None
        if control is not None:
            await control.close()

    async def _close_store(self) -> None:
        store, self.store = self.store, None
        if store is not None:
            await store.close()

    async def _close_models(self) -> None:
        holder, self._holder = self._holder, None
        if holder is not None:
            holder.close()
