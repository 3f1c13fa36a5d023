"""`televox check [DIR]`: validate televox.yaml, every agent and campaign file, like a linter.

Prints `OK <file>` per good file and `<file>:<line>: <field.path>: <message>` per problem;
exit 1 when anything is wrong. Never prints the AMI secret, only whether it is available.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from televox_pbx.config.capacity import Capacity, campaign_warning
from televox_pbx.config.capacity import effective as effective_capacity
from televox_pbx.config.loader import (
    SETTINGS_FILE_NAME,
    ConfigError,
    ConfigIssue,
    RawCheck,
    agents_dir_for,
    campaign_files,
    load_agents,
    load_campaign,
    load_settings,
    read_yaml,
    settings_path,
)
from televox_pbx.config.settings import Settings
from televox_pbx.config.yamlio import line_of


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "check", help="validate settings and campaign files (exit 1 on any error)")
    p.add_argument("dir", nargs="?", default=None, metavar="DIR",
                   help=f"config directory holding {SETTINGS_FILE_NAME} and campaigns/ "
                        "(default: the directory of --config, else config/)")
    p.set_defaults(func=_check)


@dataclass(slots=True)
class CheckReport:
    ok: list[Path] = field(default_factory=list)
    issues: list[ConfigIssue] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.issues)


def check_settings_file(path: Path, report: CheckReport) -> Settings | None:
    if not path.is_file():
        report.issues.append(ConfigIssue(path, None, "", "settings file not found"))
        return None
    try:
        settings = load_settings(path)
    except ConfigError as exc:
        report.issues.extend(exc.issues)
        return None
    report.ok.append(path)
    return settings


def describe_ami(settings: Settings) -> str:
    """One line on how the daemon reaches AMI; the secret only as available or not."""
    ami = settings.ami
    if ami.host is None:
        return "AMI: no ami.host set, the built-in PBX simulator will be used"
    available, where = ami.secret_status()
    state = f"secret available ({where})" if available else f"secret NOT available ({where})"
    return f"AMI: {ami.username}@{ami.host}:{ami.port}, {state}"


def describe_capacity(capacity: Capacity) -> str:
    """The live conversations the daemon will admit on this box (a warning is not an
    error: the daemon starts, capped)."""
    line = (f"capacity: {capacity.conversations} live conversation(s) at once "
            f"({capacity.cores} core(s) serve {capacity.core_limit})")
    return f"{line}\nwarning: {capacity.warning}" if capacity.warning else line


def import_mapping_issues(path: Path, root: yaml.Node | None,
                          data: dict[str, Any]) -> list[ConfigIssue]:
    """import_mapping targets the importer would refuse, caught before any upload."""
    # Imported here, not in config/, because campaigns/ already depends on config/.
    from televox_pbx.campaigns.mapping import MappingError, parse_target

    mapping = data.get("import_mapping")
    if not isinstance(mapping, dict):
        return []
    issues = []
    for header, target in mapping.items():
        if not isinstance(target, str):
            continue  # pydantic reports the wrong type
        try:
            parse_target(target)
        except MappingError as exc:
            issues.append(ConfigIssue(path, line_of(root, ("import_mapping", str(header))),
                                      f"import_mapping.{header}", str(exc)))
    return issues


def piper_voices() -> list[str]:
    """The TTS voices the model manifest offers; empty when it cannot be read."""
    from televox_pbx.voice.engines.manifest import ManifestError, load_manifest

    try:
        return [e.id for e in load_manifest().models if e.kind == "tts"]
    except ManifestError:
        return []


def number_agent_issues(path: Path, settings: Settings, agents: set[str]) -> list[ConfigIssue]:
    """Every number's agent must be an agent file."""
    root = read_yaml(path)[0]
    return [ConfigIssue(path, line_of(root, ("numbers", i, "agent")), f"numbers.{i}.agent",
                        f"no agent {n.agent!r} in {settings.agents_dir}")
            for i, n in enumerate(settings.numbers) if n.agent is not None
            and n.agent not in agents]


