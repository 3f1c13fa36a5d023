"""Speech to text with faster-whisper (CTranslate2, int8 on CPU).

One model per process; utterances are transcribed one at a time on a dedicated worker
thread (CTranslate2 already uses every core it is given, so parallel calls only queue).
Utterances up to ~29 s are decoded in a window fitted to them (see `window_s`), falling back
to faster-whisper's own 30 s path when that result looks wrong.
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from televox_pbx.voice.engines.resample import pcm16_to_float, resample_float
from televox_pbx.voice.interfaces import AudioChunk, Transcript

WHISPER_RATE = 16000
HOP = 160  # samples per mel frame: 100 frames per second
FULL_FRAMES = 3000  # whisper's native 30 s window
TAIL_FRAMES = 100  # silence kept after the speech in a short window
NO_SPEECH_PROB, LOW_LOGPROB = 0.6, -1.0  # faster-whisper's defaults for dropping a silent clip
# Speech runs at ~3 words per second of sounding audio; under 1 the decode stopped early
# (a short window once gave "Hi Sam." for 6 s of "Hi Sam, this is Ava, an AI assistant...").
MIN_WORDS_PER_VOICED_S = 1.0
# More words than this per second of the clip (Piper's quick voice: up to ~5) cannot have
# been said in it.
MAX_WORDS_PER_S = 6.0
# Tokens a decode may write per second of the clip (speech is ~4-6), plus a margin: a
# looping decode stops there instead of filling the window's budget.
TOKENS_PER_S, TOKEN_MARGIN = 10, 20
VOICED_LEVEL = 0.03  # a 20 ms frame this close to the clip's loudest (-30 dB) is sounding
# Words the decoder is nudged toward (Whisper's previous-text prompt, as faster-whisper's
# `hotwords`): the ones a call must never miss. Without it tiny.en heard a one-word
# "Unsubscribe." as "and subscribe." and the opt-out was lost.
HOTWORDS = "Unsubscribe. Stop calling me. Take me off your list. Wrong number."


def voiced_seconds(samples: np.ndarray) -> float:
    """Seconds of 20 ms frames within -30 dB of the clip's loudest frame (16 kHz float)."""
    n = samples.size // (2 * HOP)
    if n == 0:
        return 0.0
    frames = samples[: n * 2 * HOP].reshape(n, 2 * HOP)
    levels = np.sqrt(np.mean(frames * frames, axis=1))
    return float(np.count_nonzero(levels >= VOICED_LEVEL * levels.max())) * 0.02


