"""SIP MESSAGE through Asterisk: MessageSend out, the dialplan's TelevoxMessage UserEvent in.

Out: `Destination: pjsip:PJSIP/<number>@<trunk>` (the trunk's contact with the number as
the user part), `From: <caller id>` (the From user), the body base64-encoded so any
character and newline survives the AMI line format.
In: asterisk/extensions.conf [televox-messages] raises
`UserEvent: TelevoxMessage` with From, To and Body base64-encoded.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Protocol

from televox_pbx.ami.client import AmiActionError, AmiClient
from televox_pbx.ami.codec import AmiMessage

INBOUND_EVENT = "TelevoxMessage"
# The user part of a SIP URI or name-addr: "Ann" <sip:+15551234567@host;...>
_URI_USER = re.compile(r"sips?:([^@;>]+)@")


class Messenger(Protocol):
    async def send_message(self, trunk: str, to: str, from_number: str, body: str) -> None:
        """Hand one text to the PBX. Raises on refusal (the message is failed)."""


class MessageRefused(Exception):
    """The PBX refused the message; the reason is its own words."""


@dataclass(frozen=True, slots=True)
class InboundMessage:
    sender: str  # the From user part (a number in some format)
    to: str
    body: str


def message_send_fields(trunk: str, to: str, from_number: str,
                        body: str) -> list[tuple[str, str]]:
    return [("Action", "MessageSend"), ("Destination", f"pjsip:PJSIP/{to}@{trunk}"),
            ("From", from_number),
            ("Base64Body", base64.b64encode(body.encode("utf-8")).decode("ascii"))]


class AmiMessenger:
    def __init__(self, client: AmiClient) -> None:
        self._client = client

    async def send_message(self, trunk: str, to: str, from_number: str, body: str) -> None:
        try:
            await self._client.send_action(message_send_fields(trunk, to, from_number, body))
        except AmiActionError as exc:
            raise MessageRefused(str(exc)) from exc


def _b64(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return base64.b64decode(value.strip(), validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return None


def uri_user(value: str) -> str:
    m = _URI_USER.search(value)
    return m.group(1) if m else value.strip().strip('"<>')


def parse_inbound(msg: AmiMessage) -> InboundMessage | None:
    """The dialplan's TelevoxMessage UserEvent, or None for any other event."""
    if msg.event != "UserEvent" or msg.get("UserEvent") != INBOUND_EVENT:
        return None
    sender, to, body = (_b64(msg.get(k)) for k in ("From", "To", "Body"))
    if sender is None or body is None:
        return None
    return InboundMessage(uri_user(sender), uri_user(to or ""), body)