def caller_id_checks(settings: Settings | None) -> tuple[RawCheck, ...]:
    """A campaign's caller ID must be one of the numbers that allow it: shown as caller ID
    for calls, sending texts for an SMS campaign (when the settings list numbers at all)."""
    if settings is None or not settings.numbers:
        return ()
    from televox_pbx.campaigns.phones import normalize_phone

    shown = [n.number for n in settings.numbers if n.caller_id]
    texting = [n.number for n in settings.numbers if n.sms]

    def check(path: Path, root: yaml.Node | None, data: dict[str, Any]) -> list[ConfigIssue]:
        value = data.get("caller_id")
        if value is None:
            return []
        country = str(data.get("default_country") or settings.default_country)
        sms = data.get("channel") == "sms"
        allowed, what = (texting, "send SMS (sms: true)") if sms else (
            shown, "be shown as caller ID")
        if normalize_phone(str(value), country).e164 in allowed:
            return []
        return [ConfigIssue(path, line_of(root, ("caller_id",)), "caller_id",
                            f"not one of the numbers that may {what} "
                            f"(settings numbers: {', '.join(allowed) or 'none'})")]
    return (check,)


def check_directory(directory: Path, settings_file: Path | None = None) -> CheckReport:
    """Validate the settings file and every campaign file it points at."""
    report = CheckReport()
    path = settings_file or directory / SETTINGS_FILE_NAME
    settings = check_settings_file(path, report)
    # Settings that failed to load still have a default campaigns dir to check.
    campaigns_dir = (settings.campaigns_dir if settings is not None
                     else path.parent / Settings().campaigns_dir)
    capacity = None
    if settings is not None:
        report.notes.append(describe_ami(settings))
        capacity = effective_capacity(settings.capacity)
        report.notes.append(describe_capacity(capacity))
    agents_dir = (settings.agents_dir if settings is not None
                  else agents_dir_for(campaigns_dir))
    agents, agent_issues = load_agents(agents_dir)
    report.issues.extend(agent_issues)
    for name, agent in sorted(agents.items()):
        file = next(p for p in campaign_files(agents_dir) if p.stem == name)
        root = read_yaml(file)[0]
        missing = [ConfigIssue(file, line_of(root, ("knowledge", n)),
                               f"knowledge.{n}", f"{p} not found")
                   for n, p in enumerate(agent.knowledge_paths()) if not p.exists()]
        if agent.voice is not None and (voices := piper_voices()) \
                and agent.voice not in voices:
            missing.append(ConfigIssue(file, line_of(root, ("voice",)), "voice",
                                       f"not a Piper voice of the model manifest "
                                       f"({', '.join(voices)})"))
        report.issues.extend(missing)
        if not missing:
            report.ok.append(file)
    if settings is not None:
        report.issues.extend(number_agent_issues(path, settings, set(agents)))
    if not campaigns_dir.is_dir():
        report.issues.append(ConfigIssue(campaigns_dir, None, "campaigns_dir",
                                         "campaigns directory not found"))
        return report
    files = campaign_files(campaigns_dir)
    seen: set[str] = set()
    inline: list[str] = []
    for file in files:
        if file.stem in seen:
            report.issues.append(ConfigIssue(file, None, "", f"campaign {file.stem!r} is "
                                                              "defined twice (.yaml and .yml)"))
            continue
        seen.add(file.stem)
        try:
            campaign = load_campaign(file, extra_checks=(import_mapping_issues,
                                                         *caller_id_checks(settings)),
                                     agents=agents)
        except ConfigError as exc:
            report.issues.extend(exc.issues)
        else:
            report.ok.append(file)
            if capacity is not None:
                warning = campaign_warning(campaign.name, campaign.pacing.max_concurrent,
                                           capacity.conversations)
                if warning:
                    report.notes.append(f"{file}: {warning}")
            if campaign.agent.profile is None:
                inline.append(file.name)
    if inline:
        report.notes.append(
            f"inline agent in {', '.join(inline)} (still loads). To share it or give it "
            "knowledge and tools: move persona_name and business to config/agents/NAME.yaml "
            "(context becomes business_info), write `agent: NAME` in the campaign and keep "
            "opening_line and goal at its top level")
    if not files:
        report.notes.append(f"no campaign files in {campaigns_dir}")
    return report


def _check(args: argparse.Namespace) -> int:
    if args.dir is not None:
        report = check_directory(Path(args.dir))
    else:  # --config, else $TELEVOX_CONFIG, else config/televox.yaml
        path = settings_path(args.config)
        report = check_directory(path.parent, path)
    for path in report.ok:
        print(f"OK {path}")
    for note in report.notes:
        print(note)
    for issue in report.issues:
        print(issue)
    files_bad = len({i.file for i in report.issues})
    if report.failed:
        print(f"{len(report.issues)} error(s) in {files_bad} file(s); "
              f"{len(report.ok)} file(s) OK")
        return 1
    print(f"all {len(report.ok)} file(s) OK")
    return 0
