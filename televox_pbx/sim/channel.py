"""A simulated channel and the AMI field blocks Asterisk 22 attaches to its events."""

from __future__ import annotations

from dataclasses import dataclass, field

STATE_DESC = {0: "Down", 4: "Ring", 5: "Ringing", 6: "Up"}

# Q.850 cause texts exactly as Asterisk 22 prints them (see the fixtures).
CAUSE_TXT = {
    0: "Unknown",
    1: "Unallocated (unassigned) number",
    16: "Normal Clearing",
    17: "User busy",
    18: "No user responding",
    19: "User alerting, no answer",
    34: "Circuit/channel congestion",
}

Fields = list[tuple[str, str]]


@dataclass(slots=True)
class SimChannel:
    name: str  # PJSIP/trunk-00000007
    uniqueid: str
    call_id: str  # TELEVOX_CALL_ID: the AudioSocket UUID
    caller_num: str = "<unknown>"
    caller_name: str = "<unknown>"
    connected_num: str = "<unknown>"
    connected_name: str = "<unknown>"
    state: int = 0
    context: str = "from-trunk"
    exten: str = "s"
    priority: int = 1
    application: str = "AppDial2"
    app_data: str = "(Outgoing Line)"
    created_at: float = 0.0  # monotonic
    variables: dict[str, str] = field(default_factory=dict)

    @property
    def linkedid(self) -> str:
        return self.uniqueid

    def fields(self) -> Fields:
        return [
            ("Channel", self.name),
            ("ChannelState", str(self.state)),
            ("ChannelStateDesc", STATE_DESC.get(self.state, "Unknown")),
            ("CallerIDNum", self.caller_num),
            ("CallerIDName", self.caller_name),
            ("ConnectedLineNum", self.connected_num),
            ("ConnectedLineName", self.connected_name),
            ("Language", "en"),
            ("AccountCode", ""),
            ("Context", self.context),
            ("Exten", self.exten),
            ("Priority", str(self.priority)),
            ("Uniqueid", self.uniqueid),
            ("Linkedid", self.linkedid),
        ]

    def dest_fields(self) -> Fields:
        return [("Dest" + k, v) for k, v in self.fields()]


def cause_fields(cause: int, tech_cause: int | None = None, *, with_text: bool = True) -> Fields:
    out: Fields = [("Cause", str(cause))]
    if with_text:
        out.append(("Cause-txt", CAUSE_TXT.get(cause, "Unknown")))
    if tech_cause is not None:
        out.append(("TechCause", str(tech_cause)))
    return out


def duration_hms(seconds: float) -> str:
    s = max(0, int(seconds))
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"
