"""What a voice session is built from (engines, ports, call facts, tuning) and leaves.

Kept apart from the turn loop so the app can build these without importing it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from televox_pbx.agent.custom_tools import ToolCallLog
from televox_pbx.agent.ports import CallbackPort, DncPort, TransferPort
from televox_pbx.agent.prompts import LINES, Lines
from televox_pbx.campaigns.phones import normalize_phone
from televox_pbx.campaigns.windows import resolve_zones
from televox_pbx.config.campaign import Campaign
from televox_pbx.domain import AmdStatus, Disposition
from televox_pbx.knowledge.index import KnowledgeIndex
from televox_pbx.store.transcripts import CallRecord, TurnRow
from televox_pbx.voice.endpointing import EndpointConfig
from televox_pbx.voice.interfaces import Llm, Stt, Tts, TurnModel, Vad
from televox_pbx.voice.machine_detect import DetectConfig


@dataclass(frozen=True, slots=True)
class Engines:
    vad: Vad
    stt: Stt
    llm: Llm
    tts: Tts
    turn: TurnModel | None = None  # end-of-turn model; None: silence alone ends turns
    # Agents' own voices (agent file `voice:`), by manifest id; `tts` speaks for the rest.
    voices: Mapping[str, Tts] = field(default_factory=dict)

    def for_voice(self, voice: str | None) -> Engines:
        """These engines, speaking with `voice` when it is one of `voices`."""
        tts = self.voices.get(voice) if voice else None
        return self if tts is None or tts is self.tts else replace(self, tts=tts)


class CallLogPort(Protocol):
    async def save_call(self, record: CallRecord) -> None: ...


@dataclass(frozen=True, slots=True)
class CallPorts:
    dnc: DncPort
    callbacks: CallbackPort
    log: CallLogPort
    transfer: TransferPort | None = None
    knowledge: KnowledgeIndex | None = None  # the agents' knowledge bases (issue 18)
    tool_calls: ToolCallLog | None = None  # where custom tool calls are kept


# Waits at most the given seconds for the call's AMD verdict; None when none came.
AmdWait = Callable[[float], Awaitable[AmdStatus | None]]
# When the PBX answered the call (AMI), once known.
AnsweredAt = Callable[[], datetime | None]
# Beyond this, an answer time is taken for a wrong clock rather than AMD()'s wait.
MAX_ANSWER_LEAD_S = 30.0


@dataclass(frozen=True, slots=True)
class CallInfo:
    call_id: str
    phone: str  # E.164; never logged as text
    campaign: Campaign
    variables: Mapping[str, str] = field(default_factory=dict)
    zone: str | None = None  # the callee's IANA zone, for callback times
    amd: AmdStatus | None = None
    # AMD runs in the dialplan just before the audio connects; its verdict comes over
    # AMI, often after the audio. With the campaign's AMD on, the session awaits it
    # (SessionConfig.amd_wait_s at most); `amd` wins when given.
    amd_wait: AmdWait | None = None
    opening: str | None = None  # an inbound or --opening line (disclosure is added)
    # The call's length (max_call_duration_s) counts from the answer, which comes before
    # the audio connects: AMD() runs in between (seconds). None: from the connect.
    answered_at: AnsweredAt | None = None


@dataclass(frozen=True, slots=True)
class SessionConfig:
    endpoint: EndpointConfig = field(default_factory=EndpointConfig)
    min_clause_chars: int = 12
    # The first clause of a reply may be shorter ("Sure," alone starts the audio sooner);
    # None: the same as min_clause_chars.
    first_clause_chars: int | None = 4
    # A first sentence without early punctuation is cut into a first piece of at most this
    # many words (before "and", "to", "with"... when it can), so speech starts sooner.
    # The cost is a slight pause in the prosody there; None turns it off.
    first_clause_max_words: int | None = 6
    # When a reply has been silent this long mid-reply while its next sentence is still
    # being written, the words so far are cut into a clause (ClauseSplitter.cut_early): a
    # long sentence after a short first clause left the line silent for 1-1.5 s, and a
    # callee who hears a pause that long takes the turn. None: wait for punctuation.
    starve_s: float | None = 0.3
    # Start the turn provisionally once the callee has paused this long (the endpoint is
    # not sure yet; see session.py). A false start costs CPU only: a ~0.15 s transcription
    # and at most a slice of LLM prompt. None: a turn starts at the endpoint.
    speculate_after_s: float | None = 0.1
    # Said over the agent while it had at least `backchannel_min_left_s` more to say, an
    # utterance of at most `backchannel_max_s` that is only "yes", "uh-huh", "okay"...
    # does not take the turn: the agent, paused when it began, goes on (voice/backchannel).
    # Longer speech over the agent is a barge-in: the pause becomes a stop.
    backchannel_max_s: float = 1.0
    backchannel_min_left_s: float = 0.5
    # After the call ends, what the callee said last is still transcribed and kept, for
    # this long at most.
    last_words_s: float = 3.0
    tick_s: float = 0.02
    preroll_s: float = 0.3
    # Speech over the agent is confirmed late (it must be clearer): its utterance reaches
    # back this far at most for its first words (voice/listener.py, Listener._lead_in).
    barge_in_preroll_s: float = 1.5
    voicemail_silence_s: float = 1.5
    ending_grace_s: float = 15.0  # a goodbye that never drains still ends the call
    # The max-duration goodbye starts this early before the limit: its estimated length
    # (Piper says ~14 characters a second) plus a margin for its render and the line.
    speech_s_per_char: float = 0.07
    goodbye_margin_s: float = 1.0
    transfer_grace_s: float = 5.0  # wait this long for Asterisk to leave AudioSocket
    max_followups: int = 1  # extra LLM rounds after a tool call with no speech
    # How long the session waits for an AMD verdict that has not arrived when the audio
    # connects (it is sent just before, over AMI); then the callee is taken for a person.
    amd_wait_s: float = 1.0
    machine_detect: DetectConfig = field(default_factory=DetectConfig)  # amd: stream
    recordings_dir: Path | None = None
    lines: Lines = LINES


@dataclass(frozen=True, slots=True)
class CallResult:
    disposition: Disposition
    turns: list[TurnRow]
    recording: Path | None
    ended_by: str  # callee, agent, silence, max_duration, voicemail, opt_out, transfer


def answered_t(info: CallInfo, t0: float, wall0: datetime) -> float:
    """The answer on the monotonic clock of `t0` (the connect, at wall time `wall0`)."""
    at = info.answered_at() if info.answered_at is not None else None
    if at is None:
        return t0
    return t0 - min(max((wall0 - at).total_seconds(), 0.0), MAX_ANSWER_LEAD_S)


def callee_zones(info: CallInfo, phone: str) -> tuple[str, ...]:
    """The zones the gate checks the window in for this number: the dialer's one zone,
    else the campaign's policy on the number (the dialer passes a single zone only).
    Empty when unknown: callbacks are then refused, never booked in UTC."""
    if info.zone:
        return (info.zone,)
    e164 = normalize_phone(phone, info.campaign.default_country).e164 if phone else None
    if e164 is None:
        return ()
    return tuple(z.key for z in resolve_zones(info.campaign.timezone_policy, None, e164).zones)


def local_now(now: datetime, zones: tuple[str, ...]) -> datetime | None:
    """The callee's local time, for the prompt (in the first zone when several may
    apply; the callback tool reads the answer in each). None when no zone is known."""
    try:
        return now.astimezone(ZoneInfo(zones[0])) if zones else None
    except (ZoneInfoNotFoundError, ValueError):
        return None
