"""Local model engines (Silero VAD, faster-whisper, llama.cpp, Piper) and the model registry.

Importing this package is cheap: the heavy libraries load when an engine is first built.
"""

from televox_pbx.voice.engines.holder import ALL_ENGINES, Engines, EngineStatus

__all__ = ["ALL_ENGINES", "EngineStatus", "Engines"]
