"""Telling the callee's words from what Whisper makes of noise.

Whisper was trained on subtitled video, so line noise, breath or a click that got past the
VAD can come back as "Thank you for watching", "Subscribe" or a lone "you". Answering that
is worse than saying nothing. Each transcript is judged on four kinds of evidence: the
decoder's own doubt (no-speech probability, mean log-probability), how much of the clip
is loud enough to be speech, and phrases known to be hallucinations. A phrase that is
only doubtful ("Thank you.", "Bye.") is dropped only when another signal doubts it too.

What could be an opt-out is never dropped on its wording alone: tiny.en heard
"Unsubscribe." as "and subscribe.", and an opt-out that is probably there must not be
lost (the reply policy asks the callee instead).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import numpy as np

from televox_pbx.voice.interfaces import Transcript

log = logging.getLogger(__name__)

FRAME_S = 0.02
SPEECH_DBFS = -42.0  # a 20 ms frame this loud may be speech (telephone speech: -30..-10)
SPEECH_SPAN_DB = 25.0  # ... and within this much of the clip's loudest frame
MIN_SPEECH_S = 0.1  # less than this of speech-level sound: nothing was said
# Whisper's own rule for a silent clip (faster-whisper's defaults).
NO_SPEECH, LOW_LOGPROB = 0.6, -1.0
# A phrase that is often hallucinated is dropped when any of these doubt it.
DOUBT_NO_SPEECH, DOUBT_LOGPROB, DOUBT_SPEECH_S, DOUBT_DBFS = 0.4, -0.9, 0.15, -35.0
# Strong doubt alone drops any text.
SURE_NO_SPEECH, SURE_LOGPROB = 0.75, -0.6


def _norm(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9']+", text.lower().replace("’", "'")))


def _unit(words: str) -> str:
    """The words said once when they are one phrase said over ("thank you thank you" ->
    "thank you"): noise decoded as a stock phrase often comes back repeated."""
    tokens = words.split()
    for k in range(1, len(tokens) // 2 + 1):
        if len(tokens) % k == 0 and tokens == tokens[:k] * (len(tokens) // k):
            return " ".join(tokens[:k])
    return words


# Whole utterances no callee says on a phone call (subtitle credits, video outros).
_ALWAYS = re.compile(
    r"^(?:(?:thank you|thanks) (?:so much |very much )?for watching(?: and .*)?"
    r"|(?:please )?like and subscribe.*|subscribe to (?:my|our|the) channel.*"
    r"|see you (?:in the )?next (?:video|time)|you)$")
_ALWAYS_ANYWHERE = re.compile(r"amara org|subtitles by|transcribed by|captioned by"
                              r"|www |\.com\b")
# Short utterances people do say, but Whisper also makes of noise.
_DOUBTFUL = re.compile(
    r"^(?:thank you|thanks|thank you very much|bye|bye bye|okay|ok|so|oh|hmm|mm|uh|um"
    r"|yeah|the end|i'm sorry|sorry|hello|hi|huh)$")
_OPT_OUT_LIKE = re.compile(r"subscri|stop|remove|call")


@dataclass(frozen=True, slots=True)
class Heard:
    """What the agent should treat as said: `text` ('' when the clip is dropped)."""

    text: str
    dropped: str = ""  # why it was dropped: "silent", "noise", "hallucination", "doubtful"


def speech_seconds(pcm: bytes, rate: int) -> tuple[float, float]:
    """(seconds of speech-level 20 ms frames, loudest frame in dBFS) of s16le audio."""
    samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.float64)
    step = max(1, round(rate * FRAME_S))
    n = samples.size // step
    if n == 0:
        return 0.0, -120.0
    frames = samples[: n * step].reshape(n, step) / 32768.0
    level = 20 * np.log10(np.sqrt(np.mean(frames * frames, axis=1)) + 1e-9)
    peak = float(level.max())
    loud = (level >= SPEECH_DBFS) & (level >= peak - SPEECH_SPAN_DB)
    return float(np.count_nonzero(loud)) * FRAME_S, peak


def screen(transcript: Transcript, pcm: bytes, rate: int) -> Heard:
    """Keep the transcript's text, or drop it as noise (with the reason)."""
    heard = _judge(transcript, pcm, rate)
    if heard.dropped:
        log.info("transcript dropped as noise", extra={
            "reason": heard.dropped, "no_speech_prob": transcript.no_speech_prob,
            "avg_logprob": transcript.avg_logprob})
    return heard


def _judge(transcript: Transcript, pcm: bytes, rate: int) -> Heard:
    text = transcript.text.strip()
    words = _norm(text)
    if not words:
        return Heard("")
    speech_s, peak = speech_seconds(pcm, rate)
    ns, lp = transcript.no_speech_prob, transcript.avg_logprob
    if speech_s < MIN_SPEECH_S:
        return Heard("", "silent")
    if ns is not None and lp is not None and (
            (ns > NO_SPEECH and lp < LOW_LOGPROB) or (ns >= SURE_NO_SPEECH and lp < SURE_LOGPROB)):
        return Heard("", "noise")
    phrase = _unit(words)
    if _OPT_OUT_LIKE.search(words) and not _ALWAYS.match(phrase):
        return Heard(text)  # never lose what may be an opt-out to a phrase list
    if _ALWAYS.match(phrase) or _ALWAYS_ANYWHERE.search(text.lower()):
        return Heard("", "hallucination")
    if _DOUBTFUL.match(phrase) and (
            (ns is not None and ns >= DOUBT_NO_SPEECH)
            or (lp is not None and lp <= DOUBT_LOGPROB)
            or speech_s < DOUBT_SPEECH_S or peak < DOUBT_DBFS):
        return Heard("", "doubtful")
    return Heard(text)
