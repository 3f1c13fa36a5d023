"""The real-time turn loop of one call: listen, endpoint, transcribe, think, speak, yield.

One `VoiceSession` per call is the AudioSocket server's `SessionHandler`. A single loop
consumes caller events and clock ticks in order, so state changes never race; the slow
work of an agent turn (STT, LLM, TTS) runs in one owned task that a barge-in cancels.
Time comes from the injected clock (and the `t` of events), never from real sleeps.

A turn starts *provisionally* at the callee's first short pause: it transcribes, runs the
LLM and synthesizes the first clauses while the endpointer is still making sure the callee
has finished, but it changes nothing (context, transcript, output) until the endpoint
confirms the turn. If the callee speaks again first, the provisional turn is cancelled and
a new one starts at the next pause. So the endpoint's silence is no longer on top of
STT + LLM + TTS; the agent answers as soon as both are done.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from televox_pbx.agent.dispositions import DispositionState
from televox_pbx.agent.hearing import screen
from televox_pbx.agent.optout import is_opt_out
from televox_pbx.agent.outcome import settle
from televox_pbx.agent.ports import TransferPort
from televox_pbx.agent.prompts import opening_line, system_prompt
from televox_pbx.agent.reply_policy import ReplyPolicy
from televox_pbx.agent.tools import (
    EndCall,
    InvalidTool,
    OptOut,
    ScheduleCallback,
    SetDisposition,
    ToolAction,
    Transfer,
    parse_tool_call,
    tools_schema,
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
    SessionHandler,
)
from televox_pbx.clock import Clock
from televox_pbx.config.campaign import Campaign
from televox_pbx.domain import AmdStatus, Disposition
from televox_pbx.store.transcripts import CallRecord, TurnRow
from televox_pbx.voice.call_setup import (
    AmdWait,
    CallInfo,
    CallLogPort,
    CallPorts,
    CallResult,
    Engines,
    SessionConfig,
    callee_zones,
    local_now,
)
from televox_pbx.voice.disclosure import Disclosure
from televox_pbx.voice.endpointing import (
    BeepDetector,
    EchoGate,
    Edge,
    Endpointer,
    SpeechEdge,
    rms,
)
from televox_pbx.voice.engines.resample import resample_pcm16 as to_rate
from televox_pbx.voice.interfaces import AudioChunk, ChatMessage
from televox_pbx.voice.recording import StereoRecorder
from televox_pbx.voice.trim import trim_leading_silence
from televox_pbx.voice.turns import ClauseSplitter, SpokenPiece, heard_prefix, split_disclosure

__all__ = ["CallInfo", "CallLogPort", "CallPorts", "CallResult", "Engines", "SessionConfig",
           "VoiceSession", "VoiceSessionFactory"]

log = logging.getLogger(__name__)

RATE = 8000
INTERRUPTED_MARK = " [interrupted]"
# Sounding chunks after a provisional turn took its audio that mean its last word was cut.
CLIPPED_CHUNKS = 2


# --- internal state ---------------------------------------------------------------------


@dataclass(slots=True)
class _Reply:
    """One agent utterance: what was queued, and where in the output stream it lies."""

    text_parts: list[str] = field(default_factory=list)
    pieces: list[SpokenPiece] = field(default_factory=list)
    started: float = 0.0
    interruptible: bool = True
    in_context: bool = True
    msg_index: int | None = None
    final_text: str | None = None
    interrupted: bool = False
    speech_end: float | None = None  # callee speech end this replies to (for latency)
    latency: dict[str, float] = field(default_factory=dict)
    first_frame: float | None = None
    live: bool = True  # False while its turn is provisional: audio is held, not queued
    held: list[tuple[str, bytes, bool]] = field(default_factory=list)  # clause, pcm, first
    discloses: bool = False  # the AI disclosure is rendered whole in it

    @property
    def text(self) -> str:
        return "".join(self.text_parts).strip()


@dataclass(slots=True)
class _CalleeTurn:
    audio: bytes
    started: float
    ended: float  # last speech heard
    detected: float = 0.0  # when the endpointer decided
    transcribed: bool = False
    # Set when the endpoint confirms the turn; until then its reply is held back.
    confirmed: asyncio.Event = field(default_factory=asyncio.Event)

    def confirm(self, at: float) -> None:
        self.detected = at
        self.confirmed.set()


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What a finished turn task asks the loop to do next."""

    action: OptOut | EndCall | Transfer | None = None
    source: str = "tool"
    spoke: bool = False
    restart_silence: bool = True  # False for the re-prompt: it must not reset the timer


class _Tick:
    pass


_TICK = _Tick()
Mode = Literal["conversation", "voicemail", "ending"]
_Event = InEvent | _Tick | asyncio.Task[_Outcome]


