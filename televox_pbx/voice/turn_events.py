"""The vocabulary of turn-taking (voice/turntaking.py): the events it takes and the
actions it returns. Plain data: no audio devices, no models, no awaiting."""

from __future__ import annotations

from dataclasses import dataclass

from televox_pbx.agent.tools import EndCall, OptOut, Transfer
from televox_pbx.domain import AmdStatus
from televox_pbx.voice.context import CalleeSaid
from televox_pbx.voice.interfaces import ChatMessage

# --- events ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallStarted:
    at: float
    amd: AmdStatus | None  # the verdict, once known (None: none, or AMD off)
    # Machine detection runs on the callee's audio (campaign `amd: stream`): nothing is
    # said until `Screened`, the opening prepared meanwhile.
    screen: bool = False
    answered: float | None = None  # when the PBX answered (before `at`), if known


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    at: float  # when the callee's voice began


@dataclass(frozen=True, slots=True)
class SpeechPaused:
    """The callee paused (not long enough to be sure they finished): the utterance so
    far, for a provisional turn. `seq` names it until it is resumed or stopped."""

    seq: int
    started: float
    last_speech: float
    audio: bytes  # 8 kHz s16le, pre-roll included


@dataclass(frozen=True, slots=True)
class SpeechResumed:
    seq: int  # the pause it follows is void: the callee went on


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    """The endpoint: the utterance is over. `provisional`: the pause reported as `seq`
    still holds (nothing was said after it), so its transcript is this turn's."""

    seq: int
    started: float
    last_speech: float
    at: float  # when the endpoint decided
    audio: bytes
    provisional: bool


@dataclass(frozen=True, slots=True)
class Transcribed:
    seq: int
    text: str
    at: float
    own_words: bool = False  # only words the agent was saying (echo, if said over it)


@dataclass(frozen=True, slots=True)
class DtmfPressed:
    digit: str
    at: float


@dataclass(frozen=True, slots=True)
class Screened:
    """The stream detector's verdict (voice/machine_detect.py)."""

    amd: AmdStatus  # HUMAN, MACHINE or NOTSURE
    at: float
    beep: bool  # MACHINE on the greeting's beep: the message may start now


@dataclass(frozen=True, slots=True)
class Beep:
    at: float  # a voicemail beep ended


@dataclass(frozen=True, slots=True)
class Tick:
    now: float
    callee_active: bool  # speaking, or speech starting
    last_voice: float  # the last time the callee's voice was heard


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a finished agent task asks for next."""

    action: OptOut | EndCall | Transfer | None = None
    source: str = "tool"
    spoke: bool = False
    restart_silence: bool = True  # False for the re-prompt: it must not reset the timer


@dataclass(frozen=True, slots=True)
class AgentDone:
    task: int
    outcome: Outcome | None  # None: the task failed
    at: float


@dataclass(frozen=True, slots=True)
class Transferred:
    at: float


@dataclass(frozen=True, slots=True)
class HungUp:
    local: bool  # we hung up (else the callee or the network)


Event = (CallStarted | SpeechStarted | SpeechPaused | SpeechResumed | SpeechStopped
         | Transcribed | DtmfPressed | Screened | Beep | Tick | AgentDone | Transferred | HungUp)

# --- actions -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Transcribe:
    seq: int
    audio: bytes


@dataclass(frozen=True, slots=True)
class CancelTranscribe:
    seq: int


@dataclass(frozen=True, slots=True)
class Say:
    """Task `task`: say a fixed line (`opening`: the call's opening), then maybe hang up."""

    task: int
    line: str | None
    interruptible: bool
    hangup: bool
    restart_silence: bool
    opening: bool = False
    held: bool = False  # prepared but not played until `Release` (the screened opening)


@dataclass(frozen=True, slots=True)
class OpenTurn:
    """Task `task`: an LLM reply to the context (plus `user`, a provisional turn's text
    not yet recorded). `held`: prepared but not played until `Release`."""

    task: int
    speech_end: float | None
    held: bool
    user: str | None
    endpoint_ms: float | None
    transcript_ms: float | None


@dataclass(frozen=True, slots=True)
class Release:
    task: int
    endpoint_ms: float


@dataclass(frozen=True, slots=True)
class Cancel:
    """Drop the agent's task (a provisional reply nobody heard)."""


@dataclass(frozen=True, slots=True)
class Pause:
    """Silence the agent now; keep what it has not said."""


@dataclass(frozen=True, slots=True)
class Resume:
    """Play on what a pause kept."""


@dataclass(frozen=True, slots=True)
class Stop:
    """Barge-in for good: cancel the agent's task, drop its audio, keep what was heard."""


@dataclass(frozen=True, slots=True)
class Record:
    said: CalleeSaid
    greeting: bool = False  # said before the agent's first words (see Conversation)


@dataclass(frozen=True, slots=True)
class AddNote:
    message: ChatMessage


@dataclass(frozen=True, slots=True)
class OptOutNow:
    source: str


@dataclass(frozen=True, slots=True)
class TransferTo:
    task: int
    speak: bool


@dataclass(frozen=True, slots=True)
class Prefill:
    """Let the LLM evaluate the prompt and opening while the opening plays."""


@dataclass(frozen=True, slots=True)
class HangupNow:
    pass


@dataclass(frozen=True, slots=True)
class Finish:
    pass


Action = (Transcribe | CancelTranscribe | Say | OpenTurn | Release | Cancel | Pause | Resume
          | Stop | Record | AddNote | OptOutNow | TransferTo | Prefill | HangupNow | Finish)
