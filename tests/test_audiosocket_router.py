"""UUID routing: expected outbound, announced inbound, grace period, replays."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from televox_pbx.audiosocket.router import Refused, RefusedReason, Router
from televox_pbx.audiosocket.session import CallAudio
from televox_pbx.clock import FakeClock


async def outbound(call: CallAudio) -> None:
    return None


async def inbound(call: CallAudio) -> None:
    return None


def new_id() -> str:
    return str(uuid.uuid4())


async def settle() -> None:
    """Let just-created tasks reach their first clock sleep."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_expected_outbound_is_routed_at_once() -> None:
    r = Router(FakeClock())
    cid = new_id()
    r.expect(cid.upper(), outbound)  # any spelling; the canonical form is lowercase
    route = await r.claim(cid)
    assert (route.call_id, route.handler, route.inbound) == (cid, outbound, False)
    assert r.pending_count == 0


async def test_inbound_announced_before_connect() -> None:
    r = Router(FakeClock(), inbound_handler=inbound)
    cid = new_id()
    r.announce_inbound(cid, "+15550100123")
    route = await r.claim(cid)
    assert route.inbound and route.handler is inbound and route.caller_id == "+15550100123"


async def test_inbound_announced_during_grace() -> None:
    clock = FakeClock()
    r = Router(clock, inbound_handler=inbound, grace_s=1.0)
    cid = new_id()
    claim = asyncio.create_task(r.claim(cid))
    await settle()
    await clock.advance(0.5)
    assert not claim.done()
    r.announce_inbound(cid, None)
    route = await claim
    assert route.inbound


async def test_unknown_is_refused_after_grace() -> None:
    clock = FakeClock()
    r = Router(clock, inbound_handler=inbound, grace_s=1.0)
    claim = asyncio.create_task(r.claim(new_id()))
    await settle()
    await clock.advance(0.99)
    assert not claim.done()
    await clock.advance(0.01)
    with pytest.raises(Refused) as err:
        await claim
    assert err.value.reason == RefusedReason.UNKNOWN


async def test_replay_is_refused() -> None:
    clock = FakeClock()
    r = Router(clock)
    cid = new_id()
    r.expect(cid, outbound)
    await r.claim(cid)
    with pytest.raises(Refused) as err:
        await r.claim(cid)
    assert err.value.reason == RefusedReason.REPLAY
    with pytest.raises(ValueError):
        r.expect(cid, outbound)  # an attempt id is never reused
    r.announce_inbound(cid)  # ignored, logged
    assert r.pending_count == 0


async def test_concurrent_duplicate_during_grace_is_a_replay() -> None:
    clock = FakeClock()
    r = Router(clock, inbound_handler=inbound)
    cid = new_id()
    first = asyncio.create_task(r.claim(cid))
    await asyncio.sleep(0)
    with pytest.raises(Refused) as err:
        await r.claim(cid)
    assert err.value.reason == RefusedReason.REPLAY
    r.announce_inbound(cid)
    assert (await first).inbound


async def test_inbound_without_handler_is_refused() -> None:
    r = Router(FakeClock())
    cid = new_id()
    r.announce_inbound(cid)
    with pytest.raises(Refused) as err:
        await r.claim(cid)
    assert err.value.reason == RefusedReason.NO_INBOUND_HANDLER


async def test_announcement_does_not_override_an_outbound_expectation() -> None:
    r = Router(FakeClock(), inbound_handler=inbound)
    cid = new_id()
    r.expect(cid, outbound)
    r.announce_inbound(cid)
    assert (await r.claim(cid)).handler is outbound


async def test_discard_and_expiry() -> None:
    clock = FakeClock()
    r = Router(clock, grace_s=1.0, pending_ttl_s=60.0)
    gone, kept, dropped = new_id(), new_id(), new_id()
    r.expect(gone, outbound)
    r.expect(dropped, outbound)
    r.discard(dropped)
    await clock.advance(61)
    r.expect(kept, outbound)
    assert r.pending_count == 1
    claim = asyncio.create_task(r.claim(gone))
    await settle()
    await clock.advance(1.0)
    with pytest.raises(Refused):
        await claim


def test_bad_ids_are_rejected() -> None:
    r = Router(FakeClock())
    with pytest.raises(ValueError):
        r.expect("not-a-uuid", outbound)
