"""The listener: the callee's audio in, speech events out (voice/turn_events.py).

VAD per chunk (with our own echo gated out), the endpointer's start and end, the
utterance's audio with a short pre-roll, and the first short pause inside it, reported
for a provisional turn. A pause is void once the callee speaks on, or once a faint sound
after it shows their last word was still fading in ("credits" heard as "credit"); then it
is reported again when the sound has died away, without waiting for the endpoint.
"""

from __future__ import annotations

from collections import deque

from televox_pbx.audiosocket.session import AudioIn
from televox_pbx.voice.call_setup import SessionConfig
from televox_pbx.voice.endpointing import BeepDetector, EchoGate, Edge, Endpointer, rms
from televox_pbx.voice.engines.resample import resample_pcm16 as to_rate
from televox_pbx.voice.interfaces import Vad
from televox_pbx.voice.turn_events import (
    Beep,
    Event,
    SpeechPaused,
    SpeechResumed,
    SpeechStarted,
    SpeechStopped,
)

RATE = 8000
# Sounding chunks after a reported pause that mean the callee's last word was cut.
CLIPPED_CHUNKS = 2
# Over the agent, a pause this short (a comma) does not part the speech before an
# utterance's confirmed start from it (see Listener._lead_in). Comma pauses run 0.2-0.5 s:
# Piper's "Hello, | this is Sam speaking." has a 0.32 s VAD gap, and 0.3 s lost "Hello".
BRIDGE_S = 0.5


