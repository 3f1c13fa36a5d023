"""The wire fields of one Originate, with its channel variables made safe."""

from __future__ import annotations

import re

from televox_pbx.domain import OriginateRequest

UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                     r"[0-9a-fA-F]{12}$")
_VAR_UNSAFE = re.compile(r"[\r\n,]")


def looks_like_uuid(value: str | None) -> bool:
    return bool(value) and UUID_RE.match(value or "") is not None


def sanitize_variable(value: str) -> str:
    """Originate `Variable:` values cannot carry CR/LF (splits the message) or commas
    (Asterisk splits multiple assignments on them)."""
    return _VAR_UNSAFE.sub(" ", value)


def originate_fields(req: OriginateRequest, *, amd: bool) -> list[tuple[str, str]]:
    """The wire fields of one Originate (exposed for tests and the event log)."""
    fields: list[tuple[str, str]] = [
        ("Action", "Originate"),
        ("ActionID", req.call_id),
        ("ChannelId", req.call_id),
        ("Channel", f"PJSIP/{req.phone}@{req.trunk}"),
        ("Context", req.context),
        ("Exten", req.exten),
        ("Priority", str(req.priority)),
        ("Timeout", str(int(req.ring_timeout_s * 1000))),
        ("CallerID", sanitize_variable(req.caller_id)),
        ("Async", "true"),
        ("Variable", f"TELEVOX_CALL_ID={req.call_id}"),
    ]
    for name, value in req.variables.items():
        key = re.sub(r"[^A-Za-z0-9_]", "_", name).upper()
        if not key.startswith("TELEVOX_"):
            key = f"TELEVOX_VAR_{key}"
        fields.append(("Variable", f"{key}={sanitize_variable(value)}"))
    fields.append(("Variable", f"TELEVOX_AMD={'1' if amd else '0'}"))
    return fields
