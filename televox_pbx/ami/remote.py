"""Another node's Asterisk, asked once (issue 19 item 4): which calls are still up there.

A survivor reconciling a dead node's calls logs in to that node's AMI (its address is in
the nodes row) with the cluster's AMI credentials: every box's Asterisk carries the same
manager.conf user (asterisk/manager.conf) and secret, the survivor's own `ami.username`
and secret. One short connection per question, with a short connect timeout, on the
injected clock: an unreachable Asterisk costs at most `timeout_s`, never blocks the daemon.
"""

from __future__ import annotations

import contextlib

from televox_pbx.ami.client import AmiClient
from televox_pbx.clock import Clock, wait_for
from televox_pbx.config.settings import AmiSettings

# Connect + banner + login, then CoreShowChannels: each bounded by this.
REMOTE_TIMEOUT_S = 3.0


class Unreachable(Exception):
    """That Asterisk did not answer (refused, timed out, login rejected, no address)."""


def parse_address(address: str) -> tuple[str, int] | None:
    """'host:port' as stored in the nodes row; None for 'simulator' (the embedded PBX
    dies with its daemon) or anything else that is no AMI address."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


class RemoteAmiProbe:
    """ChannelProbe (televox_pbx/ports.py) for one other node's Asterisk."""

    def __init__(self, settings: AmiSettings, clock: Clock, address: str,
                 timeout_s: float = REMOTE_TIMEOUT_S) -> None:
        self._settings, self._clock = settings, clock
        self._address, self._timeout = address, timeout_s

    async def live_call_ids(self) -> set[str]:
        where = parse_address(self._address)
        if where is None:
            raise Unreachable("no AMI address")
        client = AmiClient(self._settings, clock=self._clock, host=where[0], port=where[1],
                           action_timeout_s=self._timeout)
        try:
            await wait_for(self._clock, client.start(), self._timeout)
            return await wait_for(self._clock, client.live_call_ids(), self._timeout)
        except Exception as exc:  # refused, timed out, rejected: all mean "not reachable"
            raise Unreachable(type(exc).__name__) from exc
        finally:
            with contextlib.suppress(Exception):
                await client.close()


class RemoteProbeFactory:
    """What the reconciler asks for each dead node's address."""

    def __init__(self, settings: AmiSettings, clock: Clock) -> None:
        self._settings, self._clock = settings, clock

    def __call__(self, address: str) -> RemoteAmiProbe:
        return RemoteAmiProbe(self._settings, self._clock, address)
