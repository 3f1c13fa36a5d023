"""What the agent's tools and the callee's keys do outside the conversation: dispositions,
callbacks, the DNC list, the transfer. Each reports failure instead of raising, so a
broken port never ends a call."""

from __future__ import annotations

import json
import logging

from televox_pbx.agent.dispositions import DispositionState
from televox_pbx.agent.tools import InvalidTool, ScheduleCallback, SetDisposition, ToolAction
from televox_pbx.domain import Disposition
from televox_pbx.voice.call_setup import CallInfo, CallPorts

log = logging.getLogger(__name__)


class CallActions:
    def __init__(self, info: CallInfo, ports: CallPorts, disposition: DispositionState) -> None:
        self.info = info
        self.ports = ports
        self.disposition = disposition

    @property
    def can_transfer(self) -> bool:
        return self.info.campaign.transfer is not None and self.ports.transfer is not None

    async def apply(self, action: ToolAction) -> str | None:
        """Side effects of a non-terminal tool; returns the result shown to the LLM."""
        match action:
            case SetDisposition(disposition=disposition):
                self.disposition.set(disposition, "tool")
                return json.dumps({"set_disposition": disposition.value, "ok": True})
            case ScheduleCallback(due_at=due_at, zone=zone):
                try:
                    await self.ports.callbacks.schedule(self.info.call_id, due_at, zone)
                except Exception:
                    log.exception("callback not stored", extra={"call_id": self.info.call_id})
                    return json.dumps({"schedule_callback": "failed"})
                self.disposition.set(Disposition.CALLBACK, "tool")
                return json.dumps({"schedule_callback": due_at.isoformat(), "ok": True})
            case InvalidTool(name=name, error=error):
                return json.dumps({name: "error", "error": error})
        return None

    async def opt_out(self, phone: str, source: str) -> None:
        """On the DNC list before anything else happens on the call."""
        try:
            await self.ports.dnc.add(phone, reason="callee asked on the call",
                                     source=f"call:{source}")
        except Exception:
            log.exception("DNC add failed", extra={"call_id": self.info.call_id})
        log.info("opt-out", extra={"call_id": self.info.call_id, "source": source})

    async def transfer(self) -> bool:
        """Hand the call to the campaign's transfer target; False when that failed."""
        target, port = self.info.campaign.transfer, self.ports.transfer
        assert target is not None and port is not None
        try:
            await port.transfer(self.info.call_id, target)
        except Exception:
            log.exception("transfer failed", extra={"call_id": self.info.call_id})
            return False
        return True

