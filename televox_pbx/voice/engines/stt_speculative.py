"""Hide Whisper's fixed ~0.5 s cost: start transcribing when the caller pauses.

Whisper pads every clip to 30 s, so a transcription costs about the same however short
the utterance; what can be saved is the wait. The turn loop calls `speculate(audio)` as
soon as the VAD hears the first short pause after speech, and `final(audio)` when the
endpoint is confirmed. If the caller did not speak again in between (same audio), the
speculative result is used, often already finished; otherwise it is discarded.
"""

from __future__ import annotations

import asyncio
import contextlib

from televox_pbx.voice.interfaces import AudioChunk, Stt, Transcript


class SpeculativeTranscriber:
    def __init__(self, stt: Stt) -> None:
        self._stt = stt
        self._audio: AudioChunk | None = None
        self._task: asyncio.Task[Transcript] | None = None
        self.reused = 0  # finals served by a speculation (for metrics and tests)

    def speculate(self, audio: AudioChunk) -> None:
        """Start (or keep) transcribing `audio`; any older speculation is dropped."""
        if self._task is not None and self._audio == audio:
            return
        self.cancel()
        self._audio = audio
        self._task = asyncio.get_running_loop().create_task(
            self._stt.transcribe(audio), name="stt-speculative")

    async def final(self, audio: AudioChunk) -> Transcript:
        task, same = self._task, self._audio == audio
        self._task, self._audio = None, None
        if task is not None and same:
            self.reused += 1
            return await task
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        return await self._stt.transcribe(audio)

    def cancel(self) -> None:
        """Drop a pending speculation (the caller kept talking, or the call ended)."""
        if self._task is not None:
            self._task.cancel()
            # Retrieve the outcome so a failure is never reported as unhandled.
            self._task.add_done_callback(_consume)
        self._task, self._audio = None, None


def _consume(task: asyncio.Task[Transcript]) -> None:
    if not task.cancelled():
        task.exception()
