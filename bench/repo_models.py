"""The model settings every benchmark uses: the repository's model cache (var/models),
wherever the benchmark is started from. ModelSettings' default is relative to the working
directory, and a run from bench/ once looked for the end-of-turn model in bench/var/models,
missed it, and measured turns that ended on silence alone."""

from __future__ import annotations

import os
from pathlib import Path

from televox_pbx.config.settings import ModelSettings

ROOT = Path(__file__).resolve().parent.parent


def model_settings() -> ModelSettings:
    """TELEVOX_LLM picks another LLM of the manifest (e.g. the 0.5B)."""
    llm = os.environ.get("TELEVOX_LLM")
    settings = ModelSettings(cache_dir=ROOT / "var" / "models")
    return settings.model_copy(update={"llm": llm}) if llm else settings
