"""What a finished call leaves: its disposition, transcript, recording and call record."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from televox_pbx.agent.dispositions import DispositionState
from televox_pbx.agent.outcome import settle
from televox_pbx.domain import AmdStatus
from televox_pbx.store.transcripts import CallRecord
from televox_pbx.voice.call_setup import CallInfo, CallLogPort, CallResult, SessionConfig
from televox_pbx.voice.context import Conversation
from televox_pbx.voice.recording import StereoRecorder

log = logging.getLogger(__name__)


async def write_result(info: CallInfo, config: SessionConfig, context: Conversation,
                       disposition: DispositionState, amd: AmdStatus | None, ended_by: str,
                       recorder: StereoRecorder, wall: Callable[[float], datetime],
                       call_log: CallLogPort, amd_cause: str | None = None) -> CallResult:
    """Decide the disposition (what the call set, else the transcript's), write the
    recording, save the call record. Failures are logged: the result is still returned."""
    turns = context.rows(wall)
    # What the call set stands where it must (opt-out, DTMF); else the whole transcript
    # decides, after hang-up (agent/outcome.py).
    value = settle(info.campaign, disposition.value, turns, amd)
    path: Path | None = None
    seconds: float | None = None
    if config.recordings_dir is not None:
        path = config.recordings_dir / info.campaign.name / f"{info.call_id}.wav"
        try:
            seconds = await asyncio.to_thread(recorder.write_wav, path)
        except OSError:
            log.exception("recording not written", extra={"call_id": info.call_id})
            path = None
    result = CallResult(value, turns, path, ended_by)
    try:
        await call_log.save_call(CallRecord(
            info.call_id, turns, value.value, path, seconds,
            amd.value if amd is not None and amd_cause is not None else None, amd_cause))
    except Exception:
        log.exception("call record not saved", extra={"call_id": info.call_id})
    log.info("call finished", extra={"call_id": info.call_id, "disposition": value.value,
                                      "ended_by": ended_by, "turns": len(turns)})
    return result
