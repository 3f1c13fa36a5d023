"""Shared setup for the whole-daemon tests (App and `televox call`): settings and a
simulator scenario in a tmp dir, an always-open campaign, scripted fake engines."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from voice_fakes import LoudnessVad, Reply, ScriptedLlm, ScriptedStt, ScriptedTts

from televox_pbx.config.campaign import Campaign
from televox_pbx.config.loader import load_settings
from televox_pbx.config.settings import PhoneNumber, Settings
from televox_pbx.voice.session import Engines

EVERY_DAY = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def write_settings(tmp_path: Path, numbers: dict[str, dict[str, Any]]) -> Settings:
    """televox.yaml (relative paths, as an operator writes it) plus the sim scenario."""
    scenario = {"numbers": numbers, "timer_b_s": 0.3, "turn_gap_s": 0.3,
                "no_traffic_timeout_s": 3.0}
    (tmp_path / "scenario.yaml").write_text(yaml.safe_dump(scenario), encoding="utf-8")
    (tmp_path / "campaigns").mkdir(exist_ok=True)
    settings = {
        "database": {"path": "televox.db"},
        "recordings_dir": "recordings",
        "campaigns_dir": "campaigns",
        "events": {"jsonl_path": "events.jsonl"},
        "simulator": {"scenario": "scenario.yaml", "recordings_dir": "sim"},
        "ami": {"ping_interval_s": 60},
    }
    path = tmp_path / "televox.yaml"
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return load_settings(path)


def campaign_data(name: str = "e2e", **overrides: Any) -> dict[str, Any]:
    """A campaign whose calling window is open around the clock (fixed zone UTC), so
    tests do not depend on the time of day they run at."""
    base: dict[str, Any] = {
        "name": name, "caller_id": "+15550100000", "trunk": "trunk", "amd": False,
        "agent": {"persona_name": "Ava", "business": "Acme", "goal": "book a demo",
                  "opening_line": "Hi {{name}}, I'm Ava, an AI assistant calling for Acme."},
        "calling_window": {"legal_override": True, "start": "00:00", "end": "23:59:59",
                           "weekdays": EVERY_DAY},
        "timezone_policy": {"source": "fixed", "fixed_zone": "UTC"},
        "pacing": {"calls_per_minute": 600, "max_concurrent": 4},
        "retry": {"max_attempts_per_phone": 1},
        "silence": {"reprompt_after_s": 3, "hangup_after_s": 5, "max_call_duration_s": 20},
    }
    base.update(overrides)
    return base


def make_campaign(name: str = "e2e", **overrides: Any) -> Campaign:
    return Campaign.model_validate(campaign_data(name, **overrides))


def write_campaign(settings: Settings, data: dict[str, Any]) -> Path:
    path = settings.campaigns_dir / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def with_number_agents(settings: Settings, numbers: dict[str, str]) -> Settings:
    """Settings whose numbers are answered by agent files written for them."""
    settings.agents_dir.mkdir(parents=True, exist_ok=True)
    for agent in set(numbers.values()):
        (settings.agents_dir / f"{agent}.yaml").write_text(yaml.safe_dump({
            "name": agent, "persona_name": "Ava", "business": "Acme",
            "inbound": {"first_message": f"Hello, this is Ava of {agent}, an AI assistant."}}),
            encoding="utf-8")
    return settings.model_copy(update={"numbers": [
        PhoneNumber(number=n, agent=a) for n, a in numbers.items()]})


def fake_engines(stt: Sequence[str], llm: Sequence[Reply]) -> Engines:
    # 20 ms of tone per character: an opening line plays in about a second.
    return Engines(vad=LoudnessVad(), stt=ScriptedStt(list(stt)), llm=ScriptedLlm(list(llm)),
                   tts=ScriptedTts(seconds_per_char=0.02))
