"""SIP MESSAGE in the simulator: MessageSend as Asterisk answers it, and an inbound text
as the shipped [televox-messages] dialplan announces it (a TelevoxMessage UserEvent)."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from televox_pbx.ami.codec import AmiMessage

_DEST = re.compile(r"^pjsip:PJSIP/(?P<num>[^@]+)@(?P<trunk>.+)$")
Fields = list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class SentMessage:
    to: str
    trunk: str
    sender: str
    body: str


def parse_message_send(msg: AmiMessage) -> SentMessage | str:
    """The message, or Asterisk's error text."""
    m = _DEST.match(msg.get("Destination") or msg.get("To") or "")
    if m is None:
        return "Message technology not found."
    raw = msg.get("Base64Body")
    if raw is not None:
        try:
            body = base64.b64decode(raw, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return "Invalid Base64Body."
    else:
        body = msg.get("Body") or ""
    return SentMessage(m["num"], m["trunk"], msg.get("From") or "", body)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def inbound_fields(sender: str, to: str, body: str, host: str = "203.0.113.5") -> Fields:
    """The UserEvent fields: MESSAGE(from), MESSAGE(to) and MESSAGE(body) base64-encoded."""
    return [("Channel", "Message/ast_msg_queue"), ("UserEvent", "TelevoxMessage"),
            ("From", _b64(f'"{sender}" <sip:{sender}@{host}>')),
            ("To", _b64(f"sip:{to}@127.0.0.1")), ("Body", _b64(body))]
