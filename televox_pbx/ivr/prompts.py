"""IVR prompts: WAV files from the media folder, checked at start for format and length,
and TTS texts; each converted once to what AudioSocket plays (8 kHz slin16 mono) and cached
on disk under a name derived from its content, so a restart converts nothing again."""

from __future__ import annotations

import hashlib
import wave
from pathlib import Path

import numpy as np

from televox_pbx.config.ivr import IvrConfig, Prompt
from televox_pbx.config.settings import Settings
from televox_pbx.voice.engines.resample import resample_pcm16
from televox_pbx.voice.interfaces import Tts

RATE = 8000


class PromptError(ValueError):
    pass


def media_dir(settings: Settings) -> Path:
    """config/media next to config/campaigns."""
    return settings.campaigns_dir.parent / "media"


def cache_dir(settings: Settings) -> Path:
    return settings.database.path.parent / "prompt-cache"


def read_wav(path: Path, max_s: float) -> tuple[bytes, int, int]:
    """(frames as slin16, sample rate, channels); PromptError says what is wrong."""
    try:
        with wave.open(str(path), "rb") as w:
            width, rate, channels = w.getsampwidth(), w.getframerate(), w.getnchannels()
            n = w.getnframes()
            if n == 0:
                raise PromptError(f"{path.name}: no audio")
            if n / rate > max_s:
                raise PromptError(f"{path.name}: {n / rate:.1f} s long; at most {max_s:g} s")
            raw = w.readframes(n)
    except FileNotFoundError:
        raise PromptError(f"{path.name}: not in the media folder ({path.parent})") from None
    except (wave.Error, EOFError) as exc:
        raise PromptError(f"{path.name}: not a PCM WAV file ({exc})") from None
    if width == 1:  # 8-bit WAV is unsigned
        pcm = ((np.frombuffer(raw, dtype=np.uint8).astype(np.int16) - 128) << 8)
    elif width == 2:
        pcm = np.frombuffer(raw, dtype="<i2")
    else:
        raise PromptError(f"{path.name}: {8 * width}-bit samples; use 16-bit PCM")
    if rate < RATE:
        raise PromptError(f"{path.name}: {rate} Hz; at least {RATE} Hz")
    return pcm.astype("<i2").tobytes(), rate, channels


def to_8k_mono(pcm: bytes, rate: int, channels: int) -> bytes:
    samples = np.frombuffer(pcm, dtype="<i2")
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1).astype("<i2")
    out = samples.tobytes()
    return out if rate == RATE else resample_pcm16(out, rate, RATE)


def check_prompts(ivr: IvrConfig, media: Path) -> list[str]:
    """Every problem with the flow's WAV prompts, `step ID: file: why` (empty: all good)."""
    problems = []
    for step in ivr.steps:
        for p in step.play:
            if p.file is not None:
                try:
                    read_wav(media / p.file, ivr.max_prompt_s)
                except PromptError as exc:
                    problems.append(f"step {step.id}: {exc}")
    return problems


class PromptLibrary:
    """The flow's prompts as 8 kHz audio, converted (or synthesised) once."""

    def __init__(self, media: Path, cache: Path, tts: Tts | None) -> None:
        self._media = media
        self._cache = cache
        self._tts = tts
        self._loaded: dict[str, bytes] = {}

    @staticmethod
    def key(p: Prompt) -> str:
        return f"file:{p.file}" if p.file is not None else f"say:{p.say}"

    async def prepare(self, ivr: IvrConfig) -> None:
        """Load every prompt of the flow; PromptError for the first bad one."""
        for step in ivr.steps:
            for p in step.play:
                await self.audio(p, ivr.max_prompt_s)

    async def audio(self, p: Prompt, max_s: float = 120.0) -> bytes:
        key = self.key(p)
        if key in self._loaded:
            return self._loaded[key]
        if p.file is not None:
            pcm, rate, channels = read_wav(self._media / p.file, max_s)
            digest = hashlib.sha256(pcm + f"{rate}/{channels}".encode()).hexdigest()[:32]
            cached = self._cache / f"{digest}.sln"
            if cached.exists():
                out = cached.read_bytes()
            else:
                out = to_8k_mono(pcm, rate, channels)
                self._store(cached, out)
        else:
            assert p.say is not None
            cached = self._cache / f"tts-{hashlib.sha256(p.say.encode()).hexdigest()[:32]}.sln"
            if cached.exists():
                out = cached.read_bytes()
            else:
                if self._tts is None:
                    raise PromptError("a say: prompt needs the TTS voice, which is not loaded")
                parts = [to_8k_mono(c.pcm, c.sample_rate, 1)
                         async for c in self._tts.synthesize(p.say)]
                out = b"".join(parts)
                self._store(cached, out)
        self._loaded[key] = out
        return out

    @staticmethod
    def _store(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