class VoiceSession:
    def __init__(self, info: CallInfo, engines: Engines, ports: CallPorts, clock: Clock,
                 config: SessionConfig | None = None) -> None:
        self.info = info
        self.engines = engines
        self.ports = ports
        self.clock = clock
        self.config = config or SessionConfig()
        self.campaign: Campaign = info.campaign
        self.result: CallResult | None = None
        self._lines = self.config.lines
        self._zones = callee_zones(info, info.phone)
        self._messages: list[ChatMessage] = [self._system_message()]
        self._tools = tools_schema(transfer_available=self.campaign.transfer is not None
                                   and ports.transfer is not None)
        self._disp = DispositionState()
        self._log: list[TurnRow | _Reply] = []
        self._callee_texts: list[str] = []
        self._events: asyncio.Queue[_Event] = asyncio.Queue()
        self._endpointer = Endpointer(self.config.endpoint)
        self._echo = EchoGate(self.config.endpoint)
        self._beep = BeepDetector(RATE)
        self._vad = engines.vad.new_stream()
        self._spec_for: float | None = None  # the speech end a provisional turn covers
        self._spec_clipped = 0  # sounding chunks after the provisional turn took its audio
        # (pause, end) of the faint sound that made us drop a provisional turn as clipped,
        # the pause named by the speech end it follows: the turn starts again once the
        # sound has died away.
        self._fading: tuple[float, float] | None = None
        self._preroll: deque[bytes] = deque()
        self._preroll_bytes = 0
        self._utt = bytearray()
        self._utt_start = 0.0
        self._pending_audio = b""
        self._held_turn: _CalleeTurn | None = None
        self._helpers: list[asyncio.Task[None]] = []
        self._mode: Mode = "conversation"
        self._task: asyncio.Task[_Outcome] | None = None
        self._task_turn: _CalleeTurn | None = None
        self._reply: _Reply | None = None
        self._done = False
        self._ended_by = "callee"
        self._ending_since = 0.0
        self._transferred_at: float | None = None
        self._anchor = 0.0  # silence is measured from here
        self._anchor_pending = False
        self._reprompted = False
        self._last_voice = 0.0
        self._last_agent_audio = -1e9
        self._t0 = 0.0
        self._wall0 = datetime.min
        self._call: CallAudio | None = None
        self._phone = info.phone
        self._amd = info.amd
        self._discl = Disclosure()  # the opening sets what to disclose

    def _system_message(self) -> ChatMessage:
        return ChatMessage("system", system_prompt(
            self.campaign, self.info.variables, local_now(self.clock.now(), self._zones)))

    # --- the SessionHandler ------------------------------------------------------------

    async def __call__(self, call: CallAudio) -> None:
        self._call = call
        self._phone = self.info.phone or call.caller_id or ""
        if not self.info.phone:  # inbound: the caller's zones are known only now
            self._zones = callee_zones(self.info, self._phone)
            self._messages[0] = self._system_message()
        self._amd = self.info.amd
        self._t0 = self.clock.monotonic()
        self._wall0 = self.clock.now()
        self._anchor = self._last_voice = self._t0
        limit = self.campaign.silence.max_call_duration_s + self.config.ending_grace_s + 60
        recorder = StereoRecorder(self._t0, max_seconds=limit)
        call.set_recording_tap(recorder)
        remove_listener = call.output.add_listener(self._on_frame)
        helpers = self._helpers
        helpers += [asyncio.create_task(self._pump(call), name=f"pump-{self.info.call_id}"),
                    asyncio.create_task(self._ticker(), name=f"tick-{self.info.call_id}")]
        try:
            if self._amd is None and self.campaign.amd and self.info.amd_wait is not None:
                self._amd = await self._await_amd(self.info.amd_wait)
            await self._start()
            while not self._done:
                await self._handle(await self._events.get())
        except Exception:
            # A bug in the loop ends this call, but what it got so far is still saved.
            log.exception("voice session failed", extra={"call_id": self.info.call_id})
            self._ended_by = "error"
        finally:
            await self._cancel_task()
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            remove_listener()
            call.set_recording_tap(None)
        if call.hangup_reason is None and self._transferred_at is None:
            await call.hangup(drain=False)
        await self._after_call(recorder)

    async def _pump(self, call: CallAudio) -> None:
        async for ev in call.incoming():
            self._events.put_nowait(ev)

    async def _ticker(self) -> None:
        while True:
            await self.clock.sleep(self.config.tick_s)
            self._events.put_nowait(_TICK)

    async def _handle(self, ev: _Event) -> None:
        if isinstance(ev, _Tick):
            await self._on_tick(self.clock.monotonic())
        elif isinstance(ev, AudioIn):
            await self._on_audio(ev)
        elif isinstance(ev, Dtmf):
            await self._on_dtmf(ev.digit)
        elif isinstance(ev, Hangup):
            self._on_hangup(ev)
        elif isinstance(ev, asyncio.Task):
            await self._on_task_done(ev)

    def _rel(self, t: float) -> float:
        return t - self._t0

    def _wall(self, t: float) -> datetime:
        return self._wall0 + timedelta(seconds=t - self._t0)

    # --- start and end -----------------------------------------------------------------

    async def _await_amd(self, wait: AmdWait) -> AmdStatus | None:
        """AMD() ran in the dialplan before the audio connected, but its verdict travels
        over AMI and may come after the audio: wait for it, `amd_wait_s` at most. With no
        verdict by then (AMI slow or down) a person may be listening: treat it as HUMAN,
        so the agent speaks (disclosure first) rather than stay silent or hang up."""
        try:
            return await wait(self.config.amd_wait_s)
        except Exception:
            log.warning("AMD verdict lookup failed; treated as human", exc_info=True,
                        extra={"call_id": self.info.call_id})
            return None

    async def _start(self) -> None:
        # NOTSURE, HANGUP and no verdict at all are answered as a person: the opening,
        # with its AI disclosure, is spoken. Only a MACHINE verdict skips it.
        if self._amd is AmdStatus.MACHINE:
            self._disp.set(Disposition.VOICEMAIL, "amd")
            if self.campaign.voicemail.action == "hangup":
                self._ended_by = "voicemail"
                self._end(None)
            else:
                self._mode = "voicemail"
            return
        text = opening_line(self.campaign, self.info.variables, self.info.opening)
        before, sentence, after = split_disclosure(text)
        self._discl = Disclosure(sentence)

        # Not interruptible by voice: the AI disclosure in it must be heard ("Hello?" over
        # it is answered afterwards). DTMF still cuts it short; then the disclosure is
        # owed and said first at the agent's next turn (voice/disclosure.py).
        async def run() -> _Outcome:
            reply = self._new_reply(interruptible=False)
            reply.text_parts.append(text)
            if before:
                await self._synth_clause(reply, before)
            if self._discl.claim(reply) is not None:
                await self._speak_disclosure(reply)
            if after:
                await self._synth_clause(reply, after)
            self._commit(reply, text)
            return _Outcome()
        self._start_task(run())
        self._prefill([*self._messages, ChatMessage("assistant", text)])

    def _claim_disclosure(self, reply: _Reply) -> bool:
        """Make `reply` start with the AI disclosure when it is owed."""
        text = self._discl.claim(reply)
        if text is not None:
            reply.text_parts.append(text + " ")
        return text is not None

    async def _speak_disclosure(self, reply: _Reply) -> None:
        assert self._call is not None and self._discl.text is not None
        await self._synth_clause(reply, self._discl.text)
        reply.discloses = True
        if reply.live:
            self._discl.queued(reply, reply.pieces, self._call.output.played_position)

    async def _say(self, reply: _Reply, line: str) -> None:
        """A fixed line (the owed disclosure first), recorded as said."""
        if self._claim_disclosure(reply):
            await self._speak_disclosure(reply)
        await self._synth(reply, line)
        self._commit(reply, reply.text)

    def _prefill(self, messages: list[ChatMessage]) -> None:
        """While the opening plays, let the LLM evaluate the prompt prefix (if it can), so
        the first reply only pays for the callee's words."""
        prefill = getattr(self.engines.llm, "prefill", None)
        if prefill is None:
            return

        async def run() -> None:
            try:
                await prefill(messages, self._tools)
            except Exception:
                log.warning("LLM prefill failed", exc_info=True,
                            extra={"call_id": self.info.call_id})
        self._helpers.append(asyncio.create_task(run(), name=f"prefill-{self.info.call_id}"))

    def _end(self, line: str | None) -> None:
        """Say `line` (not interruptible), then hang up once it has played."""
        if self._mode == "ending":
            return
        self._mode = "ending"
        self._ending_since = self.clock.monotonic()
        self._start_task(self._say_then_hangup(line))

    async def _say_then_hangup(self, line: str | None) -> _Outcome:
        assert self._call is not None
        if line:
            await self._say(self._new_reply(interruptible=False), line)
        await self._call.hangup(drain=True)
        return _Outcome()

    def _on_hangup(self, ev: Hangup) -> None:
        if ev.reason is not HangupReason.LOCAL and self._mode != "ending" \
                and self._transferred_at is None:
            self._ended_by = "callee"
        self._done = True

    async def _after_call(self, recorder: StereoRecorder) -> None:
        call = self._call
        assert call is not None
        self._commit_cut(call.output.played_position)
        disposition = settle(self.campaign, self._disp.value, self._turn_rows(), self._amd)
        turns = self._turn_rows()
        path: Path | None = None
        seconds: float | None = None
        if self.config.recordings_dir is not None:
            path = self.config.recordings_dir / self.campaign.name / f"{self.info.call_id}.wav"
            try:
                seconds = await asyncio.to_thread(recorder.write_wav, path)
            except OSError:
                log.exception("recording not written", extra={"call_id": self.info.call_id})
                path = None
        self.result = CallResult(disposition, turns, path, self._ended_by)
        try:
            await self.ports.log.save_call(CallRecord(
                self.info.call_id, turns, disposition.value, path, seconds))
        except Exception:
            log.exception("call record not saved", extra={"call_id": self.info.call_id})
        log.info("call finished", extra={"call_id": self.info.call_id,
                                          "disposition": disposition.value,
                                          "ended_by": self._ended_by, "turns": len(turns)})

    def _turn_rows(self) -> list[TurnRow]:
        rows: list[TurnRow] = []
        for item in self._log:
            i = len(rows) + 1
            if isinstance(item, TurnRow):
                rows.append(TurnRow(i, item.speaker, item.text, item.started_at,
                                    item.ended_at, item.interrupted, item.latency))
                continue
            text = item.final_text if item.final_text is not None else item.text
            if not text:
                continue  # nothing of it was heard
            ended = item.pieces[-1].end if item.pieces else 0
            seconds = (ended - item.pieces[0].start) / (RATE * 2) if item.pieces else 0.0
            start_t = item.first_frame if item.first_frame is not None else item.started
            rows.append(TurnRow(i, "agent", text, self._wall(start_t),
                                self._wall(start_t + seconds), item.interrupted,
                                item.latency or None))
        return rows

    # --- clock ticks: endpointing by time, silence, limits -------------------------------

    async def _on_tick(self, now: float) -> None:
        call = self._call
        assert call is not None
        if self._transferred_at is not None:
            if now - self._transferred_at >= self.config.transfer_grace_s:
                self._done = True
            return
        if self._mode == "ending":
            if now - self._ending_since >= self.config.ending_grace_s:
                await call.hangup(drain=False)
                self._done = True
            return
        if self._rel(now) >= self.campaign.silence.max_call_duration_s:
            self._ended_by = "max_duration"
            await self._interrupt()
            self._end(self._lines.max_duration_goodbye)
            return
        edge = self._endpointer.tick(now)
        if edge is not None:
            await self._on_edge(edge)
        self._maybe_speculate(now)
        if self._mode == "voicemail":
            if now - self._last_voice >= self.config.voicemail_silence_s:
                self._leave_voicemail()
            return
        if self._busy():
            return
        if self._anchor_pending:
            self._anchor, self._anchor_pending = now, False
        silent = now - self._anchor
        silence = self.campaign.silence
        if silent >= silence.hangup_after_s:
            self._ended_by = "silence"
            self._end(self._lines.silence_goodbye)
        elif silent >= silence.reprompt_after_s and not self._reprompted:
            self._reprompted = True
            self._speak(self._lines.reprompt, interruptible=True, restart_silence=False)

    def _busy(self) -> bool:
        assert self._call is not None
        return (self._task is not None or self._call.output.queued_seconds > 0
                or self._endpointer.speaking or self._endpointer.pending_onset is not None)

    # --- caller audio --------------------------------------------------------------------

    def _on_frame(self, frame: FrameSent) -> None:
        self._discl.played(frame.position)
        if frame.silent:
            return
        self._last_agent_audio = frame.t
        self._echo.played(frame.t, rms(frame.pcm))
        reply = self._reply
        if reply is not None and reply.first_frame is None and reply.pieces \
                and frame.position > reply.pieces[0].start:
            reply.first_frame = frame.t
            if reply.speech_end is not None:
                reply.latency["first_frame_ms"] = _ms(frame.t - reply.speech_end)

    async def _on_audio(self, ev: AudioIn) -> None:
        pcm = to_rate(ev.pcm, ev.sample_rate, RATE)
        if not pcm:
            return
        t = ev.t
        duration = len(pcm) / (RATE * 2)
        assert self._call is not None
        agent_audible = (self._call.output.queued_seconds > 0
                         or t - self._last_agent_audio <= self.config.endpoint.echo_window_s)
        prob = self._vad.speech_prob(to_rate(pcm, RATE, self.engines.vad.sample_rate))
        if agent_audible and prob > 0 and self._echo.is_echo(t, pcm):
            prob = 0.0
        if prob >= self.config.endpoint.threshold:
            self._last_voice = t + duration
        self._preroll.append(pcm)
        self._preroll_bytes += len(pcm)
        while self._preroll_bytes - len(self._preroll[0]) >= self.config.preroll_s * RATE * 2:
            self._preroll_bytes -= len(self._preroll.popleft())
        if self._endpointer.speaking:
            self._utt += pcm
        if self._mode == "voicemail" and self._beep.feed(pcm):
            self._leave_voicemail()
            return
        level = rms(pcm)
        edge = self._endpointer.feed(prob, t, duration, agent_playing=agent_audible,
                                     level=level)
        faint = level >= self.config.endpoint.clipped_level_ratio * self._endpointer.peak
        if self._spec_for is not None:
            if self._endpointer.last_speech != self._spec_for:
                await self._drop_provisional()  # the callee went on talking
            elif faint:
                self._spec_clipped += 1
                if self._spec_clipped >= CLIPPED_CHUNKS:
                    # The callee's last sound was still fading in when the turn took its
                    # audio ("credits" heard as "credit"): start again on all of it once
                    # it has died away, instead of waiting for the endpoint (~0.6 s more).
                    await self._drop_provisional()
                    self._fading = (self._endpointer.last_speech, t + duration)
        elif faint and self._fading is not None \
                and self._fading[0] == self._endpointer.last_speech:
            self._fading = (self._fading[0], t + duration)
        if edge is not None:
            await self._on_edge(edge)
        self._maybe_speculate(t + duration)

    def _maybe_speculate(self, now: float) -> None:
        """At the callee's first short pause, start the turn provisionally (see the module
        docstring): if the pause is the end, the reply is ready or nearly so."""
        after = self.config.speculate_after_s
        ep = self._endpointer
        if after is None or self._mode != "conversation" or not ep.speaking \
                or self._task is not None \
                or now - ep.last_speech < after or self._spec_for == ep.last_speech \
                or (self._fading is not None and self._fading[0] == ep.last_speech
                    and now - self._fading[1] < after):
            return
        self._spec_for, self._spec_clipped = ep.last_speech, 0
        turn = _CalleeTurn(self._pending_audio + bytes(self._utt), self._utt_start,
                           ep.last_speech)
        self._start_turn(turn)

    async def _drop_provisional(self) -> None:
        turn = self._task_turn
        if turn is not None and not turn.confirmed.is_set():
            await self._cancel_task()
        self._spec_for = None

    async def _on_edge(self, edge: SpeechEdge) -> None:
        if edge.edge is Edge.START:
            self._utt = bytearray(b"".join(self._preroll))
            self._utt_start = edge.at
            if self._mode != "conversation":
                return
            self._reprompted = False
            if self._agent_active():
                log.info("barge-in", extra={"call_id": self.info.call_id,
                                            "onset_s": round(self._rel(edge.at), 3)})
                await self._interrupt()
            return
        audio, self._utt = bytes(self._utt), bytearray()
        self._anchor = edge.at
        if self._mode != "conversation":
            return
        now = self.clock.monotonic()
        provisional = self._task_turn
        if self._spec_for == edge.at and provisional is not None \
                and not provisional.confirmed.is_set() and self._spec_clipped < CLIPPED_CHUNKS:
            # Nothing was said after the pause the provisional turn started at: it is the
            # turn. Its reply may already be waiting.
            self._spec_for, self._pending_audio = None, b""
            provisional.confirm(now)
            return
        await self._drop_provisional()
        turn = _CalleeTurn(self._pending_audio + audio, self._utt_start, edge.at)
        turn.confirm(now)
        self._pending_audio = b""
        if self._task is not None:
            # Talking over a line that must be heard (the opening with its AI disclosure):
            # answer once it has been said.
            held = self._held_turn
            if held is not None:
                turn.audio, turn.started = held.audio + turn.audio, held.started
            self._held_turn = turn
            return
        self._start_turn(turn)

    def _start_turn(self, turn: _CalleeTurn) -> None:
        self._task_turn = turn
        self._start_task(self._callee_turn(turn))

    def _agent_active(self) -> bool:
        """Speaking, and a callee's voice may cut it (the disclosure it may not)."""
        assert self._call is not None
        reply = self._reply
        if (reply is not None and not reply.interruptible) or self._discl.playing:
            return False
        return self._task is not None or self._call.output.queued_seconds > 0

    # --- barge-in --------------------------------------------------------------------------

    async def _interrupt(self) -> None:
        """Stop talking now; keep in the context only what the callee heard."""
        assert self._call is not None
        output = self._call.output
        played = output.played_position  # before clear(), which counts dropped audio
        turn = self._task_turn
        await self._cancel_task()
        if turn is not None and not turn.transcribed and turn.confirmed.is_set():
            self._pending_audio = turn.audio  # cut off while thinking: hear it again
        if output.queued_seconds > 0:
            output.clear()
        self._discl.cut(played)
        self._commit_cut(played)
        self._reply = None

    def _commit_cut(self, played: int) -> None:
        """Record, of every reply whose audio went past `played`, only what was heard: a
        reply queued behind another (an answer behind the opening) takes the earlier
        one's tail with it, though that one was recorded whole when it was queued."""
        for item in self._log:
            if isinstance(item, _Reply) and (
                    (item is self._reply and item.final_text is None)
                    or (item.pieces and played < item.pieces[-1].end)):
                self._commit_heard(item, played)

    def _commit_heard(self, reply: _Reply, played: int) -> None:
        heard, cut = heard_prefix(reply.pieces, played)
        if len(heard) < len(reply.text):
            cut = True
        reply.interrupted = cut
        self._commit(reply, heard)

    def _commit(self, reply: _Reply, text: str) -> None:
        """Record what the agent said (or, after a barge-in, what was heard of it)."""
        reply.final_text = text
        if not reply.in_context:
            return
        content = text + INTERRUPTED_MARK if reply.interrupted else text
        if reply.msg_index is None:
            if not text:
                return
            reply.msg_index = len(self._messages)
            self._messages.append(ChatMessage("assistant", content))
        elif not text and reply.msg_index == len(self._messages) - 1:
            self._messages.pop()
            reply.msg_index = None
        else:
            self._messages[reply.msg_index] = ChatMessage("assistant",
                                                          content or INTERRUPTED_MARK.strip())

    # --- the turn task -------------------------------------------------------------------

    def _start_task(self, coro: Coroutine[Any, Any, _Outcome]) -> None:
        task = asyncio.create_task(coro, name=f"turn-{self.info.call_id}")
        self._task = task
        task.add_done_callback(self._events.put_nowait)

    async def _cancel_task(self) -> None:
        task, self._task = self._task, None
        self._task_turn = None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self._discl.abandoned()

    async def _on_task_done(self, task: asyncio.Task[_Outcome]) -> None:
        if task is not self._task:
            return  # cancelled by a barge-in; already handled
        self._task = None
        self._task_turn = None
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("agent turn failed", exc_info=exc, extra={"call_id": self.info.call_id})
            self._discl.abandoned()  # e.g. the opening's render failed: say it next turn
            if self._mode == "ending":
                self._done = True
            return
        outcome = task.result()
        if self._mode == "ending":
            return
        match outcome.action:
            case OptOut():
                await self._opt_out(outcome.source)
            case EndCall():
                self._ended_by = "agent"
                self._end(None if outcome.spoke else self._lines.goodbye)
            case Transfer():
                await self._transfer(speak=not outcome.spoke)
            case None:
                self._anchor_pending = outcome.restart_silence or self._anchor_pending
                held, self._held_turn = self._held_turn, None
                if held is not None:
                    self._start_turn(held)

    def _speak(self, text: str, *, interruptible: bool, restart_silence: bool = True) -> None:
        async def run() -> _Outcome:
            await self._say(self._new_reply(interruptible=interruptible), text)
            return _Outcome(restart_silence=restart_silence)
        self._start_task(run())

    def _new_reply(self, *, interruptible: bool, speech_end: float | None = None) -> _Reply:
        reply = _Reply(started=self.clock.monotonic(), interruptible=interruptible,
                       speech_end=speech_end)
        self._open_reply(reply)
        return reply

    def _open_reply(self, reply: _Reply) -> None:
        """The reply becomes the one being said: logged, and its held audio queued."""
        self._reply = reply
        self._log.append(reply)
        reply.live = True
        held, reply.held = reply.held, []
        for clause, pcm, first in held:
            self._enqueue(reply, clause, pcm, first)
        if reply.discloses and self._call is not None:
            self._discl.queued(reply, reply.pieces, self._call.output.played_position)

    async def _synth(self, reply: _Reply, text: str) -> None:
        reply.text_parts.append(text)
        await self._synth_clause(reply, text)

    async def _callee_turn(self, turn: _CalleeTurn) -> _Outcome:
        """Transcribe and answer; nothing is recorded or said before `turn.confirmed`."""
        heard = await self.engines.stt.transcribe(AudioChunk(turn.audio, RATE))
        text = screen(heard, turn.audio, RATE).text  # noise is never answered
        transcript_ms = _ms(self.clock.monotonic() - turn.ended)
        if not text or is_opt_out(text):
            await turn.confirmed.wait()
            turn.transcribed = True
            if not text:
                return _Outcome()
            self._record_callee(turn, text)
            # The law, not the model, decides this one: act before the LLM runs.
            return _Outcome(OptOut(), source="optout")
        user = ChatMessage("user", text)

        def confirmed() -> None:
            turn.transcribed = True
            self._record_callee(turn, text)
            self._messages.append(user)
            reply.latency["endpoint_ms"] = _ms(turn.detected - turn.ended)

        reply = _Reply(started=self.clock.monotonic(), speech_end=turn.ended,
                       latency={"transcript_ms": transcript_ms})
        return await self._respond(reply, messages=[*self._messages, user],
                                   gate=(turn.confirmed, confirmed))

    def _record_callee(self, turn: _CalleeTurn, text: str) -> None:
        self._log.append(TurnRow(0, "callee", text, self._wall(turn.started),
                                 self._wall(turn.ended)))
        self._callee_texts.append(text)

    async def _respond(self, reply: _Reply, followups: int = 0, *,
                       messages: list[ChatMessage] | None = None,
                       gate: tuple[asyncio.Event, Callable[[], None]] | None = None
                       ) -> _Outcome:
        """One LLM round: stream text into clauses spoken as they complete, collect tools.
        With a `gate`, the reply is prepared but held (nothing recorded or queued) until
        the event is set; then the callback runs and the reply goes live."""
        speech_end = reply.speech_end
        clauses: asyncio.Queue[str | None] = asyncio.Queue()
        actions: list[ToolAction] = []
        splitter = ClauseSplitter(self.config.min_clause_chars,
                                   self.config.first_clause_chars,
                                   self.config.first_clause_max_words)
        messages = list(self._messages) if messages is None else messages
        if gate is None:
            self._open_reply(reply)
        else:
            reply.live = False  # held until release() opens it
        disclose = self._claim_disclosure(reply)  # owed: said before the reply's words

        first_said = asyncio.Event()  # the first clause is synthesized
        rendering = [False]  # consume() is synthesizing a clause

        def starving() -> bool:
            """This reply has been silent on the line for `starve_s` mid-reply, with
            nothing on the way: the next clause should not wait for its full stop."""
            starve = self.config.starve_s
            return (starve is not None and reply.live and bool(reply.pieces)
                    and not rendering[0] and clauses.empty() and self._call is not None
                    and self._call.output.queued_seconds == 0
                    and self.clock.monotonic() - self._last_agent_audio >= starve)

        async def produce() -> None:
            policy = ReplyPolicy.for_call(self.campaign, self.info.variables, self._lines)
            stream = policy.stream(self.engines.llm, messages, self._tools)
            try:
                async for delta in stream:
                    if speech_end is not None and "first_token_ms" not in reply.latency:
                        reply.latency["first_token_ms"] = _ms(self.clock.monotonic() - speech_end)
                    if delta.text:
                        reply.text_parts.append(delta.text)
                        ready = splitter.push(delta.text)
                        if not ready and starving():
                            ready = [c for c in (splitter.cut_early(),) if c]
                        for clause in ready:
                            clauses.put_nowait(clause)
                        if ready and not first_said.is_set():
                            # The callee waits on this clause's audio alone: ask the LLM
                            # for nothing more until it is rendered (they share the CPU).
                            await first_said.wait()
                    if delta.tool_call is not None:
                        action = parse_tool_call(delta.tool_call, now=self.clock.now(),
                                                 zones=self._zones,
                                                 window=self.campaign.calling_window)
                        actions.append(action)
                        if isinstance(action, OptOut):
                            return  # stop talking; the loop confirms and hangs up
                rest = splitter.flush()
                if rest:
                    clauses.put_nowait(rest)
            finally:
                clauses.put_nowait(None)
                aclose = getattr(stream, "aclose", None)
                if aclose is not None:
                    await aclose()

        async def consume() -> None:
            if disclose:
                await self._speak_disclosure(reply)
            while (clause := await clauses.get()) is not None:
                rendering[0] = True
                try:
                    await self._synth_clause(reply, clause)
                finally:
                    rendering[0] = False
                first_said.set()
            first_said.set()

        async def release(event: asyncio.Event, on_confirm: Callable[[], None]) -> None:
            await event.wait()
            on_confirm()
            self._open_reply(reply)

        async with asyncio.TaskGroup() as tg:
            tg.create_task(produce())
            tg.create_task(consume())
            if gate is not None:
                tg.create_task(release(*gate))
        spoken = " ".join(p.text for p in reply.pieces)
        self._commit(reply, spoken)
        own = reply.pieces
        if disclose and own and own[0].text == self._discl.text:
            own = own[1:]  # the owed disclosure is not an answer: a tool result still needs one
        said = bool(own)
        terminal: OptOut | EndCall | Transfer | None = None
        for action in actions:
            result = await self._apply_tool(action)
            if isinstance(action, OptOut | EndCall | Transfer):
                terminal = terminal or action
            elif result is not None:
                self._messages.append(ChatMessage("tool", result))
        if terminal is not None:
            return _Outcome(terminal, source="tool", spoke=said)
        if not said and actions and followups < self.config.max_followups:
            return await self._respond(_Reply(started=self.clock.monotonic()), followups + 1)
        return _Outcome(spoke=said)

    async def _synth_clause(self, reply: _Reply, clause: str) -> None:
        first = True
        async for chunk in self.engines.tts.synthesize(clause):
            pcm = to_rate(chunk.pcm, chunk.sample_rate, RATE)
            if first and not reply.pieces and not reply.held:
                pcm = trim_leading_silence(pcm, RATE)  # the callee is waiting for this
            if not pcm:
                continue
            if reply.speech_end is not None and "first_audio_ms" not in reply.latency:
                reply.latency["first_audio_ms"] = _ms(self.clock.monotonic() - reply.speech_end)
            if reply.live:
                self._enqueue(reply, clause, pcm, first)
            else:
                reply.held.append((clause, pcm, first))
            first = False

    def _enqueue(self, reply: _Reply, clause: str, pcm: bytes, first: bool) -> None:
        """Queue audio to the pacer; `first` starts a new piece, else extends the last."""
        assert self._call is not None
        end = self._call.output.enqueue(pcm)
        if first or not reply.pieces:
            reply.pieces.append(SpokenPiece(clause, end - len(pcm), end))
        else:
            last = reply.pieces[-1]
            reply.pieces[-1] = SpokenPiece(clause, last.start, end)

    async def _apply_tool(self, action: ToolAction) -> str | None:
        """Side effects of non-terminal tools; returns the result shown to the LLM."""
        match action:
            case SetDisposition(disposition=disposition):
                self._disp.set(disposition, "tool")
                return json.dumps({"set_disposition": disposition.value, "ok": True})
            case ScheduleCallback(due_at=due_at, zone=zone):
                try:
                    await self.ports.callbacks.schedule(self.info.call_id, due_at, zone)
                except Exception:
                    log.exception("callback not stored", extra={"call_id": self.info.call_id})
                    return json.dumps({"schedule_callback": "failed"})
                self._disp.set(Disposition.CALLBACK, "tool")
                return json.dumps({"schedule_callback": due_at.isoformat(), "ok": True})
            case InvalidTool(name=name, error=error):
                return json.dumps({name: "error", "error": error})
        return None

    # --- actions ---------------------------------------------------------------------

    async def _opt_out(self, source: str) -> None:
        self._disp.set(Disposition.OPT_OUT, source)
        self._ended_by = "opt_out"
        try:
            await self.ports.dnc.add(self._phone, reason="callee asked on the call",
                                     source=f"call:{source}")
        except Exception:
            log.exception("DNC add failed", extra={"call_id": self.info.call_id})
        log.info("opt-out", extra={"call_id": self.info.call_id, "source": source})
        await self._interrupt()
        self._end(self._lines.opt_out_confirm)

    async def _transfer(self, *, speak: bool) -> None:
        target = self.campaign.transfer
        port = self.ports.transfer
        if target is None or port is None:
            self._messages.append(ChatMessage("tool", json.dumps(
                {"transfer": "error", "error": "no transfer target configured"})))
            self._speak(self._lines.transfer_unavailable, interruptible=True)
            return
        if self._disp.value is None:
            self._disp.set(Disposition.INTERESTED, "transfer")
        self._mode = "ending"
        self._ending_since = self.clock.monotonic()
        self._start_task(self._do_transfer(port, speak))

    async def _do_transfer(self, port: TransferPort, speak: bool) -> _Outcome:
        assert self._call is not None and self.campaign.transfer is not None
        if speak:
            await self._say(self._new_reply(interruptible=False), self._lines.transfer)
        await self._call.output.wait_drained()
        try:
            await port.transfer(self.info.call_id, self.campaign.transfer)
        except Exception:
            log.exception("transfer failed", extra={"call_id": self.info.call_id})
            await self._say(self._new_reply(interruptible=False),
                            self._lines.transfer_unavailable)
            await self._call.hangup(drain=True)
            return _Outcome()
        self._ended_by = "transfer"
        self._transferred_at = self.clock.monotonic()
        return _Outcome()

    async def _on_dtmf(self, digit: str) -> None:
        if self._mode != "conversation":
            return
        action = self.campaign.dtmf_actions.get(digit)
        log.info("dtmf", extra={"call_id": self.info.call_id, "digit": digit,
                                "action": action or ""})
        if action == "opt_out":
            await self._opt_out("dtmf")
            return
        if action == "end_call":
            await self._interrupt()
            self._ended_by = "agent"
            self._end(self._lines.goodbye)
            return
        if action == "transfer":
            await self._interrupt()
            await self._transfer(speak=True)
            return
        if action == "interested":
            self._disp.set(Disposition.INTERESTED, "dtmf")
            note = f"[The caller pressed {digit}: they are interested.]"
        elif action == "callback":
            self._disp.set(Disposition.CALLBACK, "dtmf")
            note = f"[The caller pressed {digit}: they want a call back. Ask when.]"
        else:
            note = f"[The caller pressed the key {digit}.]"
        if action is None and self._agent_active():
            self._messages.append(ChatMessage("user", note))
            return
        await self._interrupt()
        self._messages.append(ChatMessage("user", note))
        now = self.clock.monotonic()
        self._start_task(self._respond(_Reply(started=now, speech_end=now)))

    def _leave_voicemail(self) -> None:
        message = self.campaign.voicemail.message or ""
        self._ended_by = "voicemail"
        self._end(render(message, self.info.variables))


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 1)


