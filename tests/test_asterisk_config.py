"""The shipped asterisk/*.conf and systemd unit: key facts, plus the real dialplan linter."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ASTERISK = REPO / "asterisk"
UNIT = REPO / "systemd" / "televox-pbx.service"


@dataclass
class Section:
    name: str
    entries: list[tuple[str, str]] = field(default_factory=list)

    def get(self, key: str) -> str | None:
        values = self.getall(key)
        return values[-1] if values else None

    def getall(self, key: str) -> list[str]:
        return [v for k, v in self.entries if k == key]


def parse_conf(path: Path) -> list[Section]:
    """Asterisk's config syntax, enough for these files: [sections], key = value and
    key => value lines, ';' comments (not '\\;'). Sections may repeat (pjsip)."""
    sections: list[Section] = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = re.sub(r"(?<!\\);.*$", "", raw).strip()
        if not line:
            continue
        if m := re.fullmatch(r"\[([^\]]+)\](\(.*\))?", line):
            sections.append(Section(m.group(1)))
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not a key=value line: {raw!r}"
        assert sections, f"{path.name}: entry before any section: {raw!r}"
        sections[-1].entries.append((key.strip(), value.removeprefix(">").strip()))
    return sections


def one(sections: list[Section], name: str, type_: str | None = None) -> Section:
    found = [s for s in sections if s.name == name and (type_ is None or s.get("type") == type_)]
    assert len(found) == 1, f"expected one [{name}] type={type_}, found {len(found)}"
    return found[0]


@dataclass
class Dialplan:
    """context -> extension -> list of (label, app, args), priorities expanded."""
    contexts: dict[str, dict[str, list[tuple[str | None, str, str]]]]

    def steps(self, context: str, exten: str) -> list[tuple[str | None, str, str]]:
        return self.contexts[context][exten]

    def apps(self, context: str, exten: str) -> list[str]:
        return [app for _, app, _ in self.steps(context, exten)]


def parse_dialplan(path: Path) -> Dialplan:
    contexts: dict[str, dict[str, list[tuple[str | None, str, str]]]] = {}
    last: str | None = None
    for section in parse_conf(path):
        ctx = contexts.setdefault(section.name, {})
        for key, value in section.entries:
            if key not in ("exten", "same"):
                continue
            if key == "exten":
                last, _, rest = value.partition(",")
            else:
                rest = value
            assert last is not None
            prio, _, call = rest.partition(",")
            label = m.group(1) if (m := re.fullmatch(r"\w+\((\w+)\)", prio.strip())) else None
            app, _, args = call.partition("(")
            ctx.setdefault(last, []).append((label, app.strip(), args.removesuffix(")")))
    return Dialplan(contexts)


# --- manager.conf ---------------------------------------------------------------------

def test_manager_binds_loopback_only() -> None:
    conf = parse_conf(ASTERISK / "manager.conf")
    general = one(conf, "general")
    assert general.get("enabled") == "yes"
    assert general.get("bindaddr") == "127.0.0.1"
    assert general.get("port") == "5038"
    assert general.get("webenabled") == "no"
    user = one(conf, "televox")
    assert user.get("deny") == "0.0.0.0/0.0.0.0"
    assert user.getall("permit") == ["127.0.0.1/255.255.255.255"]
    assert "CHANGE_ME" in (user.get("secret") or "")  # a placeholder, never a real secret


def test_manager_classes_are_minimal() -> None:
    user = one(parse_conf(ASTERISK / "manager.conf"), "televox")
    read = set((user.get("read") or "").split(","))
    write = set((user.get("write") or "").split(","))
    # call: Newchannel/Hangup/OriginateResponse; user: UserEvent (see the fixtures).
    assert read == {"call", "user"}
    # originate: Originate; call: Hangup/Redirect; reporting: CoreShowChannels/Status;
    # message: MessageSend.
    assert write == {"originate", "call", "reporting", "message"}
    assert not ({"system", "command", "config", "all"} & (read | write))


def test_manager_classes_cover_the_events_in_real_captures() -> None:
    # Every event the daemon relies on carries one of the granted read classes.
    needed = {"Newchannel", "Hangup", "OriginateResponse", "UserEvent", "DialEnd",
              "HangupRequest", "Newstate"}
    fixtures = REPO.parent / "shared" / "fixtures" / "asterisk-22"
    if not fixtures.is_dir():
        pytest.skip("shared AMI fixtures not present")
    read = set((one(parse_conf(ASTERISK / "manager.conf"), "televox").get("read") or "")
               .split(","))
    seen: dict[str, set[str]] = {}
    for path in fixtures.glob("*.raw.txt"):
        for block in path.read_text(encoding="utf-8").split("\n\n"):
            ev = re.search(r"^Event: (\w+)$", block, re.M)
            priv = re.search(r"^Privilege: ([\w,]+)$", block, re.M)
            if ev and priv:
                seen.setdefault(ev.group(1), set()).update(priv.group(1).split(","))
    for event in needed:
        assert seen[event] & read, f"{event} ({seen[event]}) not in read={read}"
    assert not (seen["VarSet"] & read) and not (seen["RTCPSent"] & read)


# --- pjsip.conf -------------------------------------------------------------------------

def test_pjsip_trunk_template() -> None:
    conf = parse_conf(ASTERISK / "pjsip.conf")
    endpoint = one(conf, "televox-trunk", "endpoint")
    aor = one(conf, "televox-trunk", "aor")
    auth = one(conf, "televox-trunk-auth", "auth")
    registration = one(conf, "televox-trunk-registration", "registration")
    identify = one(conf, "televox-trunk-identify", "identify")
    transport = one(conf, "transport-udp", "transport")
    assert endpoint.get("context") == "televox-inbound"
    assert endpoint.get("message_context") == "televox-messages"
    assert endpoint.get("aors") == "televox-trunk"
    assert endpoint.get("outbound_auth") == "televox-trunk-auth"
    assert endpoint.get("transport") == "transport-udp"
    assert endpoint.get("direct_media") == "no"
    assert endpoint.get("dtmf_mode") == "rfc4733"
    assert set((endpoint.get("allow") or "").split(",")) <= {"ulaw", "alaw"}
    assert registration.get("outbound_auth") == "televox-trunk-auth"
    assert registration.get("endpoint") == "televox-trunk"
    assert identify.get("endpoint") == "televox-trunk"
    assert "REPLACE_PROVIDER_HOST" in (aor.get("contact") or "")
    assert auth.get("password") == "REPLACE_SIP_PASSWORD"
    assert transport.get("protocol") == "udp"
    # Every cross-reference names a section that exists.
    names = {s.name for s in conf}
    for s in conf:
        for key in ("transport", "outbound_auth", "aors", "endpoint"):
            if (ref := s.get(key)) is not None:
                assert ref in names, f"[{s.name}] {key}={ref} points nowhere"


# --- extensions.conf --------------------------------------------------------------------

def test_outbound_context() -> None:
    dp = parse_dialplan(ASTERISK / "extensions.conf")
    steps = dp.steps("televox-outbound", "s")
    apps = dp.apps("televox-outbound", "s")
    # Answer before AMD and AudioSocket; AMD only when TELEVOX_AMD=1; Hangup last.
    assert apps.index("Answer") < apps.index("AMD") < apps.index("AudioSocket")
    assert apps[-1] == "Hangup"
    gate = next(args for _, app, args in steps if app == "GotoIf")
    assert '"${TELEVOX_AMD}" != "1"' in gate and gate.endswith("?connect")
    assert apps.index("GotoIf") < apps.index("AMD")
    user_event = next(args for _, app, args in steps if app == "UserEvent")
    assert user_event == ("TelevoxAMD,CallId: ${TELEVOX_CALL_ID},AMDSTATUS: ${AMDSTATUS},"
                          "AMDCAUSE: ${AMDCAUSE}")
    assert apps.index("AMD") < apps.index("UserEvent") < apps.index("AudioSocket")
    label, _, args = next(step for step in steps if step[1] == "AudioSocket")
    assert label == "connect"
    assert args == "${TELEVOX_CALL_ID},${TELEVOX_AUDIOSOCKET}"
    assert "h" in dp.contexts["televox-outbound"]


def test_messages_context() -> None:
    dp = parse_dialplan(ASTERISK / "extensions.conf")
    [(_, app, args), (_, last, _)] = dp.steps("televox-messages", "s")
    assert app == "UserEvent" and last == "Hangup"
    assert args == ("TelevoxMessage,From: ${BASE64_ENCODE(${MESSAGE(from)})},"
                    "To: ${BASE64_ENCODE(${MESSAGE(to)})},"
                    "Body: ${BASE64_ENCODE(${MESSAGE(body)})}")
    for pattern in ("_X.", "_+X."):
        assert dp.steps("televox-messages", pattern) == [(None, "Goto",
                                                          "televox-messages,s,1")]


def test_inbound_context() -> None:
    dp = parse_dialplan(ASTERISK / "extensions.conf")
    steps = dp.steps("televox-inbound", "s")
    apps = [app for _, app, _ in steps]
    assert steps[0][1:] == ("Set", "TELEVOX_CALL_ID=${UUID()}")
    assert apps.index("Answer") < apps.index("UserEvent") < apps.index("AudioSocket")
    user_event = next(args for _, app, args in steps if app == "UserEvent")
    assert user_event == ("TelevoxInbound,CallId: ${TELEVOX_CALL_ID},CallerID: ${CALLERID(num)},"
                          "Dialed: ${TELEVOX_DID}")
    assert next(args for _, app, args in steps if app == "AudioSocket") == \
        "${TELEVOX_CALL_ID},${TELEVOX_AUDIOSOCKET}"
    # Any dialled number lands on s, and goes along (the daemon routes by it).
    for pattern in ("_X.", "_+X."):
        assert dp.steps("televox-inbound", pattern) == [
            (None, "Set", "TELEVOX_DID=${EXTEN}"), (None, "Goto", "televox-inbound,s,1")]


def test_daemon_address_is_one_global_matching_the_settings_default() -> None:
    from televox_pbx.config.settings import AudioSocketSettings

    globals_ = one(parse_conf(ASTERISK / "extensions.conf"), "globals")
    default = AudioSocketSettings()
    assert globals_.get("TELEVOX_AUDIOSOCKET") == f"{default.advertise_host}:{default.port}"
    text = (ASTERISK / "extensions.conf").read_text()
    assert ":9092)" not in text  # nowhere hard-coded in an AudioSocket() call


# Apps and functions asterisklint 0.4.3 does not know, though real Asterisk 20/22 has
# them: AudioSocket (app_audiosocket, Asterisk 18+), AMD (app_amd, never in its list) and
# UUID() (func_uuid, Asterisk 16+). Only these exact messages are tolerated.
LINT_UNKNOWN_OK = {
    ("E_APP_MISSING", "app 'AMD' does not exist"),
    ("E_APP_MISSING", "app 'AudioSocket' does not exist"),
    ("E_FUNC_MISSING", "function 'UUID' does not exist"),
}


def test_asterisklint_dialplan_check(tmp_path: Path) -> None:
    # Run the real CLI (from this venv) on a copy, so no func_odbc.conf etc. is picked up.
    shutil.copy(ASTERISK / "extensions.conf", tmp_path / "extensions.conf")
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from asterisklint.main import main; "
                               "sys.exit(main(sys.argv[1:], {}))",
         "dialplan-check", "extensions.conf"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    messages = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    assert messages, "asterisklint printed nothing: did the known unknowns change?"
    unexpected = []
    for line in messages:
        m = re.match(r"extensions\.conf:\d+ (\w+): (.*)$", line)
        if m is None or not any(m.group(1) == code and m.group(2).startswith(text)
                                for code, text in LINT_UNKNOWN_OK):
            unexpected.append(line)
    assert unexpected == [], "\n".join(unexpected)


def test_asterisklint_catches_a_real_mistake(tmp_path: Path) -> None:
    # Guards the test above: the linter really runs and reports errors in this setup.
    bad = (ASTERISK / "extensions.conf").read_text().replace("same => n,Hangup()",
                                                              "same => n,Hangup(", 1)
    (tmp_path / "extensions.conf").write_text(bad)
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from asterisklint.main import main; "
                               "sys.exit(main(sys.argv[1:], {}))",
         "dialplan-check", "extensions.conf"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1
    assert any(code in out for code in ("W_APP_BALANCE", "E_APP_PARSE_ERROR",
                                        "W_APP_NEED_PARENS"))


# --- amd.conf ---------------------------------------------------------------------------

def test_amd_is_human_first() -> None:
    general = one(parse_conf(ASTERISK / "amd.conf"), "general")
    values = {k: int(v) for k, v in general.entries}
    assert set(values) == {"initial_silence", "greeting", "after_greeting_silence",
                           "total_analysis_time", "min_word_length", "between_words_silence",
                           "maximum_number_of_words", "maximum_word_length",
                           "silence_threshold"}
    # More lenient than Asterisk's defaults (2500, 1500, 2) on every MACHINE verdict.
    assert values["initial_silence"] > 2500
    assert values["greeting"] > 1500
    assert values["maximum_number_of_words"] > 2
    assert values["after_greeting_silence"] <= 1000  # people are answered quickly
    # The MACHINE limits must be reachable before the analysis gives up (NOTSURE).
    assert values["total_analysis_time"] > values["initial_silence"] + values["greeting"]
    assert values["total_analysis_time"] <= 8000  # the agent waits this long, at worst


def test_every_amd_value_is_commented() -> None:
    lines = (ASTERISK / "amd.conf").read_text().splitlines()
    for i, line in enumerate(lines):
        if "=" in line and not line.startswith(";"):
            assert lines[i - 1].startswith(";"), f"no comment above {line!r}"


# --- systemd ----------------------------------------------------------------------------

def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        assert current is not None
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def test_systemd_unit() -> None:
    unit = parse_unit(UNIT)
    u, s, i = unit["Unit"], unit["Service"], unit["Install"]
    assert set(" ".join(u["After"]).split()) >= {"network-online.target", "asterisk.service"}
    assert "network-online.target" in " ".join(u["Wants"]).split()
    assert s["User"] == ["televox"]
    assert s["Restart"] == ["on-failure"]
    assert s["ExecStart"] == [
        "/opt/televox/.venv/bin/televox serve --config /etc/televox/televox.yaml"]
    assert s["EnvironmentFile"] == ["/etc/televox/televox.env"]
    hardening = {"ProtectSystem": "strict", "ReadWritePaths": "/var/lib/televox",
                 "ProtectHome": "yes", "PrivateTmp": "yes", "NoNewPrivileges": "yes",
                 "PrivateDevices": "yes", "RestrictSUIDSGID": "yes",
                 "CapabilityBoundingSet": ""}
    for key, value in hardening.items():
        assert s.get(key) == [value], key
    assert i["WantedBy"] == ["multi-user.target"]


def test_systemd_unit_has_no_secret() -> None:
    text = UNIT.read_text()
    assert "TELEVOX_AMI_SECRET=" not in text.replace("# then add TELEVOX_AMI_SECRET=...", "")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_verify() -> None:
    proc = subprocess.run(["systemd-analyze", "verify", str(UNIT)], capture_output=True,
                          text=True, timeout=60, check=False)
    problems = [line for line in (proc.stdout + proc.stderr).splitlines()
                if line.strip() and "is not executable" not in line  # /opt not installed here
                and "No such file or directory" not in line]
    assert problems == []