def _norm_words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def collapse_repeat(text: str, clip_s: float) -> str | None:
    """The first copy of a decode that says its opening sentences over and over: whisper
    loops on a padded short window ("Do you offer financing? Do you offer financing? Do"
    for 1.4 s of audio), and the 30 s decode of the same clip gave exactly the first copy
    (7 of 40 bench lines), ~0.5-1 s later. None (decode it in 30 s) unless all of it is
    copies of a first copy of 3+ words (the last one may be cut off) that the clip can
    hold: a decode that drifts ("X? X? Are you? Are you?") or goes on to new words ("I'm
    not interested. I'm not interested. Stop calling me.") keeps the careful path, and so
    do short stock phrases ("Thank you. Thank you.") that whisper makes of noise."""
    sentences = [s for s in re.findall(r"[^.?!]+[.?!]*", text) if _norm_words(s)]
    norm = [_norm_words(s) for s in sentences]
    every = _norm_words(text)
    for k in range(1, len(norm) // 2 + 1):
        if norm[k:2 * k] != norm[:k]:
            continue
        head = "".join(sentences[:k]).strip()
        unit = _norm_words(head)
        copies = unit * (len(every) // len(unit) + 1)
        if len(unit) < 3 or every != copies[:len(every)] \
                or len(unit) > clip_s * MAX_WORDS_PER_S + 2:
            return None
        return head
    return None


def looks_degenerate(text: str, n_tokens: int, max_tokens: int,
                     voiced_s: float = 0.0) -> bool:
    """Whisper's failure modes on a window it was not trained on: looping text (gzip ratio
    above 2.0, whisper's own test; or a run of 3+ words said twice), a decode that only
    stopped at the token limit, or one that stopped early (far fewer words than
    `voiced_s` seconds of sound hold)."""
    if n_tokens >= max_tokens:
        return True
    raw = text.encode()
    if raw and len(raw) / len(zlib.compress(raw)) > 2.0:
        return True
    words = _norm_words(text)
    if len(words) < voiced_s * MIN_WORDS_PER_VOICED_S:
        return True
    trigrams = [tuple(words[i:i + 3]) for i in range(len(words) - 2)]
    return len(set(trigrams)) < len(trigrams)  # any run of >= 3 words has a repeated 3-gram


class WhisperStt:
    def __init__(self, model_dir: Path, *, cpu_threads: int = 0, language: str = "en",
                 beam_size: int = 1, window_s: float | None = 10.0,
                 hotwords: str | None = HOTWORDS) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        if not (model_dir / "model.bin").is_file():
            # faster-whisper would read a missing dir as a hub repo id and try to download.
            raise FileNotFoundError(f"whisper model file missing: {model_dir / 'model.bin'}")
        import ctranslate2  # heavy imports, paid at load time only
        from faster_whisper import WhisperModel
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        self._model: Any = WhisperModel(str(model_dir), device="cpu", compute_type="int8",
                                        cpu_threads=cpu_threads, num_workers=1,
                                        local_files_only=True)
        self._language = language
        self._beam_size = beam_size
        # faster-whisper always pads to a 30 s window, which fixes the cost of every decode
        # (~0.42 s for tiny.en on 2 cores). The encoder takes shorter windows; speech plus
        # 1 s of silence, but never under 10 s, decodes as accurately at ~1/3 of the cost.
        # Under ~10 s whisper starts repeating the utterance ("Yes. Yes. Yes."). None: always
        # the 30 s window.
        self._min_frames = None if window_s is None else max(1, round(window_s * 100))
        self._tokenizer: Any = Tokenizer(self._model.hf_tokenizer,
                                         self._model.model.is_multilingual,
                                         task="transcribe", language=language)
        self._hotwords = hotwords
        # The same prompt faster-whisper builds for `hotwords` (its get_prompt).
        bias = ([self._tokenizer.sot_prev,
                 *self._tokenizer.encode(" " + hotwords.strip())[: self._model.max_length // 2 - 1]]
                if hotwords else [])
        self._prompt: list[int] = [*bias, *self._tokenizer.sot_sequence,
                                   self._tokenizer.no_timestamps]
        self._suppress = list(get_suppressed_tokens(self._tokenizer, (-1,)))
        self._storage: Any = ctranslate2.StorageView.from_array
        self.short_decodes = 0  # clips decoded in a short window
        self.fallbacks = 0  # of those, decoded again in 30 s: looping or doubtful silence
        self.collapsed = 0  # of those, a loop cut to its first copy instead
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stt")

    async def transcribe(self, audio: AudioChunk) -> Transcript:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.transcribe_blocking, audio)

    def transcribe_blocking(self, audio: AudioChunk) -> Transcript:
        return self.transcribe_batch_blocking([audio])[0]

    async def transcribe_batch(self, audios: list[AudioChunk]) -> list[Transcript]:
        """Several calls' utterances in one decode (engines/scheduled.py batches them):
        on 2 cores, 2 clips in 0.75x the time of one after the other."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.transcribe_batch_blocking,
                                          audios)

    def transcribe_batch_blocking(self, audios: list[AudioChunk]) -> list[Transcript]:
        clips = [resample_float(pcm16_to_float(a.pcm), a.sample_rate, WHISPER_RATE)
                 for a in audios]
        out: list[Transcript | None] = [None] * len(clips)
        short: list[int] = []
        for i, samples in enumerate(clips):
            if samples.size < WHISPER_RATE // 10:  # under 100 ms: nothing worth decoding
                out[i] = Transcript("", None)
            elif self._window(samples.size) is not None:
                short.append(i)
        if short:
            # One window for the batch: the longest any of them needs.
            frames = max(self._window(clips[i].size) or 0 for i in short)
            for i, got in zip(short, self._decode_short_many([clips[i] for i in short],
                                                             frames), strict=True):
                out[i] = got
        return [got if got is not None else self._decode(clips[i])
                for i, got in enumerate(out)]

    def _window(self, n_samples: int) -> int | None:
        """Mel frames of the short window for this clip; None: use the 30 s path."""
        if self._min_frames is None:
            return None
        frames = max(self._min_frames, n_samples // HOP + 1 + TAIL_FRAMES)
        return frames if frames <= FULL_FRAMES else None

    def _decode_short(self, samples: np.ndarray, frames: int) -> Transcript | None:
        """Decode in a `frames`-long window; None when the result looks degenerate."""
        return self._decode_short_many([samples], frames)[0]

    def _decode_short_many(self, clips: list[np.ndarray], frames: int
                           ) -> list[Transcript | None]:
        self.short_decodes += len(clips)
        # Pad the audio, not the features: the log-mel floor is set per clip, so padding
        # features with zeros is not silence to the model (and it hallucinates).
        features = np.stack([self._model.feature_extractor(
            np.pad(samples, (0, frames * HOP - samples.size)), padding=0)[:, :frames]
            for samples in clips])
        # Twice fast speech for the longest clip: a looping decode stops early. CTranslate2's
        # max_length counts the prompt too (as faster-whisper sets it), and whisper's
        # decoder holds 448 tokens in all.
        longest = max(c.size for c in clips) / WHISPER_RATE
        max_new = min(self._model.max_length // 2,
                      TOKEN_MARGIN + math.ceil(TOKENS_PER_S * longest))
        results = self._model.model.generate(
            self._storage(np.ascontiguousarray(features)), [self._prompt] * len(clips),
            beam_size=self._beam_size, max_length=len(self._prompt) + max_new,
            return_scores=True,
            return_no_speech_prob=True, suppress_tokens=self._suppress)
        return [self._judge(r, samples, max_new) for r, samples in zip(results, clips,
                                                                        strict=True)]

    def _judge(self, result: Any, samples: np.ndarray, max_new: int) -> Transcript | None:
        """A short-window result, or None when it looks degenerate (decode it in 30 s)."""
        tokens: list[int] = result.sequences_ids[0]
        text = str(self._tokenizer.decode(tokens)).strip()
        # The score is the sum of log-probs (end-of-text included) over len(tokens) (length
        # penalty 1): the mean per token over len + 1, as faster-whisper's avg_logprob.
        mean_logprob = float(result.scores[0]) * len(tokens) / (len(tokens) + 1)
        no_speech = float(result.no_speech_prob)
        silent = no_speech > NO_SPEECH_PROB
        if not text or (silent and mean_logprob < LOW_LOGPROB):
            return Transcript("", None, no_speech, mean_logprob)  # faster-whisper's rule
        # Silent yet confident: whisper's stock hallucination ("you" on digital silence,
        # which the 30 s window drops). Piper speech stayed <= 0.25 no-speech, so it is rare.
        if silent:
            self.fallbacks += 1
            return None
        voiced = voiced_seconds(samples)
        if looks_degenerate(text, len(tokens), max_new, voiced):
            head = collapse_repeat(text, samples.size / WHISPER_RATE)
            if head is None or self._prompted(head) \
                    or looks_degenerate(head, 0, max_new, voiced):
                self.fallbacks += 1
                return None
            self.collapsed += 1
            text = head
        return Transcript(text, round(math.exp(mean_logprob), 3), round(no_speech, 3),
                          round(mean_logprob, 3))

    def _prompted(self, text: str) -> bool:
        """`text` is words of the decoder's prompt (the hotwords), which a decode of
        noise can say back: only the careful 30 s path may give those."""
        said = f" {' '.join(_norm_words(text))} "
        return bool(self._hotwords) and said in f" {' '.join(_norm_words(self._hotwords or ''))} "

    def _decode(self, samples: np.ndarray) -> Transcript:
        segments, _info = self._model.transcribe(
            samples, language=self._language, beam_size=self._beam_size, vad_filter=False,
            condition_on_previous_text=False, without_timestamps=True, hotwords=self._hotwords)
        texts: list[str] = []
        weights: list[tuple[float, float, int]] = []
        for seg in segments:  # a generator: decoding happens while iterating
            text = seg.text.strip()
            if text:
                texts.append(text)
                weights.append((seg.avg_logprob, seg.no_speech_prob, max(1, len(seg.tokens))))
        if not texts:
            return Transcript("", None)
        total = sum(n for _, _, n in weights)
        mean_logprob = sum(lp * n for lp, _, n in weights) / total
        no_speech = max(p for _, p, _ in weights)
        return Transcript(" ".join(texts), round(math.exp(mean_logprob), 3), round(no_speech, 3),
                          round(mean_logprob, 3))

    def warm_up(self) -> None:
        """Throwaway decodes so the first caller does not pay CTranslate2's set-up."""
        silence = np.zeros(WHISPER_RATE // 2, dtype=np.float32)
        frames = self._window(silence.size)
        if frames is not None:
            self._decode_short(silence, frames)
        self._decode(silence)  # the short window's fallback too
        self.short_decodes = self.fallbacks = self.collapsed = 0

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
