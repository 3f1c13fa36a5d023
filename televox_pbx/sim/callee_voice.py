"""What a simulated callee says: a scenario's script rendered into the audio leg's segments.

Apart from the call flows because it is about the scenario, not the PBX: `say:` items need
a speech source (Piper, or placeholder tones where a test allows them), which is checked
when the simulator is built rather than when the first call answers.
"""

from __future__ import annotations

import asyncio

from televox_pbx.sim.audio_leg import Segment
from televox_pbx.sim.scenario import Behaviour, Callee, Scenario
from televox_pbx.sim.speech import (
    SpeechSource,
    SpeechUnavailable,
    beep,
    placeholder_speech,
    read_wav_8k,
)


class CalleeVoice:
    def __init__(self, speech: SpeechSource | None, allow_placeholder: bool) -> None:
        self._speech = speech
        self._placeholder = allow_placeholder

    def check(self, scenario: Scenario) -> None:
        """Raise SpeechUnavailable when the scenario needs speech that nothing can make."""
        if self._speech is not None or self._placeholder:
            return
        callees = [scenario.default, scenario.inbound, *scenario.numbers.values()]
        for c in callees:
            if any(item.say for item in c.script) or (
                    c.behaviour == Behaviour.VOICEMAIL and not c.script):
                raise SpeechUnavailable(
                    "the scenario has `say:` items (or a voicemail greeting) but no speech "
                    "source is configured: pass speech= (Piper) or allow placeholder tones")

    async def render(self, callee: Callee) -> list[Segment]:
        segments: list[Segment] = []
        if callee.behaviour == Behaviour.VOICEMAIL and not callee.script:
            greeting = await self._say(callee.greeting)
            return [Segment(pcm=greeting + beep(), barge_in=True)]
        for item in callee.script:
            if item.say is not None:
                pcm = await self._say(item.say)
                segments.append(Segment(pcm=pcm, at_s=item.at_s, barge_in=item.barge_in))
            elif item.wav is not None:
                pcm = await asyncio.to_thread(read_wav_8k, item.wav)
                segments.append(Segment(pcm=pcm, at_s=item.at_s, barge_in=item.barge_in))
            elif item.pause_s is not None:
                segments.append(Segment(pause_s=item.pause_s, at_s=item.at_s))
            elif item.dtmf is not None:
                segments.append(Segment(dtmf=item.dtmf, at_s=item.at_s))
        if callee.behaviour == Behaviour.VOICEMAIL:
            segments.append(Segment(pcm=beep(), barge_in=True))
        return segments

    async def _say(self, text: str) -> bytes:
        if self._speech is not None:
            return await self._speech(text)
        if self._placeholder:
            return placeholder_speech(text)
        raise SpeechUnavailable("a `say:` item needs a speech source (Piper); none configured")
