"""Structured JSON logging to stdout, with phone numbers masked in message text.

Phone numbers and transcripts belong in structured fields (extra=...), which stay
redactable; anything number-like that slips into the message text is masked here.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

# 7+ digits, optionally with +, spaces, dots, dashes or parentheses between them.
_PHONE = re.compile(r"(?<![\w-])\+?\d[\d\s().-]{5,}\d(?!\w)")
# Fields that may hold a number or speech; masked in the JSON unless explicitly allowed.
SENSITIVE_FIELDS = frozenset({"phone", "e164", "number", "callerid", "transcript", "text",
                              "secret", "password", "token"})
_STD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()) | {
    "message", "asctime", "taskName"}


_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def mask_phone(value: str) -> str:
    """'+15550198000' -> '+1555***00': enough to correlate, not enough to dial.

    Call ids (UUIDs) are left whole: one that starts with digits is not a phone number,
    and operators need the full id to follow a call through the logs."""
    def repl(m: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", m.group(0))
        if len(digits) < 7:
            return m.group(0)
        return ("+" if m.group(0).startswith("+") else "") + digits[:4] + "***" + digits[-2:]
    parts = _UUID.split(value)
    if len(parts) == 1:
        return _PHONE.sub(repl, value)
    ids = _UUID.findall(value)
    out = [_PHONE.sub(repl, parts[0])]
    for uid, rest in zip(ids, parts[1:], strict=True):
        out += [uid, _PHONE.sub(repl, rest)]
    return "".join(out)


# Any key containing one of these (ami_secret, api_token, Authorization) is hidden whole.
_SECRET_PARTS = ("secret", "password", "passwd", "token", "api_key", "apikey",
                 "authorization", "credential")
_SPEECH_KEYS = frozenset({"transcript", "text", "utterance"})
_PHONE_KEYS = frozenset({"phone", "e164", "number", "callerid", "callerid_num", "caller_id"})


def _mask_field(key: str, value: Any, depth: int = 0) -> Any:
    k = key.lower()
    if any(part in k for part in _SECRET_PARTS):
        return "***"
    if k in _SPEECH_KEYS and isinstance(value, str):
        return f"<{len(value)} chars>"
    if isinstance(value, str):
        return mask_phone(value)
    if k in _PHONE_KEYS and isinstance(value, int) and not isinstance(value, bool):
        return mask_phone(str(value))  # extra={"phone": 15550100001}
    # Nested structures (AMI fields, payloads) get the same treatment, within reason.
    if depth < 4 and isinstance(value, dict):
        return {str(sk): _mask_field(str(sk), sv, depth + 1) for sk, sv in value.items()}
    if depth < 4 and isinstance(value, list | tuple):
        return [_mask_field(key, item, depth + 1) for item in value]
    return value


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": mask_phone(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STD_ATTRS and not key.startswith("_"):
                out[key] = _mask_field(key, value)
        if record.exc_info:
            out["exc"] = mask_phone(self.formatException(record.exc_info))
        if record.stack_info:
            out["stack"] = mask_phone(self.formatStack(record.stack_info))
        return json.dumps(out, default=str)


def setup_logging(level: str = "INFO", stream: Any = None) -> None:
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
