"""Outgoing webhooks: events derived from the store's own change rows, signed with
HMAC-SHA256, retried with exponential backoff on the injected clock, every attempt logged.
A receiver that fails 3 times then succeeds gets exactly one acknowledged delivery, and a
receiver that never answers does not hold up the dialer."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp import web
from api_support import api_settings, running_api, until
from app_support import campaign_data, write_campaign
from dialer_support import FakeOriginator, make_campaign, seed

from televox_pbx.campaigns.dialer import Dialer
from televox_pbx.clock import FakeClock
from televox_pbx.config.settings import WebhookSettings, WebhookSubscription
from televox_pbx.domain import CallOutcome, CallStatus, Disposition
from televox_pbx.store import Store
from televox_pbx.store.call_feedback import set_disposition
from televox_pbx.store.timefmt import parse_iso
from televox_pbx.store.webhooks import delivery_attempts, list_deliveries
from televox_pbx.web.webhooks import WebhookDispatcher, backoff_s, verify

SECRET = "whsec-test"


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """Subscriptions read their secret from the environment, never from the YAML."""
    monkeypatch.setenv("TELEVOX_TEST_WEBHOOK_SECRET", SECRET)


@dataclass
class Receiver:
    """A local HTTP receiver: answers each request with the next scripted status (the
    last one repeats); `hold` makes it wait until released (a receiver that hangs)."""

    script: list[int]
    hold: asyncio.Event | None = None
    got: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    acked: list[str] = field(default_factory=list)  # event ids answered 2xx
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.got.append((dict(request.headers), body))
        if self.hold is not None:
            await self.hold.wait()
        status = self.script[min(len(self.got) - 1, len(self.script) - 1)]
        if 200 <= status < 300:
            self.acked.append(request.headers["X-Televox-Event-Id"])
        return web.Response(status=status, text="ok" if status < 300 else "nope")


@asynccontextmanager
async def serve(receiver: Receiver) -> AsyncIterator[Receiver]:
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    receiver.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    try:
        yield receiver
    finally:
        if receiver.hold is not None:
            receiver.hold.set()
        await runner.cleanup()


def hooks(url: str, **kw: object) -> WebhookSettings:
    sub = WebhookSubscription(name="crm", url=url, secret_env="TELEVOX_TEST_WEBHOOK_SECRET",
                              **kw)  # type: ignore[arg-type]
    return WebhookSettings(subscriptions=[sub], retry_base_s=30, retry_max_interval_s=3600)


async def one_answered_call(store: Store, clock: FakeClock) -> str:
    """A campaign call through the real dialer: claimed, originated, answered, INTERESTED."""
    # The contact's declared zone is trusted over the number's (the clock is UTC midday).
    policy = {"source": "contact", "trust_contact_timezone": True}
    await seed(store, make_campaign(timezone_policy=policy), [["+12125550101"]],
               timezones=["UTC"])
    originator = FakeOriginator(clock)
    dialer = Dialer(store, originator, clock)
    await dialer.tick()
    [sent] = originator.sent
    call_id = sent.req.call_id
    now = clock.now()
    await dialer.on_outcome(CallOutcome(call_id, CallStatus.COMPLETED, originated_at=now,
                                        answered_at=now, hangup_at=now + timedelta(seconds=42)),
                            turns=3, disposition=Disposition.INTERESTED)
    return call_id


async def test_events_are_derived_once_and_signed(store: Store) -> None:
    clock = FakeClock()
    async with serve(Receiver([200])) as rx:
        settings = hooks(rx.url, campaigns=["spring"])
        other = WebhookSubscription(name="other", url=rx.url, campaigns=["autumn"],
                                    secret_env="TELEVOX_TEST_WEBHOOK_SECRET")
        settings = settings.model_copy(update={"subscriptions": [*settings.subscriptions,
                                                                 other]})
        dispatcher = WebhookDispatcher(store, settings, clock, "http://televox.test:8080")
        try:
            call_id = await one_answered_call(store, clock)
            await dispatcher.step()
            await dispatcher.drain()
            await dispatcher.step()  # nothing new: no event is queued twice
            await dispatcher.drain()
        finally:
            await dispatcher.close()
    payloads = [json.loads(body) for _, body in rx.got]
    kinds = [p["type"] for p in payloads]
    assert sorted(kinds) == ["call.completed", "campaign.lead.updated",
                             "campaign.state.changed"]
    by = {p["type"]: p for p in payloads}
    assert by["campaign.state.changed"]["data"]["to_state"] == "RUNNING"
    lead = by["campaign.lead.updated"]["data"]
    assert (lead["campaign"], lead["from_status"], lead["to_status"]) == (
        "spring", "calling", "completed")
    assert lead["last_disposition"] == "INTERESTED" and lead["call_id"] == call_id
    done = by["call.completed"]["data"]
    assert (done["call_id"], done["status"], done["disposition"], done["duration_s"]) == (
        call_id, "completed", "INTERESTED", 42.0)
    assert done["transcript_url"] == f"http://televox.test:8080/api/v1/calls/{call_id}"
    assert len({p["id"] for p in payloads}) == 3
    for headers, body in rx.got:
        assert verify(SECRET.encode(), headers["X-Televox-Timestamp"], body,
                      headers["X-Televox-Signature"], clock.now())
        assert not verify(b"other", headers["X-Televox-Timestamp"], body,
                          headers["X-Televox-Signature"], clock.now())
        assert headers["X-Televox-Event-Id"] == json.loads(body)["id"]
    rows, total = await list_deliveries(store)
    assert total == 3 and {d.status for d in rows} == {"delivered"}


async def test_three_failures_then_one_acknowledged_delivery(store: Store) -> None:
    clock = FakeClock()
    async with serve(Receiver([500, 502, 503, 200])) as rx:
        settings = hooks(rx.url, events=["call.completed"])
        dispatcher = WebhookDispatcher(store, settings, clock, "http://televox.test")
        try:
            await one_answered_call(store, clock)
            await dispatcher.step()
            await dispatcher.drain()
            for n, delay in enumerate((30, 60, 120), start=1):  # 30 s, then doubling
                await clock.advance(delay - 1)
                await dispatcher.step()
                await dispatcher.drain()
                assert len(rx.got) == n  # not due yet: nothing sent
                await clock.advance(1)
                await dispatcher.step()
                await dispatcher.drain()
                assert len(rx.got) == n + 1
            for _ in range(5):  # long after: nothing more is sent
                await clock.advance(7200)
                await dispatcher.step()
                await dispatcher.drain()
        finally:
            await dispatcher.close()
    assert len(rx.got) == 4
    assert len(rx.acked) == 1
    assert len({h["X-Televox-Event-Id"] for h, _ in rx.got}) == 1  # one event, retried
    stamps = [int(h["X-Televox-Timestamp"]) for h, _ in rx.got]
    assert [b - a for a, b in itertools.pairwise(stamps)] == [30, 60, 120]
    [d], _ = await list_deliveries(store)
    assert (d.status, d.attempts) == ("delivered", 4)
    log = await delivery_attempts(store, d.id)
    assert [(a["attempt"], a["status_code"]) for a in log] == [
        (1, 500), (2, 502), (3, 503), (4, 200)]
    assert [a["error"] for a in log] == ["HTTP 500", "HTTP 502", "HTTP 503", None]


async def test_gives_up_24_hours_after_the_event(store: Store) -> None:
    clock = FakeClock()
    async with serve(Receiver([503])) as rx:
        settings = hooks(rx.url, events=["call.completed"])
        dispatcher = WebhookDispatcher(store, settings, clock, "http://televox.test")
        try:
            await one_answered_call(store, clock)
            start = clock.now()
            for _ in range(400):
                await dispatcher.step()
                await dispatcher.drain()
                await clock.advance(300)
        finally:
            await dispatcher.close()
    [d], _ = await list_deliveries(store)
    log = await delivery_attempts(store, d.id)
    assert d.status == "failed" and d.next_attempt_at is None
    times = [parse_iso(a["at"]) for a in log]
    assert all(t is not None and t - start <= timedelta(hours=24) for t in times)
    # Exponential, then capped at retry_max_interval_s; no try past the 24 h mark.
    expected = [backoff_s(n, settings) for n in range(1, len(log))]
    assert expected[:8] == [30, 60, 120, 240, 480, 960, 1920, 3600]
    assert len(rx.got) == len(log) and 25 <= len(log) <= 32


async def test_slow_and_failing_receivers_never_stall_the_dialer(tmp_path: Path) -> None:
    phones = [f"+1212555{n:04d}" for n in range(110, 116)]
    hold = asyncio.Event()
    async with serve(Receiver([200], hold=hold)) as dead, \
            serve(Receiver([500, 500, 500, 200])) as flaky:
        subs = [WebhookSubscription(name="dead", url=dead.url,
                                    secret_env="TELEVOX_TEST_WEBHOOK_SECRET"),
                WebhookSubscription(name="flaky", url=flaky.url, events=["call.completed"],
                                    campaigns=["demo"],
                                    secret_env="TELEVOX_TEST_WEBHOOK_SECRET")]
        settings = api_settings(tmp_path, {p: {"behaviour": "busy"} for p in phones},
                                webhooks=WebhookSettings(
                                    subscriptions=subs, timeout_s=300, retry_base_s=0.05,
                                    poll_interval_s=0.05, max_in_flight=2))
        write_campaign(settings, campaign_data("demo", pacing={"calls_per_minute": 600,
                                                               "max_concurrent": 2}))
        async with running_api(settings) as api:
            await api.json("POST", "/campaigns/demo/contacts", 201, json={
                "contacts": [{"phone": p} for p in phones[:1]]})
            await api.json("POST", "/campaigns/demo/start")

            async def first_completed_delivered() -> bool:
                rows, _ = await list_deliveries(api.store, status="delivered")
                return any(d.subscription == "flaky" for d in rows)
            await until(first_completed_delivered)
            # The dead receiver holds requests open the whole time; the dialer goes on.
            assert dead.got and not dead.acked
            await api.json("POST", "/campaigns/demo/contacts", 201, json={
                "contacts": [{"phone": p} for p in phones[1:]]})
            await api.json("POST", "/campaigns/demo/requeue")

            async def all_dialled() -> bool:
                d = await api.json("GET", "/campaigns/demo")
                return bool(d["contacts"]["done"] == len(phones) and d["in_flight"] == 0)
            await until(all_dialled)
            assert not dead.acked  # still hanging: it slowed nothing down
            flaky_rows, _ = await list_deliveries(api.store, event="call.completed")
            by_sub = [d for d in flaky_rows if d.subscription == "flaky"]
            first = min(by_sub, key=lambda d: d.id)
            assert (first.status, first.attempts) == ("delivered", 4)
        assert flaky.acked.count(first.event_id) == 1
        assert [h["X-Televox-Event-Id"] for h, _ in flaky.got[:4]] == [first.event_id] * 4


async def test_a_corrected_disposition_updates_the_lead(store: Store) -> None:
    """An operator's correction leaves the lead's status as it was, but the CRM hears of
    it: one campaign.lead.updated with the new disposition."""
    clock = FakeClock()
    async with serve(Receiver([200])) as rx:
        dispatcher = WebhookDispatcher(store, hooks(rx.url, events=["campaign.lead.updated"]),
                                       clock, "http://televox.test:8080")
        try:
            call_id = await one_answered_call(store, clock)
            await dispatcher.step()
            await dispatcher.drain()
            await set_disposition(store, call_id, "CALLBACK", "ops", clock.now())
            await dispatcher.step()
            await dispatcher.drain()
        finally:
            await dispatcher.close()
    leads = [json.loads(body)["data"] for _, body in rx.got]
    assert [(d["reason"], d["last_disposition"]) for d in leads] == [
        (leads[0]["reason"], "INTERESTED"), ("disposition_edited", "CALLBACK")]
    assert leads[1]["from_status"] == leads[1]["to_status"] == "completed"