class Listener:
    def __init__(self, vad: Vad, config: SessionConfig, *, turn_model: bool = False) -> None:
        self.config = config
        self.turn_model = turn_model  # ask an end-of-turn model at each pause
        self._vad = vad.new_stream()
        self._vad_rate = vad.sample_rate
        self._ep = Endpointer(config.endpoint)
        self._echo = EchoGate(config.endpoint)
        self._beep = BeepDetector(RATE)
        self.detect_beep = False  # only while waiting to leave a voicemail
        self.last_voice = 0.0
        self.last_heard: tuple[bytes, float] = (b"", 0.0)  # the last frame (8 kHz), VAD prob
        self._preroll: deque[bytes] = deque()
        self._preroll_bytes = 0
        # (start, pcm, speech, echo) of the last chunks heard: the pre-roll over the agent
        self._recent: deque[tuple[float, bytes, bool, bool]] = deque()
        self._over_agent = False  # the chunk being fed was heard while the agent spoke
        self._utt = bytearray()
        self._utt_start = 0.0
        self._last_end = float("-inf")  # the last speech of the utterance before
        self._seq = 0
        self._reported: tuple[int, float] | None = None  # (seq, last speech) of a pause
        self._clipped = 0  # sounding chunks since the reported pause
        # (pause, end) of the faint sound that voided a pause, the pause named by the
        # speech end it follows: it is reported again once the sound has died away.
        self._fading: tuple[float, float] | None = None
        self._checks = 0
        self._checking: tuple[int, float] | None = None  # (check, last speech) asked
        self._asks: list[tuple[int, bytes]] = []  # checks for the session to run

    @property
    def active(self) -> bool:
        """The callee is speaking, or speech is starting."""
        return self._ep.speaking or self._ep.pending_onset is not None

    def played(self, t: float, pcm: bytes, silent: bool) -> None:
        """A frame of the agent's went out at `t` (for the echo gate)."""
        self._echo.played(t, 0.0 if silent else rms(pcm), pcm)

    def start(self, t: float) -> None:
        self.last_voice = t

    def feed(self, ev: AudioIn, agent_audible: bool) -> list[Event]:
        pcm = to_rate(ev.pcm, ev.sample_rate, RATE)
        if not pcm:
            return []
        t, duration = ev.t, len(pcm) / (RATE * 2)
        cfg = self.config.endpoint
        prob = self._vad.speech_prob(to_rate(pcm, RATE, self._vad_rate))
        self.last_heard = (pcm, prob)
        self._echo.heard(pcm)
        echo = agent_audible and prob > 0 and self._echo.is_echo(t, pcm)
        if echo:
            prob = 0.0
        if prob >= cfg.threshold:
            self.last_voice = t + duration
        self._preroll.append(pcm)
        self._preroll_bytes += len(pcm)
        while self._preroll_bytes - len(self._preroll[0]) >= self.config.preroll_s * RATE * 2:
            self._preroll_bytes -= len(self._preroll.popleft())
        self._remember(t, pcm, prob >= cfg.threshold, echo)
        self._over_agent = agent_audible
        ep = self._ep
        if ep.speaking:
            self._utt += pcm
        if self.detect_beep and self._beep.feed(pcm):
            return [Beep(t + duration)]
        level = rms(pcm)
        edge = ep.feed(prob, t, duration, agent_playing=agent_audible, level=level)
        faint = level >= cfg.clipped_level_ratio * ep.peak
        out: list[Event] = []
        reported = self._reported
        if reported is not None:
            if ep.last_speech != reported[1]:
                out.append(self._void())  # the callee went on talking
            elif faint:
                self._clipped += 1
                if self._clipped >= CLIPPED_CHUNKS:
                    # The last sound was still fading in when the pause was reported:
                    # report it again on all of it once it has died away, instead of
                    # waiting for the endpoint (~0.6 s more).
                    out.append(self._void())
                    self._fading = (ep.last_speech, t + duration)
        elif faint and self._fading is not None and self._fading[0] == ep.last_speech:
            self._fading = (self._fading[0], t + duration)
        if edge is not None:
            out.append(self._edge(edge.edge, edge.at, t + duration))
        out += self._maybe_pause(t + duration)
        return out

    def tick(self, now: float) -> list[Event]:
        """Time passes with no audio (silence suppression sends no frames)."""
        out: list[Event] = []
        edge = self._ep.tick(now)
        if edge is not None:
            out.append(self._edge(edge.edge, edge.at, now))
        return out + self._maybe_pause(now)

    def flush(self, now: float) -> list[Event]:
        """The call ended: an utterance still going is over now."""
        if not self._ep.speaking:
            return []
        last = self._ep.last_speech
        self._ep.reset()
        return [self._edge(Edge.END, last, now)]

    def _void(self) -> SpeechResumed:
        assert self._reported is not None
        seq, self._reported = self._reported[0], None
        return SpeechResumed(seq)

    def _remember(self, t: float, pcm: bytes, speech: bool, echo: bool) -> None:
        self._recent.append((t, pcm, speech, echo))
        keep = self.config.barge_in_preroll_s + self.config.preroll_s \
            + self.config.endpoint.barge_in_onset_s + 0.1
        while self._recent and self._recent[0][0] < t - keep:
            self._recent.popleft()

    def _lead_in(self, start: float) -> bytes:
        """The audio before an utterance that began over the agent. Speech there must be
        clearer and longer to count (EndpointConfig.barge_in_*), so its first words ("Sorry,
        who is" of "Sorry, who is calling?") were heard before it was confirmed: reach
        back over the speech that ran into the confirmed start (comma pauses bridged;
        our echo, gated out, is not speech), `barge_in_preroll_s` at most, plus the usual
        pre-roll, where our echo is silenced (else STT may take our words for theirs)."""
        first = start
        # Never into the utterance before: its words were heard (and recorded) with it.
        floor = max(start - self.config.barge_in_preroll_s, self._last_end)
        for t, pcm, speech, _ in reversed(self._recent):
            if t >= start:
                continue
            if t < floor:
                break
            if speech:
                if first - (t + len(pcm) / (RATE * 2)) > BRIDGE_S + 1e-9:
                    break
                first = t
        since = max(first - self.config.preroll_s, self._last_end) - 1e-9
        return b"".join(bytes(len(pcm)) if echo and t < first else pcm
                        for t, pcm, _, echo in self._recent if t >= since)

    def _edge(self, edge: Edge, at: float, now: float) -> Event:
        if edge is Edge.START:
            self._utt = bytearray(self._lead_in(at) if self._over_agent
                                  else b"".join(self._preroll))
            self._utt_start = at
            return SpeechStarted(at)
        audio, self._utt = bytes(self._utt), bytearray()
        self._last_end = at
        reported, self._reported = self._reported, None
        if reported is not None and reported[1] == at:
            return SpeechStopped(reported[0], self._utt_start, at, now, audio, True)
        self._seq += 1
        return SpeechStopped(self._seq, self._utt_start, at, now, audio, False)

    # --- the end-of-turn model ----------------------------------------------------------

    def take_checks(self) -> list[tuple[int, bytes]]:
        """End-of-turn checks to run: (check id, the utterance so far, 8 kHz)."""
        asks, self._asks = self._asks, []
        return asks

    def verdict(self, check: int, complete: float, now: float) -> list[Event]:
        """The model's P(complete) for `check`: sets how long this pause must last."""
        ep, cfg = self._ep, self.config.endpoint
        if self._checking != (check, ep.last_speech) or not ep.speaking:
            return []  # the callee spoke on: the verdict is about a pause that is over
        ep.hold(cfg.turn_complete_s if complete >= cfg.turn_threshold
                else cfg.turn_incomplete_s)
        return self.tick(now)

    def _maybe_check(self, now: float) -> None:
        ep = self._ep
        if not self.turn_model or not ep.speaking \
                or now - ep.last_speech < self.config.endpoint.turn_check_after_s \
                or (self._checking is not None and self._checking[1] == ep.last_speech):
            return
        self._checks += 1
        self._checking = (self._checks, ep.last_speech)
        self._asks.append((self._checks, bytes(self._utt)))

    def _maybe_pause(self, now: float) -> list[Event]:
        """At the callee's first short pause, report the utterance so far."""
        self._maybe_check(now)
        after = self.config.speculate_after_s
        ep = self._ep
        last = ep.last_speech
        if after is None or not ep.speaking or now - last < after \
                or (self._reported is not None and self._reported[1] == last) \
                or (self._fading is not None and self._fading[0] == last
                    and now - self._fading[1] < after):
            return []
        self._seq += 1
        self._reported, self._clipped = (self._seq, last), 0
        return [SpeechPaused(self._seq, self._utt_start, last, bytes(self._utt))]
