"""The events the simulated PBX raises, in one place for the AMI actions and the calls.

Every event is stamped on the injected clock and kept (tests read the whole stream); an
AMI session hears only the classes its user's `read =` grants, like Asterisk's manager.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from televox_pbx.ami.codec import AmiMessage
from televox_pbx.clock import Clock
from televox_pbx.sim.channel import Fields, SimChannel


class EventStream:
    def __init__(self, clock: Clock, broadcast: Callable[[Fields], None],
                 read: frozenset[str]) -> None:
        self._clock = clock
        self._broadcast = broadcast
        self._read = read
        self.log: deque[AmiMessage] = deque(maxlen=20000)

    def emit(self, event: str, fields: Fields, privilege: str = "call,all") -> None:
        full: Fields = [("Event", event), ("Privilege", privilege),
                        ("Timestamp", f"{self._clock.now().timestamp():.6f}"), *fields]
        self.log.append(AmiMessage(tuple(full)))
        # Like Asterisk's manager: a user hears only the classes its `read =` grants
        # (with the shipped manager.conf, no dialplan events such as VarSet or Newexten).
        if set(privilege.split(",")) & self._read:
            self._broadcast(full)

    def channel(self, event: str, ch: SimChannel, extra: Fields | None = None,
                privilege: str = "call,all") -> None:
        """An event about `ch`: its field block first, then `extra`."""
        self.emit(event, [*ch.fields(), *(extra or [])], privilege)
