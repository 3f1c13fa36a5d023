"""Webhook intake: a CRM pushes a lead as JSON of any shape; the campaign's mapping (dotted
paths, list indexes) turns it into a contact through the CSV import engine. Signed with
HMAC-SHA256 over timestamp and body: unsigned, badly signed, stale or replayed requests
are refused, and an oversized body gets 413."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from api_support import Api, api_settings, running_api
from app_support import campaign_data, write_campaign

from televox_pbx.campaigns.json_paths import flatten, lead_record, resolve
from televox_pbx.clock import FakeClock
from televox_pbx.store import Store
from televox_pbx.store.api_audit import list_audit
from televox_pbx.store.intake import claim_request
from televox_pbx.web.webhooks import sign

SECRET = "intake-secret-for-tests"
MAPPING = {"lead.contact.phones.0.number": "phone", "lead.contact.full_name": "name",
           "lead.custom.plan": "var:plan", "lead.contact.tz": "timezone"}
LEAD = {"id": "L-1", "lead": {"contact": {"full_name": "Ann Lee", "tz": "America/New_York",
                                          "phones": [{"number": "(212) 555-0123"}]},
                              "custom": {"plan": "gold", "ignored": "x"}}}


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEVOX_TEST_INTAKE_SECRET", SECRET)


def _settings(tmp_path: Path, **http: Any) -> Any:
    settings = api_settings(tmp_path, **http)
    write_campaign(settings, campaign_data("crm", intake={
        "enabled": True, "secret_env": "TELEVOX_TEST_INTAKE_SECRET", "mapping": MAPPING}))
    write_campaign(settings, campaign_data("closed"))
    return settings


async def _post(api: Api, name: str, body: bytes, *, secret: str = SECRET,
                stamp: int | None = None, event_id: str | None = None,
                signature: str | None = None, expect: int) -> Any:
    ts = str(int(time.time()) if stamp is None else stamp)
    headers = {"Content-Type": "application/json", "X-Televox-Timestamp": ts,
               "X-Televox-Signature": signature or sign(secret.encode(), ts, body)}
    if event_id:
        headers["X-Televox-Event-Id"] = event_id
    async with api.anon.post(f"/api/v1/intake/{name}", data=body, headers=headers) as resp:
        out = await resp.json()
        assert resp.status == expect, (resp.status, out)
        return out


async def test_a_signed_lead_becomes_a_contact(tmp_path: Path) -> None:
    async with running_api(_settings(tmp_path), dial=False) as api:
        body = json.dumps(LEAD).encode()
        out = await _post(api, "crm", body, event_id="evt-1", expect=201)
        assert out["summary"]["added"] == 1 and out["summary"]["rows"] == 1
        listed = await api.json("GET", "/campaigns/crm/contacts")
        assert listed["total"] == 1
        contact = await api.json("GET", f"/contacts/{listed['contacts'][0]['id']}")
        assert contact["name"] == "Ann Lee" and contact["timezone"] == "America/New_York"
        assert [p["e164"] for p in contact["phones"]] == ["+12125550123"]
        assert contact["variables"] == {"PLAN": "gold"}
        # The same event again is a replay, even freshly signed.
        out = await _post(api, "crm", body, event_id="evt-1", expect=409)
        assert out["error"] == "replayed"
        # Without an event id, the signature is the replay key.
        ts = int(time.time())
        other = json.dumps({"lead": {"contact": {"phones": [{"number": "2125550124"}]}}})
        await _post(api, "crm", other.encode(), stamp=ts, expect=201)
        await _post(api, "crm", other.encode(), stamp=ts, expect=409)
        # A list of leads in one request; a duplicate number is reported, not added.
        many = json.dumps([LEAD, {"lead": {"contact": {"phones": [{"number": "2125550125"}]}}}])
        out = await _post(api, "crm", many.encode(), event_id="evt-2", expect=201)
        assert (out["summary"]["added"], out["summary"]["duplicate"]) == (1, 1)
        entries, _ = await list_audit(api.store, action="contacts.intake")
        assert [e.actor for e in entries] == ["intake:crm"] * 3
        assert SECRET not in (tmp_path / "campaigns" / "crm.yaml").read_text()


async def test_unsigned_bad_stale_and_oversized_requests_are_refused(tmp_path: Path) -> None:
    async with running_api(_settings(tmp_path, max_body_bytes=2048), dial=False) as api:
        body = json.dumps(LEAD).encode()
        async with api.anon.post("/api/v1/intake/crm", data=body) as resp:
            assert resp.status == 401 and (await resp.json())["error"] == "unsigned"
        # A bearer token is no way in: the intake takes signatures only.
        async with api.http.post("/api/v1/intake/crm", data=body) as resp:
            assert resp.status == 401
        out = await _post(api, "crm", body, secret="wrong", expect=401)
        assert out["error"] == "invalid_signature"
        out = await _post(api, "crm", body, signature="sha256=00", expect=401)
        assert out["error"] == "invalid_signature"
        # A body changed after signing.
        ts = str(int(time.time()))
        async with api.anon.post("/api/v1/intake/crm", data=body + b" ", headers={
                "X-Televox-Timestamp": ts,
                "X-Televox-Signature": sign(SECRET.encode(), ts, body)}) as resp:
            assert resp.status == 401
        out = await _post(api, "crm", body, stamp=int(time.time()) - 3600, expect=401)
        assert out["error"] == "stale_timestamp"
        # Campaigns without intake, or that do not exist, answer like a bad signature.
        for name in ("closed", "nope"):
            out = await _post(api, name, body, expect=401)
            assert out["error"] == "invalid_signature"
        big = json.dumps({"lead": {"notes": "x" * 5000}}).encode()
        out = await _post(api, "crm", big, expect=413)
        assert out["error"] == "body_too_large"
        out = await _post(api, "crm", b"{not json", event_id="e-bad", expect=400)
        # A refused body does not burn its event id: the fixed request goes through.
        await _post(api, "crm", body, event_id="e-bad", expect=201)
        assert (await api.json("GET", "/campaigns/crm/contacts"))["total"] == 1


def test_dotted_paths_and_flattening() -> None:
    assert resolve(LEAD, "lead.contact.phones.0.number") == "(212) 555-0123"
    assert resolve(LEAD, "lead.contact.phones.-1.number") == "(212) 555-0123"
    assert resolve(LEAD, "lead.contact.phones.3.number") is None
    assert resolve(LEAD, "lead.nothing.here") is None
    assert resolve({"a.b": 1}, "a.b") == 1
    assert lead_record(LEAD, MAPPING) == {
        "lead.contact.phones.0.number": "(212) 555-0123", "lead.contact.full_name": "Ann Lee",
        "lead.custom.plan": "gold", "lead.contact.tz": "America/New_York"}
    assert flatten({"a": {"b": [1, {"c": True}], "d": None}}) == {"a.b.0": "1",
                                                                  "a.b.1.c": "true"}


@pytest.mark.both_backends
async def test_replay_keys_are_kept_per_campaign_window(store: Store) -> None:
    """A campaign with a short window forgets its own old keys, never another's."""
    clock = FakeClock()
    now = clock.now()
    assert await claim_request(store, "long", "id:1", now, now - timedelta(hours=2))
    later = now + timedelta(minutes=20)
    assert await claim_request(store, "short", "id:9", later, later - timedelta(minutes=10))
    assert not await claim_request(store, "long", "id:1", later, later - timedelta(hours=2))
    # The short campaign's own key, 20 minutes on, is past its window: claimable again.
    again = later + timedelta(minutes=20)
    assert await claim_request(store, "short", "id:9", again, again - timedelta(minutes=10))
