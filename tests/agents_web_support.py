"""A small agent with an FAQ, two numbers, and one person's history across two campaigns,
an inbound call and texts, for the agents' API and dashboard tests."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import yaml
from api_support import api_settings
from app_support import campaign_data, make_campaign, write_campaign

from televox_pbx.config.settings import PhoneNumber, Settings
from televox_pbx.store import Store
from televox_pbx.store import sms as sms_store
from televox_pbx.store.attempts import record_inbound
from televox_pbx.store.campaigns import upsert_campaign
from televox_pbx.store.person_history import record_inbound_route
from televox_pbx.store.timefmt import iso

PERSON = "+12125550199"
LINE = "+15550100200"  # answered by the clinic agent
FAQ = [{"question": "Is there parking at the clinic?",
        "answer": "Yes, free parking behind the building, entrance on Oak Lane."},
       {"question": "Do you treat children?",
        "answer": "Yes, our pediatric dentist sees children from age three."},
       {"question": "What are your opening hours?",
        "answer": "Monday to Friday from 8 am to 6 pm."},
       {"question": "How much does a check-up cost?",
        "answer": "A routine check-up costs 85 dollars without insurance."},
       {"question": "Do you do emergency appointments?",
        "answer": "Yes, call before 10 am and we see you the same day."},
       {"question": "Which payment methods do you take?",
        "answer": "Cash, debit and credit cards; no cheques."},
       {"question": "Can I bring my dog?",
        "answer": "Only assistance dogs may come into the practice."},
       {"question": "Is the practice wheelchair accessible?",
        "answer": "Yes, with an elevator and step-free access."}]


def agents_settings(tmp_path: Path) -> Settings:
    """API settings with agents/clinic.yaml (an FAQ and a source that is not there; the
    campaign `recall` uses it), agents/plain.yaml (no knowledge) and two numbers: one the
    clinic answers (SMS too), one answered by no agent."""
    settings = api_settings(tmp_path)
    agents = settings.agents_dir
    agents.mkdir(parents=True, exist_ok=True)
    (agents / "faq.yaml").write_text(yaml.safe_dump(FAQ), encoding="utf-8")
    (agents / "clinic.yaml").write_text(yaml.safe_dump({
        "name": "clinic", "persona_name": "Ava", "business": "Oak Lane Dental",
        "voice": "piper-joe-medium", "knowledge": ["faq.yaml", "gone.md"],
        "tools": [{"name": "find_slots", "description": "Free slots on a day.",
                   "url": "http://127.0.0.1:9/slots"}],
        "inbound": {"first_message": "Oak Lane Dental, this is Ava, an AI assistant."}}),
        encoding="utf-8")
    (agents / "plain.yaml").write_text(yaml.safe_dump({
        "name": "plain", "persona_name": "Max", "business": "Oak Lane Dental"}),
        encoding="utf-8")
    write_campaign(settings, campaign_data(
        "recall", agent="clinic", caller_id=LINE, goal="Offer a check-up.",
        opening_line="Hi {{name}}, this is Ava, an AI assistant."))
    return settings.model_copy(update={"numbers": [
        PhoneNumber(number=LINE, agent="clinic", sms=True),
        PhoneNumber(number="+15550100300", caller_id=False)]})


def _at(day: int, hour: int = 15) -> datetime:
    return datetime(2026, 3, day, hour, tzinfo=UTC)


async def fill_history(store: Store) -> None:
    """Newest first: an inbound call to the clinic (3rd), a text from the beta campaign and
    the person's reply (2nd, 10:00 and 11:00), beta's call (2nd, 9:00), alpha's call (1st)."""
    for name, day, disposition in (("alpha", 1, "CALLBACK"), ("beta", 2, "INTERESTED")):
        cid = await upsert_campaign(store, make_campaign(name))
        await store.execute(
            "INSERT INTO call_attempts(id, campaign_id, phone, status, disposition,"
            " duration_s, turns, created_at) VALUES (?, ?, ?, 'completed', ?, 42, 6, ?)",
            (f"{name}-call-0001", cid, PERSON, disposition,
             iso(_at(day, 9))))
    beta = await store.fetchone("SELECT id FROM campaigns WHERE name = 'beta'")
    assert beta is not None
    await store.execute(  # an SMS send's attempt: shown as the text, not as a call
        "INSERT INTO call_attempts(id, campaign_id, phone, status, channel, created_at)"
        " VALUES ('beta-sms-0001', ?, ?, 'completed', 'sms', ?)",
        (beta[0], PERSON, iso(_at(2, 10))))
    await store.execute(
        "INSERT INTO sms_messages(campaign_id, attempt_id, e164, direction, kind, body,"
        " status, at) VALUES (?, 'beta-sms-0001', ?, 'out', 'campaign', ?, 'sent', ?)",
        (beta[0], PERSON, "Your cleaning is due, reply YES to book.", iso(_at(2, 10))))
    await sms_store.record(store, PERSON, "in", "inbound", "YES", "received", _at(2, 11),
                           campaign_id=beta[0])
    await store.execute(  # someone else's call stays out
        "INSERT INTO call_attempts(id, phone, status) VALUES ('other', '+12125550100',"
        " 'completed')")
    await record_inbound(store, "in-call-0001", PERSON, _at(3))
    await record_inbound_route(store, "in-call-0001", LINE, "clinic")
