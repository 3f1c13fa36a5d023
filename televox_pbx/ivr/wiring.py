"""The daemon's side of IVR campaigns: one prompt library per campaign (prompts converted
once per daemon, and once ever on disk), and the handler for each answered IVR call."""

from __future__ import annotations

from collections.abc import Callable

from televox_pbx.audiosocket.session import CallAudio
from televox_pbx.campaigns.dnc import CallDnc, DncService
from televox_pbx.clock import Clock
from televox_pbx.config.campaign import Campaign
from televox_pbx.config.settings import Settings
from televox_pbx.ivr.prompts import PromptLibrary, cache_dir, media_dir
from televox_pbx.ivr.session import IvrCall, IvrResult
from televox_pbx.store.db import Store
from televox_pbx.voice.interfaces import Tts


class IvrCalls:
    def __init__(self, store: Store, settings: Settings, clock: Clock,
                 tts: Tts | None) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock
        self._tts = tts
        self._libraries: dict[str, PromptLibrary] = {}
        self._dnc = CallDnc(DncService(store, settings.workspace, settings.default_country,
                                       clock))

    def library(self, campaign: Campaign) -> PromptLibrary:
        lib = self._libraries.get(campaign.name)
        if lib is None:
            lib = PromptLibrary(media_dir(self._settings), cache_dir(self._settings),
                                self._tts)
            self._libraries[campaign.name] = lib
        return lib

    async def handle(self, campaign: Campaign, call_id: str, phone: str, call: CallAudio,
                     on_result: Callable[[IvrResult], None]) -> None:
        await IvrCall(campaign, call_id, phone, self.library(campaign), self._store,
                      self._clock, self._dnc, self._settings.recordings_dir, on_result)(call)
