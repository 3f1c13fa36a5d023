"""The voice capacity: how many live conversations the box serves at once with the
first audio of a reply at p95 <= 2 s (bench/capacity.py measures it).

One model per engine serves every call, so conversations share the CPU: the number the
box can keep is a matter of its cores. The setting is checked against them at daemon start
(`effective`): above `per_core` x cores it is capped (or only warned about, `enforce`
off). Every campaign's max_concurrent is capped by it too (`campaign_limit`), with a
warning in `televox check` and `televox plan`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from televox_pbx.config.settings import CapacitySettings


@dataclass(frozen=True, slots=True)
class Capacity:
    conversations: int  # the limit the dialer keeps
    cores: int
    core_limit: int  # what these cores serve, by `per_core`
    warning: str | None = None  # the setting was above core_limit


def machine_cores() -> int:
    """Cores this process may run on (the affinity mask, not the host's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def core_limit(settings: CapacitySettings, cores: int) -> int:
    return max(1, math.floor(settings.per_core * cores + 1e-9))


def effective(settings: CapacitySettings, cores: int | None = None) -> Capacity:
    """The capacity the daemon runs with on a box of `cores` cores (default: this one)."""
    cores = machine_cores() if cores is None else cores
    limit = core_limit(settings, cores)
    wanted = settings.conversations
    if wanted is None:
        return Capacity(limit, cores, limit)
    if wanted <= limit:
        return Capacity(wanted, cores, limit)
    text = (f"capacity.conversations {wanted} is above what {cores} core(s) serve "
            f"({limit} at {settings.per_core:g} per core)")
    if settings.enforce:
        return Capacity(limit, cores, limit, f"{text}; capped at {limit}")
    return Capacity(wanted, cores, limit, f"{text}; kept (capacity.enforce is off): "
                                          "expect replies slower than 2 s")


def campaign_limit(max_concurrent: int, capacity: int) -> int:
    return min(max_concurrent, capacity)


def campaign_warning(name: str, max_concurrent: int, capacity: int) -> str | None:
    """Words for a campaign that asks for more lines than the voice capacity."""
    if max_concurrent <= capacity:
        return None
    return (f"warning: campaign {name!r}: pacing.max_concurrent {max_concurrent} is above "
            f"the voice capacity {capacity}; capped at {capacity}")
