"""Agents as files: config/agents/NAME.yaml, named by campaigns, shown by `televox agents`,
and the prompt's fixed agent part first and identical for every call of that agent."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from televox_pbx.agent.prompts import agent_prompt, system_prompt
from televox_pbx.agent.tools import tools_schema
from televox_pbx.cli import main
from televox_pbx.config.loader import (
    ConfigError,
    load_agents,
    load_campaign,
    load_campaigns,
)

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "config"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(CONFIG, tmp_path / "config")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TELEVOX_CONFIG", raising=False)
    return tmp_path


def _write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_shipped_agent_and_campaign_naming_it_load() -> None:
    agents, issues = load_agents(CONFIG / "agents")
    assert issues == []
    front = agents["front-desk"]
    assert front.persona_name == "Ava" and front.tools[0].name == "find_slots"
    assert all(p.exists() for p in front.knowledge_paths())
    campaigns, issues = load_campaigns(CONFIG / "campaigns")
    assert issues == []
    recall = campaigns["recall"]
    assert recall.agent.profile == front
    assert recall.agent.persona_name == "Ava"
    assert "six months" in recall.agent.opening_line and recall.goal == recall.agent.goal
    assert campaigns["dental"].agent.profile is None  # inline agent blocks keep loading


def _campaign(workdir: Path, body: str) -> Path:
    return _write(workdir / "config" / "campaigns" / "x.yaml", "name: x\n" + textwrap.dedent(body)
                  + "caller_id: '+15550100200'\ntrunk: t\n")


def test_unknown_agent_is_reported_at_its_line(workdir: Path) -> None:
    path = _campaign(workdir, "agent: nobody\nopening_line: Hi, I'm an AI.\ngoal: g\n")
    with pytest.raises(ConfigError) as err:
        load_campaign(path)
    assert [str(i) for i in err.value.issues] == [
        f"{path}:2: agent: no agent 'nobody': expected agents/nobody.yaml (see `televox "
        "agents list`)"]


def test_named_agent_needs_the_campaigns_own_lines(workdir: Path) -> None:
    path = _campaign(workdir, "agent: front-desk\nopening_line: Hello there.\n")
    with pytest.raises(ConfigError) as err:
        load_campaign(path)
    text = [str(i) for i in err.value.issues]
    assert any(t.startswith(f"{path}:3: opening_line: must disclose") for t in text)
    assert any("goal: required: the campaign names agent 'front-desk'" in t for t in text)


def test_inline_agent_with_top_level_line_says_where_it_goes(workdir: Path) -> None:
    path = _campaign(workdir, """\
        agent: {persona_name: A, business: B, opening_line: "Hi, I'm an AI.", goal: g}
        goal: other
        """)
    with pytest.raises(ConfigError) as err:
        load_campaign(path)
    assert [f"{i.field}: {i.message}" for i in err.value.issues] == [
        "goal: with an inline agent, write goal inside agent:"]


def test_check_reports_bad_agent_files_by_line(workdir: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = workdir / "config" / "agents" / "front-desk.yaml"
    text = path.read_text().replace("voice: piper-joe-medium", "voice: nobody-voice")
    text = text.replace("../knowledge/front-desk/policies.md", "../knowledge/missing.md")
    path.write_text(text)
    lines = text.splitlines()
    assert main(["check", "config"]) == 1
    out = capsys.readouterr().out.splitlines()
    voice_line = next(i for i, t in enumerate(lines, 1) if t.startswith("voice:"))
    missing_line = next(i for i, t in enumerate(lines, 1) if "missing.md" in t)
    assert any(o.startswith(f"config/agents/front-desk.yaml:{voice_line}: voice: not a Piper "
                            "voice") for o in out)
    assert any(o.startswith(f"config/agents/front-desk.yaml:{missing_line}: knowledge.1: ")
               for o in out)


def test_agents_list_and_show(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-c", "config/televox.yaml", "agents", "list"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("front-desk\tAva at Bright Smile Dental") and "campaigns: recall" in out
    assert main(["-c", "config/televox.yaml", "agents", "show", "front-desk"]) == 0
    out = capsys.readouterr().out
    assert "tool: find_slots (POST http://127.0.0.1:8085/slots" in out
    assert "inbound first message: Thank you for calling Bright Smile Dental" in out
    assert main(["-c", "config/televox.yaml", "agents", "show", "nobody"]) == 1


def test_agent_part_comes_first_and_is_the_same_for_every_call(workdir: Path) -> None:
    config = workdir / "config"
    other = _write(config / "campaigns" / "other.yaml", """\
        name: other
        agent: front-desk
        opening_line: "Hi {{NAME}}, this is Ava, an AI assistant. Your cleaning is due."
        goal: Remind {{NAME}} of the cleaning on {{DATE}}.
        caller_id: '+15550100200'
        trunk: t
        """)
    recall = load_campaign(config / "campaigns" / "recall.yaml")
    second = load_campaign(other)
    assert recall.agent.profile is not None
    fixed = agent_prompt(recall.agent.profile)
    prompts = [system_prompt(recall, {"NAME": "Ann Lee"}),
               system_prompt(recall, {"NAME": "Bob Stone"}),
               system_prompt(second, {"NAME": "Cy", "DATE": "May 3"})]
    assert all(p.startswith(fixed + "\n") for p in prompts)
    # The contact's details come after the fixed part, never inside it.
    assert "Ann Lee" not in fixed and "Ann Lee" in prompts[0][len(fixed):]
    assert "Business facts: Bright Smile Dental, 12 Main Street" in fixed
    assert "[Knowledge: ...]" in fixed


def test_builtin_tools_are_limited_to_the_agents_list() -> None:
    names = [t["function"]["name"] for t in tools_schema(
        transfer_available=True, allowed=["set_disposition", "end_call"])["tools"]]
    assert names == ["set_disposition", "end_call"]


# --- numbers (settings) ---------------------------------------------------------------


def test_inbound_campaign_says_how_to_migrate(workdir: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = workdir / "config" / "televox.yaml"
    text = path.read_text() + "inbound_campaign: dental\n"
    path.write_text(text)
    assert main(["check", "config"]) == 1
    out = capsys.readouterr().out
    line = len(text.splitlines())
    assert (f"config/televox.yaml:{line}: inbound_campaign: inbound_campaign is gone: an "
            "inbound call is answered by the agent of the number it was made to. Move the "
            "campaign's agent to config/agents/NAME.yaml and list the number: numbers: "
            "[{number: '+15550100200', agent: NAME}]") in out


def test_caller_id_and_number_agents_are_checked(workdir: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    settings = workdir / "config" / "televox.yaml"
    text = settings.read_text().replace("agent: front-desk", "agent: back-office")
    settings.write_text(text)
    survey = workdir / "config" / "campaigns" / "survey.yaml"
    survey.write_text(survey.read_text().replace('"+15550100300"', '"+15550100999"'))
    assert main(["check", "config"]) == 1
    out = capsys.readouterr().out
    agent_line = next(i for i, t in enumerate(text.splitlines(), 1) if "back-office" in t)
    caller_line = next(i for i, t in enumerate(survey.read_text().splitlines(), 1)
                       if t.startswith("caller_id:"))
    assert (f"config/televox.yaml:{agent_line}: numbers.0.agent: no agent 'back-office' in "
            "config/agents") in out
    assert (f"config/campaigns/survey.yaml:{caller_line}: caller_id: not one of the numbers "
            "that may be shown as caller ID (settings numbers: +15550100200, +15550100300)") in out


def test_check_says_how_to_move_an_inline_agent(workdir: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "config"]) == 0
    out = capsys.readouterr().out
    assert ("inline agent in dental.yaml, survey.yaml (still loads). To share it or give it "
            "knowledge and tools: move persona_name and business to config/agents/NAME.yaml "
            "(context becomes business_info), write `agent: NAME` in the campaign and keep "
            "opening_line and goal at its top level") in out
