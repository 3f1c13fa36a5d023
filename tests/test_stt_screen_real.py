"""Whisper on real synthesized speech and noise: the opt-out words are heard, the
decoder's doubt comes through the STT interface, and noise is never answered.
Marked `models` (Whisper tiny.en and Piper; ~20 s on 2 cores)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from televox_pbx.agent.hearing import screen
from televox_pbx.agent.optout import is_opt_out
from televox_pbx.config.settings import ModelSettings
from televox_pbx.voice.engines import Engines
from televox_pbx.voice.engines.manifest import load_manifest
from televox_pbx.voice.interfaces import AudioChunk

pytestmark = pytest.mark.models

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def engines() -> Iterator[Engines]:
    cache = Path(os.environ.get("TELEVOX_MODELS_DIR", REPO / "var" / "models"))
    eng = Engines(ModelSettings(cache_dir=cache),
                  manifest=load_manifest(REPO / "models" / "manifest.json"))
    yield eng
    eng.close()


@pytest.mark.parametrize("line", ["Unsubscribe.", "Unsubscribe me.", "Remove me."])
async def test_one_word_opt_outs_are_heard(engines: Engines, line: str) -> None:
    """Without the decoder's hotwords tiny.en heard "Unsubscribe." as "and subscribe."."""
    pcm = engines.tts().synthesize_pcm8k(line)
    heard = await engines.stt().transcribe(AudioChunk(pcm, 8000))
    assert screen(heard, pcm, 8000).text == heard.text
    assert heard.no_speech_prob is not None and heard.no_speech_prob < 0.5
    assert heard.avg_logprob is not None and heard.avg_logprob > -1.0
    if line != "Remove me.":
        assert is_opt_out(heard.text), heard.text


async def test_line_noise_is_never_a_turn(engines: Engines) -> None:
    rng = np.random.default_rng(7)
    n = 8000 * 2
    clicks = rng.normal(0, 80, n)
    clicks[rng.integers(0, n, 40)] += rng.normal(0, 6000, 40)
    hum = 400 * np.sin(2 * np.pi * 60 * np.arange(n) / 8000) + rng.normal(0, 100, n)
    for noise in (rng.normal(0, 300, n), clicks, hum):
        pcm = np.clip(noise, -32768, 32767).astype("<i2").tobytes()
        heard = await engines.stt().transcribe(AudioChunk(pcm, 8000))
        assert screen(heard, pcm, 8000).text == "", heard
