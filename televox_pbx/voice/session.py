"""One call's voice session: the parts wired together, and the loop that runs them.

`VoiceSession` is the AudioSocket server's `SessionHandler`. A single loop takes caller
events, clock ticks, transcripts and finished agent tasks in order, so state never races.
Turn-taking is decided by the sans-IO core (voice/turntaking.py); around it sit the
listener (VAD, endpointing), the reply pipeline (LLM -> clauses -> TTS -> playback), the
conversation (context and transcript), the call's actions (tools, DNC, transfer) and the
result writer. This module only carries the core's actions out: the slow work (STT, an
agent turn) runs in owned tasks that report back as events. Time comes from the injected
clock (and the `t` of events), never from real sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from datetime import datetime, timedelta
from typing import Any

from televox_pbx.agent.dispositions import DispositionState
from televox_pbx.agent.prompts import opening_line, system_prompt
from televox_pbx.agent.reply_policy import ReplyPolicy
from televox_pbx.agent.tools import (
    ToolAction,
    parse_tool_call,
    tools_for,
)
from televox_pbx.agent.variables import render
from televox_pbx.audiosocket.session import (
    AudioIn,
    CallAudio,
    Dtmf,
    FrameSent,
    Hangup,
    HangupReason,
    InEvent,
)
from televox_pbx.clock import Clock
from televox_pbx.voice import turn_events as te
from televox_pbx.voice.actions import CallActions
from televox_pbx.voice.agent_extras import as_custom, grounding_for, runner_for
from televox_pbx.voice.agent_tasks import AgentTasks
from televox_pbx.voice.amd import verdict_or_person
from televox_pbx.voice.call_setup import (
    CallInfo,
    CallLogPort,
    CallPorts,
    CallResult,
    Engines,
    SessionConfig,
    answered_t,
    callee_zones,
    local_now,
)
from televox_pbx.voice.context import INTERRUPTED_MARK, Conversation
from televox_pbx.voice.custom_calls import CustomCalls
from televox_pbx.voice.disclosure import Disclosure
from televox_pbx.voice.engines.scheduler import OWNER
from televox_pbx.voice.interfaces import ChatMessage, ToolCall
from televox_pbx.voice.listener import Listener
from televox_pbx.voice.playback import Playback, Reply
from televox_pbx.voice.recording import StereoRecorder
from televox_pbx.voice.reply import ReplyPipeline
from televox_pbx.voice.result import write_result
from televox_pbx.voice.screening import Screening
from televox_pbx.voice.speech_jobs import SpeechJobs, Verdict
from televox_pbx.voice.turntaking import TurnTaking

__all__ = ["INTERRUPTED_MARK", "CallInfo", "CallLogPort", "CallPorts", "CallResult", "Engines",
           "SessionConfig", "VoiceSession"]

log = logging.getLogger(__name__)


class _Tick:
    pass


_TICK = _Tick()
_Queued = (InEvent | _Tick | Verdict | te.Transcribed | te.Transferred
           | asyncio.Task[te.Outcome])


class VoiceSession:
    def __init__(self, info: CallInfo, engines: Engines, ports: CallPorts, clock: Clock,
                 config: SessionConfig | None = None) -> None:
        self.info = info
        self.engines = engines
        self.ports = ports
        self.clock = clock
        self.config = config or SessionConfig()
        self.campaign = info.campaign
        self.result: CallResult | None = None
        self._zones = callee_zones(info, info.phone)
        self._phone = info.phone
        self._amd = info.amd
        self.disposition = DispositionState()
        self.disclosure = Disclosure()  # the opening sets what to disclose
        self.grounding = grounding_for(info, ports)
        self.custom = runner_for(info, clock)
        self.context = Conversation(self._system_message(), self.grounding)
        self.actions = CallActions(info, ports, self.disposition)
        self.listener = Listener(engines.vad, self.config, turn_model=engines.turn is not None)
        self._tools = tools_for(self.campaign, transfer_port=ports.transfer is not None)
        self._events: asyncio.Queue[_Queued] = asyncio.Queue()
        self._helpers: list[asyncio.Task[None]] = []
        self.jobs = SpeechJobs(engines, self.context, clock, self._events.put_nowait,
                               info.call_id)
        self._task: asyncio.Task[te.Outcome] | None = None  # the agent's one task
        self._task_id = 0
        self._release: asyncio.Event | None = None  # lets a held reply play
        self._held: Reply | None = None
        self._call: CallAudio | None = None
        self._t0 = 0.0
        self._wall0 = datetime.min
        # Built once the call is up (they need its output).
        self.core: TurnTaking | None = None
        self.playback: Playback | None = None
        self.pipeline: ReplyPipeline | None = None
        self.tasks: AgentTasks | None = None
        self.screening: Screening | None = None  # stream machine detection, until decided

    def _system_message(self) -> ChatMessage:
        return ChatMessage("system", system_prompt(
            self.campaign, self.info.variables, local_now(self.clock.now(), self._zones)))

    @property
    def messages(self) -> list[ChatMessage]:
        """The LLM's context as it stands."""
        return self.context.messages()

    # --- the SessionHandler ------------------------------------------------------------

    async def __call__(self, call: CallAudio) -> None:
        OWNER.set(self.info.call_id)  # whose work it is, for the engines' scheduler
        self._call = call
        self._phone = self.info.phone or call.caller_id or ""
        if not self.info.phone:  # inbound: the caller's zones are known only now
            self._zones = callee_zones(self.info, self._phone)
            self.context.system = self._system_message()
        self._t0 = self.clock.monotonic()
        self._wall0 = self.clock.now()
        self.listener.start(self._t0)
        playback = self.playback = Playback(call.output, self.disclosure)
        self.pipeline = ReplyPipeline(self.engines, self.config, self.clock, playback,
                                      self.context, self.disclosure, self._tools,
                                      self._parse_tool, ReplyPolicy.for_call(
                                          self.campaign, self.info.variables,
                                          self.config.lines))
        if self.grounding is not None:
            self.pipeline.direct = self.grounding.direct
        self.tasks = AgentTasks(self.pipeline, self.actions, self.context, self.config, call,
                                self._opening_text(), self._events.put_nowait, self.clock)
        if self.custom is not None:
            self.tasks.custom = CustomCalls(
                self.custom, self.pipeline, self.context, self.clock, self.config.lines,
                call_id=self.info.call_id, agent=self.campaign.agent.name_of_profile(),
                record=self.ports.tool_calls)
        self.core = TurnTaking(
            self.campaign, self.config, self.disclosure, self.disposition,
            lambda: call.output.queued_seconds, can_transfer=self.actions.can_transfer,
            voicemail_text=render(self.campaign.voicemail.message or "", self.info.variables),
            call_id=self.info.call_id)
        limit = self.campaign.silence.max_call_duration_s + self.config.ending_grace_s + 60
        recorder = StereoRecorder(self._t0, max_seconds=limit)
        call.set_recording_tap(recorder)
        remove_listener = call.output.add_listener(self._on_frame)
        cid = self.info.call_id
        self._helpers += [asyncio.create_task(self._pump(call), name=f"pump-{cid}"),
                          asyncio.create_task(self._ticker(), name=f"tick-{cid}")]
        try:
            amd = self.campaign.amd
            if self._amd is None and amd == "asterisk" and self.info.amd_wait is not None:
                self._amd = await verdict_or_person(self.info.amd_wait, self.config.amd_wait_s,
                                                    cid)
            if self._amd is None and amd == "stream" and self.info.phone:  # outbound only
                self.screening = Screening(self._t0, cid, self.config.machine_detect)
            await self._apply(te.CallStarted(self._t0, self._amd, self.screening is not None,
                                             answered_t(self.info, self._t0, self._wall0)))
            while not self.core.done:
                await self._handle(await self._events.get())
            await self._last_words()
        except Exception:
            # A bug in the loop ends this call, but what it got so far is still saved.
            log.exception("voice session failed", extra={"call_id": cid})
            self.core.ended_by = "error"
        finally:
            await self._cancel_task()
            for task in self._helpers:
                task.cancel()
            await asyncio.gather(*self._helpers, self.jobs.close(), return_exceptions=True)
            remove_listener()
            call.set_recording_tap(None)
            forget = getattr(self.engines.llm, "forget", None)
            if forget is not None:  # its saved LLM states serve no other call
                forget(cid)
        if call.hangup_reason is None and self.core.transferred_at is None:
            await call.hangup(drain=False)
        self.context.commit_cut(call.output.played_position, playback.current)
        screened = self.screening.decision if self.screening is not None else None
        self.result = await write_result(
            self.info, self.config, self.context, self.disposition,
            screened.status if screened is not None else self._amd, self.core.ended_by,
            recorder, self._wall, self.ports.log, screened.cause if screened else None)

    async def _pump(self, call: CallAudio) -> None:
        async for ev in call.incoming():
            self._events.put_nowait(ev)

    async def _ticker(self) -> None:
        while True:
            await self.clock.sleep(self.config.tick_s)
            self._events.put_nowait(_TICK)

    def _wall(self, t: float) -> datetime:
        return self._wall0 + timedelta(seconds=t - self._t0)

    # --- events in -----------------------------------------------------------------------

    async def _handle(self, ev: _Queued) -> None:
        assert self.core is not None
        listener, screen = self.listener, self.screening
        now = self.clock.monotonic()
        outs: list[te.Event]
        match ev:
            case _Tick():
                outs = [*listener.tick(now), te.Tick(now, listener.active, listener.last_voice)]
                outs += screen.tick(now) if screen is not None else []
            case AudioIn():
                listener.detect_beep = self.core.mode == "voicemail"
                outs = listener.feed(ev, self._agent_audible(ev.t))
                outs += screen.audio(ev.t, *listener.last_heard) if screen is not None else []
            case Verdict():
                outs = listener.verdict(ev.check, ev.complete, now)
            case Dtmf():
                outs = [te.DtmfPressed(ev.digit, ev.t)]
            case Hangup():
                outs = [te.HungUp(ev.reason is HangupReason.LOCAL)]
            case te.Transcribed():
                self.jobs.delivered(ev.seq)
                outs = [ev, *(screen.heard(ev.text, now)  # (our echo is not the callee)
                              if screen is not None and not ev.own_words else [])]
            case te.Transferred():
                outs = [ev]
            case _:
                await self._task_done(ev)
                return
        for check, audio in listener.take_checks():
            self.jobs.check(check, audio)
        for out in outs:
            await self._apply(out)

    def _agent_audible(self, t: float) -> bool:
        assert self._call is not None and self.playback is not None
        return (self._call.output.queued_seconds > 0
                or t - self.playback.last_audio_t <= self.config.endpoint.echo_window_s)

    def _on_frame(self, frame: FrameSent) -> None:
        assert self.playback is not None
        self.playback.on_frame(frame)
        self.listener.played(frame.t, frame.pcm, frame.silent)

    async def _task_done(self, task: asyncio.Task[te.Outcome]) -> None:
        if task is not self._task:
            return  # cancelled; already handled
        self._task = None
        outcome: te.Outcome | None = None
        if not task.cancelled():
            exc = task.exception()
            if exc is not None:
                log.error("agent turn failed", exc_info=exc,
                          extra={"call_id": self.info.call_id})
                self.disclosure.abandoned()  # e.g. the opening's render failed
            else:
                outcome = task.result()
        await self._apply(te.AgentDone(self._task_id, outcome, self.clock.monotonic()))

    # --- actions out ---------------------------------------------------------------------

    async def _apply(self, ev: te.Event) -> None:
        assert self.core is not None
        for action in self.core.handle(ev):
            await self._do(action)

    async def _do(self, action: te.Action) -> None:
        assert self.playback is not None and self.pipeline is not None
        assert self._call is not None and self.tasks is not None
        match action:
            case te.Transcribe(seq=seq, audio=audio):
                self.jobs.transcribe(seq, audio)
            case te.CancelTranscribe(seq=seq):
                self.jobs.cancel(seq)
            case te.Say():
                release = asyncio.Event() if action.held else None
                self._start(action.task, self.tasks.say(action, release))
                self._release = release
            case te.OpenTurn():
                reply = self.pipeline.new_reply(speech_end=action.speech_end,
                                                live=not action.held)
                for key, value in (("transcript_ms", action.transcript_ms),
                                   ("endpoint_ms", action.endpoint_ms)):
                    if value is not None:
                        reply.latency[key] = value
                messages = self.context.messages(action.user)
                release = asyncio.Event() if action.held else None
                self._start(action.task, self.tasks.answer(reply, messages, release))
                self._held, self._release = (reply, release) if action.held else (None, None)
            case te.TransferTo(task=task, speak=speak):
                self._start(task, self.tasks.transfer(speak))
            case te.Release(endpoint_ms=endpoint_ms):
                if self._release is not None:  # a held reply, or the screened opening
                    if self._held is not None:
                        self._held.latency["endpoint_ms"] = endpoint_ms
                    self._release.set()
            case te.Cancel():
                await self._cancel_task()
            case te.Pause():
                self.playback.pause()
            case te.Resume():
                self.playback.resume()
            case te.Stop():
                current = self.playback.current
                await self._cancel_task()
                self.context.commit_cut(self.playback.stop(), current)
            case te.Record(said=said, greeting=greeting):
                self.context.add_callee(said, greeting=greeting)
            case te.AddNote(message=message):
                self.context.add_note(message)
            case te.OptOutNow(source=source):
                await self.actions.opt_out(self._phone, source)
            case te.Prefill():
                self._spawn(self.tasks.prefill(self.engines.llm, self._tools), "prefill")
            case te.HangupNow():
                await self._call.hangup(drain=False)
            case te.Finish():
                pass

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """A side task, cancelled with the call (finished ones are forgotten)."""
        self._helpers = [t for t in self._helpers if not t.done()]
        self._helpers.append(asyncio.create_task(coro, name=f"{name}-{self.info.call_id}"))

    async def _last_words(self) -> None:
        """The call is over, but what the callee was saying and the turns still being
        transcribed are kept (for `last_words_s` at most)."""
        for out in self.listener.flush(self.clock.monotonic()):
            await self._apply(out)
        deadline = self.clock.monotonic() + self.config.last_words_s
        while self.jobs.transcribing and self.clock.monotonic() < deadline:
            ev = await self._events.get()  # the ticker keeps this loop going
            if isinstance(ev, te.Transcribed):
                self.jobs.delivered(ev.seq)
                await self._apply(ev)

    def _start(self, task_id: int, coro: Coroutine[Any, Any, te.Outcome]) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()  # superseded (its completion is ignored)
        task = asyncio.create_task(coro, name=f"turn-{self.info.call_id}")
        self._task, self._task_id = task, task_id
        self._release = self._held = None
        task.add_done_callback(self._events.put_nowait)

    async def _cancel_task(self) -> None:
        task, self._task = self._task, None
        self._release = self._held = None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self.disclosure.abandoned()

    def _opening_text(self) -> str:
        return opening_line(self.campaign, self.info.variables, self.info.opening)

    def _parse_tool(self, call: ToolCall) -> ToolAction:
        if (custom := as_custom(call, self.custom)) is not None:
            return custom
        return parse_tool_call(call, now=self.clock.now(), zones=self._zones,
                               window=self.campaign.calling_window)
