"""Settings and campaign YAML: the shipped examples load, and every error names file:line:field."""

from __future__ import annotations

import textwrap
from datetime import time
from pathlib import Path

import pytest

from televox_pbx.config.campaign import Campaign
from televox_pbx.config.loader import (
    ConfigError,
    ConfigIssue,
    load_campaign,
    load_campaigns,
    load_settings,
)
from televox_pbx.config.settings import AmiSettings

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "config"

GOOD = """\
name: {name}
agent:
  persona_name: Ava
  business: Bright Smile Dental
  opening_line: "Hi {{{{NAME}}}}, this is Ava, an AI assistant from Bright Smile Dental."
  goal: Confirm the appointment.
caller_id: "+15550100200"
trunk: televox-trunk
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def issues_of(path: Path) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as exc_info:
        load_campaign(path)
    return exc_info.value.issues


def by_field(issues: list[ConfigIssue]) -> dict[str, ConfigIssue]:
    return {i.field: i for i in issues}


# --- the shipped examples ---------------------------------------------------------------

def test_shipped_settings_load_with_paths_beside_the_file() -> None:
    settings = load_settings(CONFIG / "televox.yaml")
    assert settings.ami.host is None  # the simulator by default
    assert settings.database.path == CONFIG / "var" / "televox.db"
    assert settings.campaigns_dir == CONFIG / "campaigns"


def test_shipped_campaigns_load() -> None:
    good, issues = load_campaigns(CONFIG / "campaigns")
    assert issues == []
    assert {"dental", "survey"} <= set(good)
    for campaign in good.values():
        assert "{{NAME}}" in campaign.agent.opening_line
        assert not campaign.agent.allow_no_ai_disclosure


def test_shipped_campaigns_show_every_section() -> None:
    import yaml

    for path in (CONFIG / "campaigns" / "dental.yaml", CONFIG / "campaigns" / "survey.yaml"):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        # The campaign's own lines beside a named agent are shown in recall.yaml.
        named_agent_only = {"allow_no_ai_disclosure", "opening_line", "goal"}
        assert set(data) == set(Campaign.model_fields) - named_agent_only, path.name
        assert path.read_text(encoding="utf-8").startswith(
            "# yaml-language-server: $schema=../campaign.schema.json\n")


# --- error reporting ----------------------------------------------------------------------

def test_wrong_type_unknown_key_and_missing_disclosure_together(tmp_path: Path) -> None:
    path = write(tmp_path, "dental.yaml", """\
        name: dental
        agent:
          persona_name: Ava
          business: Bright Smile Dental
          opening_line: "Hi {{NAME}}, this is Ava from Bright Smile Dental."
          goal: Confirm the appointment.
        caller_id: "+15550100200"
        trunk: televox-trunk
        pacing:
          calls_per_minute: fast
        ring_timout_s: 30
        """)
    issues = by_field(issues_of(path))
    assert set(issues) == {"agent.opening_line", "pacing.calls_per_minute", "ring_timout_s"}
    assert issues["agent.opening_line"].line == 5
    assert "AI" in issues["agent.opening_line"].message
    assert issues["pacing.calls_per_minute"].line == 10
    assert "number" in issues["pacing.calls_per_minute"].message
    assert issues["ring_timout_s"].line == 11
    assert issues["ring_timout_s"].message == "unknown key"
    assert str(issues["ring_timout_s"]) == f"{path}:11: ring_timout_s: unknown key"


def test_disclosure_reported_even_when_agent_has_field_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yaml", """\
        name: c
        agent:
          persona_name: ""
          business: X
          opening_line: Hello {{NAME}}, calling from X.
        caller_id: "+15550100200"
        trunk: televox-trunk
        """)
    issues = by_field(issues_of(path))
    assert set(issues) == {"agent.persona_name", "agent.goal", "agent.opening_line"}
    assert issues["agent.goal"].line == 2  # missing: points at the section
    assert issues["agent.opening_line"].line == 5


def test_disclosure_override(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yaml", GOOD.format(name="c").replace(
        ", an AI assistant", "") + "")
    assert "agent.opening_line" in by_field(issues_of(path))
    text = path.read_text().replace("agent:\n", "agent:\n  allow_no_ai_disclosure: true\n")
    path.write_text(text)
    assert load_campaign(path).agent.allow_no_ai_disclosure


@pytest.mark.parametrize("line", [
    "I'm an AI assistant", "an AI-powered assistant", "I am an artificial intelligence",
    "your Artificial Intelligence helper"])
def test_disclosure_phrasings_accepted(tmp_path: Path, line: str) -> None:
    path = write(tmp_path, "c.yaml", GOOD.format(name="c").replace(
        "this is Ava, an AI assistant from Bright Smile Dental", line))
    assert load_campaign(path).agent.opening_line


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yaml", "name: c\nagent: [unclosed\ntrunk: x\n")
    [issue] = issues_of(path)
    assert issue.file == path and issue.line is not None and issue.line >= 2
    assert issue.message.startswith("invalid YAML")


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    [issue] = issues_of(write(tmp_path, "c.yaml", "- a\n- b\n"))
    assert issue.line == 1 and "mapping" in issue.message


def test_duplicate_key_reported(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yaml", GOOD.format(name="c") + "trunk: other\n")
    [issue] = issues_of(path)
    assert (issue.field, issue.line) == ("trunk", 9)
    assert "first given on line 8" in issue.message


def test_name_must_match_file_alongside_other_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "dental.yaml", GOOD.format(name="other") + "amd: maybe\n")
    issues = by_field(issues_of(path))
    assert issues["name"].line == 1 and "dental" in issues["name"].message
    assert issues["amd"].line == 9


def test_nested_and_list_locations(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yaml", GOOD.format(name="c") + textwrap.dedent("""\
        calling_window:
          weekdays:
            - mon
            - funday
        dtmf_actions:
          "5": dance
        """))
    issues = by_field(issues_of(path))
    assert issues["calling_window.weekdays.1"].line == 12
    assert issues["dtmf_actions.5"].line == 14


# --- calling window -------------------------------------------------------------------

def window(tmp_path: Path, body: str) -> Path:
    return write(tmp_path, "c.yaml", GOOD.format(name="c") + "calling_window:\n" +
                 textwrap.indent(textwrap.dedent(body), "  "))


@pytest.mark.parametrize(("body", "field", "line"), [
    ("start: 07:30\nend: 20:00\n", "calling_window.start", 10),
    ("start: 09:00\nend: 21:30\n", "calling_window.end", 11),
    ("start: '19:00'\nend: '10:00'\n", "calling_window.end", 11),
])
def test_window_errors(tmp_path: Path, body: str, field: str, line: int) -> None:
    [issue] = issues_of(window(tmp_path, body))
    assert (issue.field, issue.line) == (field, line)


def test_window_wider_than_legal_needs_override(tmp_path: Path) -> None:
    body = "legal_override: true\nstart: 07:30\nend: 21:30\n"
    cw = load_campaign(window(tmp_path, body)).calling_window
    assert (cw.start, cw.end) == (time(7, 30), time(21, 30))


def test_window_edges_are_legal(tmp_path: Path) -> None:
    cw = load_campaign(window(tmp_path, "start: 8:00\nend: 21:00\n")).calling_window
    assert (cw.start, cw.end) == (time(8, 0), time(21, 0))


def test_unquoted_times_are_clock_times_not_base60(tmp_path: Path) -> None:
    # YAML 1.1 reads 20:30 as the integer 1230; the loader must not.
    cw = load_campaign(window(tmp_path, "start: 10:15\nend: 20:30\n")).calling_window
    assert (cw.start, cw.end) == (time(10, 15), time(20, 30))


def test_yaml_scalars_follow_yaml_1_2(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yaml", GOOD.format(name="c") + textwrap.dedent("""\
        default_country: NO
        transfer:
          exten: 0200
        dtmf_actions:
          0: transfer
        amd: false
        """))
    campaign = load_campaign(path)
    assert campaign.default_country == "NO"  # Norway, not False
    assert campaign.transfer is not None and campaign.transfer.exten == "0200"
    assert campaign.dtmf_actions == {"0": "transfer"}
    assert campaign.amd == "off"  # a real boolean false (older files): no detection


def test_dtmf_transfer_needs_transfer_section(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yaml", GOOD.format(name="c") + 'dtmf_actions:\n  "0": transfer\n')
    [issue] = issues_of(path)
    assert (issue.field, issue.line) == ("dtmf_actions", 9)


def test_fixed_timezone_required_and_checked(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yaml", GOOD.format(name="c") +
                 "timezone_policy:\n  source: fixed\n")
    [issue] = issues_of(path)
    assert issue.field == "timezone_policy.fixed_zone"
    path.write_text(path.read_text() + "  fixed_zone: Mars/Olympus\n")
    [issue] = issues_of(path)
    assert (issue.field, issue.line) == ("timezone_policy.fixed_zone", 11)


def test_scheduled_start_needs_offset(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yaml", GOOD.format(name="c") +
                 "scheduled_start: 2026-12-01T09:00:00\n")
    [issue] = issues_of(path)
    assert (issue.field, issue.line) == ("scheduled_start", 9)
    path.write_text(path.read_text().replace("09:00:00", "09:00:00-05:00"))
    assert load_campaign(path).scheduled_start is not None


def test_voicemail_message_required_for_leave_message(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yaml", GOOD.format(name="c") +
                 "voicemail:\n  action: leave_message\n")
    [issue] = issues_of(path)
    assert issue.field == "voicemail.message"


def test_load_campaigns_keeps_good_files(tmp_path: Path) -> None:
    write(tmp_path, "good.yaml", GOOD.format(name="good"))
    write(tmp_path, "bad.yaml", GOOD.format(name="bad") + "pacing: 3\n")
    good, issues = load_campaigns(tmp_path)
    assert set(good) == {"good"}
    assert [(i.file.name, i.field) for i in issues] == [("bad.yaml", "pacing")]


# --- settings -----------------------------------------------------------------------------

def test_relative_paths_resolve_against_settings_dir(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, "etc/televox.yaml", """\
        database: {path: data/t.db}
        ami: {host: 127.0.0.1, secret_file: secret.txt}
        campaigns_dir: /srv/campaigns
        """)
    settings = load_settings(path)
    base = tmp_path / "etc"
    assert settings.database.path == base / "data" / "t.db"
    assert settings.ami.secret_file == base / "secret.txt"
    assert settings.campaigns_dir == Path("/srv/campaigns")
    assert settings.recordings_dir == base / "var" / "recordings"
    assert settings.models.cache_dir == base / "var" / "models"
    assert settings.events.jsonl_path == base / "var" / "log" / "ami-events.jsonl"


def test_settings_errors_name_file_line_field(tmp_path: Path) -> None:
    path = write(tmp_path, "televox.yaml", """\
        ami:
          port: 99999
          secret: hunter2
        logging:
          level: chatty
        """)
    with pytest.raises(ConfigError) as exc_info:
        load_settings(path)
    got = {(i.field, i.line) for i in exc_info.value.issues}
    assert got == {("ami.port", 2), ("ami.secret", 3), ("logging.level", 5)}
    # The secret must not be echoed back in any message.
    assert "hunter2" not in str(exc_info.value)


def test_logging_level_case_insensitive(tmp_path: Path) -> None:
    path = write(tmp_path, "televox.yaml", "logging: {level: debug}\n")
    assert load_settings(path).logging.level == "DEBUG"


def test_ami_secret_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TELEVOX_AMI_SECRET", raising=False)
    ami = AmiSettings()
    assert ami.secret() is None
    assert ami.secret_status() == (False, "environment variable TELEVOX_AMI_SECRET is not set")
    monkeypatch.setenv("TELEVOX_AMI_SECRET", "s3cret")
    secret = ami.secret()
    assert secret is not None and secret.get_secret_value() == "s3cret"
    ok, where = ami.secret_status()
    assert ok and "s3cret" not in where
    file = tmp_path / "secret"
    from_file = AmiSettings(secret_file=file)
    assert from_file.secret_status()[0] is False  # missing file
    file.write_text("  \n")
    assert from_file.secret_status() == (False, f"secret file {file} is empty")
    file.write_text("filesecret\n")
    got = from_file.secret()
    assert got is not None and got.get_secret_value() == "filesecret"
    assert from_file.secret_status() == (True, f"from secret file {file}")