class VoiceSessionFactory:
    """What the app calls per answered call; returns the server's SessionHandler."""

    def __init__(self, engines: Engines, ports: CallPorts, clock: Clock,
                 config: SessionConfig | None = None) -> None:
        self.engines = engines
        self.ports = ports
        self.clock = clock
        self.config = config or SessionConfig()

    def create(self, *, campaign: Campaign, call_id: str, phone: str,
               variables: Mapping[str, str] | None = None, zone: str | None = None,
               amd: AmdStatus | None = None, amd_wait: AmdWait | None = None,
               opening: str | None = None) -> VoiceSession:
        """One session (a SessionHandler) per call. For inbound calls pass phone="" and
        the caller's number is taken from the connection."""
        info = CallInfo(call_id=call_id, phone=phone, campaign=campaign,
                        variables=dict(variables or {}), zone=zone, amd=amd,
                        amd_wait=amd_wait, opening=opening)
        return VoiceSession(info, self.engines, self.ports, self.clock, self.config)

    def inbound_handler(self, campaign: Campaign, *, opening: str | None = None,
                        variables: Mapping[str, str] | None = None) -> SessionHandler:
        """The AudioSocket server's handler for inbound calls: one session per call, the
        caller's number taken from the announcement. `opening` gets a disclosure if it
        lacks one."""
        async def handle(call: CallAudio) -> None:
            session = self.create(campaign=campaign, call_id=call.call_id, phone="",
                                  variables=variables, opening=opening)
            await session(call)
        return handle
