"""What the AMI client raises: a refused login, a link that is down or lost, an action
Asterisk answered with an error, and the two outcomes of an Originate that matter most:
refused before dialing (nothing went out) and unknown (it may have gone out)."""

from __future__ import annotations

from televox_pbx.ami.codec import AmiMessage


class AmiError(Exception):
    """Base of every AMI client error."""


class AmiLoginError(AmiError):
    """Asterisk refused the login (or no secret is configured)."""


class AmiNotConnected(AmiError):
    """Nothing was sent: the client is not logged in right now."""


class OriginateRefused(AmiNotConnected):
    """Asterisk answered the Originate with an error that proves it never dialled (it is
    shutting down, or the session is not logged in): nothing went out, so the attempt is
    unsent, not a failed call."""

    def __init__(self, response: AmiMessage) -> None:
        super().__init__(response.get("Message") or "Originate refused before dialling")
        self.response = response


class AmiConnectionLost(AmiError):
    """The connection dropped after the action was written, before its Response."""


class AmiTimeout(AmiError):
    """No Response within the deadline."""


class AmiActionError(AmiError):
    """Asterisk answered `Response: Error`."""

    def __init__(self, response: AmiMessage) -> None:
        super().__init__(response.get("Message") or "AMI action failed")
        self.response = response


class OriginateUnknown(AmiError):
    """The Originate was written but its fate is unknown (connection lost or no Response).

    Never resend: reconcile with `live_call_ids()` and the event stream instead.
    """

    def __init__(self, call_id: str, reason: str) -> None:
        super().__init__(f"originate outcome unknown: {reason}")
        self.call_id = call_id
