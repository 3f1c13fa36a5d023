"""`Engines`: the process-wide holder of the loaded models, shared by every call.

Each engine loads lazily on first use, exactly once, even when several threads ask at the
same time. The app should `await engines.preload()` at startup so the first call does not
pay the load time and the event loop never blocks on it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from televox_pbx.config.settings import ModelSettings
from televox_pbx.voice.engines.manifest import Manifest, load_manifest
from televox_pbx.voice.engines.registry import ModelRegistry

if TYPE_CHECKING:
    from televox_pbx.voice.engines.llm_llama import LlamaLlm
    from televox_pbx.voice.engines.stt_whisper import WhisperStt
    from televox_pbx.voice.engines.tts_piper import PiperTts
    from televox_pbx.voice.engines.turn_smart import SmartTurn
    from televox_pbx.voice.engines.vad_silero import SileroVad

log = logging.getLogger(__name__)

EngineName = Literal["vad", "stt", "llm", "tts", "turn"]
ALL_ENGINES: tuple[EngineName, ...] = ("vad", "stt", "llm", "tts", "turn")
VAD_MODEL_ID = "silero-vad-v6"  # not a setting: it ships inside faster-whisper
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class EngineStatus:
    name: str
    model: str
    loaded: bool
    load_seconds: float | None = None
    error: str | None = None


class Engines:
    def __init__(self, settings: ModelSettings, *, manifest: Manifest | None = None,
                 manifest_path: Path | None = None) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never let a library reach for a hub
        self.settings = settings
        self.registry = ModelRegistry(manifest or load_manifest(manifest_path),
                                      settings.cache_dir)
        self._models: dict[EngineName, str] = {
            "vad": VAD_MODEL_ID, "stt": settings.stt, "llm": settings.llm, "tts": settings.tts,
            "turn": settings.turn or ""}
        self._locks: dict[EngineName, threading.Lock] = {n: threading.Lock() for n in ALL_ENGINES}
        self._loaded: dict[EngineName, Any] = {}
        self._seconds: dict[EngineName, float] = {}
        self._errors: dict[EngineName, str] = {}
        self._voices: dict[str, PiperTts] = {}  # agents' own voices (tts_voice)
        self._voice_lock = threading.Lock()

    def vad(self) -> SileroVad:
        from televox_pbx.voice.engines.vad_silero import SileroVad
        return self._get("vad", lambda p: SileroVad(p.main))

    def stt(self) -> WhisperStt:
        from televox_pbx.voice.engines.stt_whisper import WhisperStt
        return self._get("stt", lambda p: WhisperStt(p.directory))

    def llm(self) -> LlamaLlm:
        from televox_pbx.voice.engines.llm_llama import LlamaLlm
        threads = self.settings.llm_threads
        return self._get("llm", lambda p: LlamaLlm.load(p.main, n_threads=threads))

    def tts(self) -> PiperTts:
        from televox_pbx.voice.engines.tts_piper import PiperTts
        return self._get("tts", lambda p: PiperTts(p.main))

    def tts_voice(self, voice: str) -> PiperTts:
        """The Piper engine of one voice of the manifest (an agent file's `voice:`), loaded
        once and shared by every call of every agent that names it. The settings' voice
        is the same engine as tts()."""
        if voice == self.settings.tts:
            return self.tts()
        from televox_pbx.voice.engines.tts_piper import PiperTts
        with self._voice_lock:
            engine = self._voices.get(voice)
            if engine is None:
                started = time.monotonic()
                engine = PiperTts(self.registry.resolve(voice).main)
                warm_up = getattr(engine, "warm_up", None)
                if warm_up is not None:
                    warm_up()
                self._voices[voice] = engine
                log.info("engine loaded", extra={"engine": "tts", "model": voice,
                                                 "seconds": round(time.monotonic() - started,
                                                                  3)})
        return engine

    def turn(self) -> SmartTurn | None:
        """The end-of-turn model; None when `models.turn` is off, or when it cannot load
        (then the silence timer alone ends turns, as before it; logged)."""
        if not self.settings.turn:
            return None
        from televox_pbx.voice.engines.turn_smart import SmartTurn
        try:
            return self._get("turn", lambda p: SmartTurn(p.main))
        except Exception:
            log.warning("end-of-turn model unavailable; turns end on silence alone",
                        exc_info=True, extra={"model": self.settings.turn})
            return None

    async def preload(self, names: tuple[EngineName, ...] = ALL_ENGINES) -> None:
        """Load engines off the event loop, one after another (they share the CPU)."""
        getters: dict[EngineName, Callable[[], object]] = {
            "vad": self.vad, "stt": self.stt, "llm": self.llm, "tts": self.tts,
            "turn": self.turn}
        for name in names:
            await asyncio.to_thread(getters[name])

    def status(self) -> list[EngineStatus]:
        return [EngineStatus(n, self._models[n], n in self._loaded, self._seconds.get(n),
                             self._errors.get(n)) for n in ALL_ENGINES if self._models[n]]

    def close(self) -> None:
        for engine in self._loaded.values():
            close = getattr(engine, "close", None)
            if close is not None:
                close()
        self._loaded.clear()

    def _get(self, name: EngineName, build: Callable[[Any], T]) -> T:
        engine = self._loaded.get(name)
        if engine is None:
            with self._locks[name]:
                engine = self._loaded.get(name)
                if engine is None:
                    engine = self._load(name, build)
        result: T = engine
        return result

    def _load(self, name: EngineName, build: Callable[[Any], T]) -> T:
        started = time.monotonic()
        try:
            engine = build(self.registry.resolve(self._models[name]))
            warm_up = getattr(engine, "warm_up", None)
            if warm_up is not None:
                warm_up()
        except Exception as exc:
            self._errors[name] = str(exc)
            raise
        self._seconds[name] = round(time.monotonic() - started, 3)
        self._errors.pop(name, None)
        self._loaded[name] = engine
        log.info("engine loaded", extra={"engine": name, "model": self._models[name],
                                         "seconds": self._seconds[name]})
        return engine
