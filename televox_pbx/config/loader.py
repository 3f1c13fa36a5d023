"""Load YAML into pydantic models; every error names file, line and field path."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from televox_pbx.config import yamlio
from televox_pbx.config.agent import AgentFile
from televox_pbx.config.campaign import Campaign
from televox_pbx.config.settings import Settings

M = TypeVar("M", bound=BaseModel)

DEFAULT_SETTINGS_PATH = Path("config/televox.yaml")
SETTINGS_FILE_NAME = "televox.yaml"


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    file: Path
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else str(self.file)
        return f"{where}: {self.field or '(file)'}: {self.message}"


class ConfigError(Exception):
    def __init__(self, issues: list[ConfigIssue]) -> None:
        super().__init__("\n".join(str(i) for i in issues))
        self.issues = issues


# Checks on the raw mapping that must run even when pydantic reports field errors.
RawCheck = Callable[[Path, yaml.Node | None, dict[str, Any]], list[ConfigIssue]]


def _line_of(node: yaml.Node | None, path: tuple[int | str, ...]) -> int | None:
    return yamlio.line_of(node, path)


def _issues_from(path: Path, root: yaml.Node | None,
                 exc: ValidationError) -> list[ConfigIssue]:
    issues = []
    for err in exc.errors():
        # Drop pydantic's validator names ("function-after[...]") from the location.
        loc = tuple(p for p in err["loc"]
                    if not (isinstance(p, str) and p.startswith("function-")))
        field = ".".join(str(p) for p in loc)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        issues.append(ConfigIssue(path, _line_of(root, loc), field, msg))
    return issues


def read_yaml(path: Path) -> tuple[yaml.Node | None, dict[str, Any]]:
    """The node tree and the top-level mapping, or ConfigError naming file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigIssue(path, None, "", f"cannot read: {exc}")]) from exc
    try:
        root, data = yamlio.parse(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([ConfigIssue(path, line, "", f"invalid YAML: {problem}")]) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([ConfigIssue(path, 1, "", "top level must be a mapping")])
    return root, data


def load_model(path: Path, model: type[M], checks: tuple[RawCheck, ...] = (),
               context: dict[str, Any] | None = None) -> M:
    """Validate one file; all problems found (YAML, fields, raw checks) in one ConfigError."""
    root, data = read_yaml(path)
    issues = [ConfigIssue(path, d.line, ".".join(d.path),
                          f"duplicate key (first given on line {d.first_line})")
              for d in yamlio.duplicate_keys(root)]
    result: M | None = None
    try:
        result = model.model_validate(data, context=context)
    except ValidationError as exc:
        issues.extend(_issues_from(path, root, exc))
    for check in checks:
        for issue in check(path, root, data):
            if issue not in issues:
                issues.append(issue)
    if issues or result is None:
        issues.sort(key=lambda i: (i.line or 0, i.field))
        raise ConfigError(issues)
    return result


def settings_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    return Path(explicit or os.environ.get("TELEVOX_CONFIG") or DEFAULT_SETTINGS_PATH)


def resolve_settings_paths(settings: Settings, base: Path) -> Settings:
    """Make every relative path in settings relative to `base` (the settings file's dir)."""
    def rel(p: Path) -> Path:
        return p if p.is_absolute() else (base / p)
    ami = settings.ami
    if ami.secret_file is not None:
        ami = ami.model_copy(update={"secret_file": rel(ami.secret_file)})
    control = settings.control.model_copy(update={
        k: rel(v) for k, v in (("socket_path", settings.control.socket_path),
                               ("token_path", settings.control.token_path)) if v is not None})
    http = settings.http
    if http.api_token_file is not None:
        http = http.model_copy(update={"api_token_file": rel(http.api_token_file)})
    hooks = settings.webhooks.model_copy(update={"subscriptions": [
        sub.model_copy(update={"secret_file": rel(sub.secret_file)}) if sub.secret_file
        else sub for sub in settings.webhooks.subscriptions]})
    return settings.model_copy(update={
        "ami": ami,
        "control": control,
        "http": http,
        "webhooks": hooks,
        "campaigns_dir": rel(settings.campaigns_dir),
        "agents_dir": rel(settings.agents_dir),
        "recordings_dir": rel(settings.recordings_dir),
        "simulator": settings.simulator.model_copy(update={
            "scenario": rel(settings.simulator.scenario) if settings.simulator.scenario else None,
            "recordings_dir": rel(settings.simulator.recordings_dir)}),
        "database": settings.database.model_copy(update={
            "path": rel(settings.database.path),
            "password_file": rel(settings.database.password_file)
            if settings.database.password_file else None}),
        "models": settings.models.model_copy(update={"cache_dir": rel(settings.models.cache_dir)}),
        "events": settings.events.model_copy(
            update={"jsonl_path": rel(settings.events.jsonl_path)}),
    })


def load_settings(path: Path) -> Settings:
    """Relative paths inside settings resolve against the settings file's directory."""
    return resolve_settings_paths(load_model(path, Settings), path.parent)


def _name_matches_file(path: Path, root: yaml.Node | None,
                       data: dict[str, Any]) -> list[ConfigIssue]:
    # The file name is the campaign's identity (store rows, API URLs); a differing
    # name: would make two files claim one campaign.
    name = data.get("name")
    if isinstance(name, str) and name and name != path.stem:
        return [ConfigIssue(path, _line_of(root, ("name",)), "name",
                            f"must match the file name {path.stem!r}")]
    return []


def agents_dir_for(campaigns_dir: Path) -> Path:
    """Where agent files live when no settings say: next to the campaigns directory."""
    return campaigns_dir.parent / "agents"


def load_agent(path: Path) -> AgentFile:
    agent = load_model(path, AgentFile, checks=(_name_matches_file,))
    return agent.model_copy(update={"base_dir": path.parent})


def load_agents(directory: Path) -> tuple[dict[str, AgentFile], list[ConfigIssue]]:
    """Every agent file in the directory (none if it does not exist); bad ones reported."""
    good: dict[str, AgentFile] = {}
    issues: list[ConfigIssue] = []
    for path in campaign_files(directory) if directory.is_dir() else []:
        if path.stem in good:
            issues.append(ConfigIssue(path, None, "", f"agent {path.stem!r} is defined "
                                                      "twice (.yaml and .yml)"))
            continue
        try:
            good[path.stem] = load_agent(path)
        except ConfigError as exc:
            issues.extend(exc.issues)
    return good, issues


def load_campaign(path: Path, extra_checks: tuple[RawCheck, ...] = (),
                  agents: dict[str, AgentFile] | None = None) -> Campaign:
    """`agents`: the agent files a campaign may name; default: those in agents/ beside
    the campaign's directory."""
    if agents is None:
        agents = load_agents(agents_dir_for(path.parent))[0]
    return load_model(path, Campaign, checks=(_name_matches_file, *extra_checks),
                      context={"agents": agents})


def campaign_files(directory: Path) -> list[Path]:
    return sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])


def load_campaigns(directory: Path, agents_dir: Path | None = None,
                   ) -> tuple[dict[str, Campaign], list[ConfigIssue]]:
    """Every campaign in the directory; bad files are reported, good ones still load."""
    good: dict[str, Campaign] = {}
    issues: list[ConfigIssue] = []
    agents = load_agents(agents_dir or agents_dir_for(directory))[0]
    for path in campaign_files(directory):
        if path.stem in good:
            issues.append(ConfigIssue(path, None, "", f"campaign {path.stem!r} is defined "
                                                      "twice (.yaml and .yml)"))
            continue
        try:
            good[path.stem] = load_campaign(path, agents=agents)
        except ConfigError as exc:
            issues.extend(exc.issues)
    return good, issues


def find_campaign(settings: Settings, name: str) -> Campaign | None:
    """campaigns_dir/NAME.yaml loaded and checked; None if there is no such file.
    A file that exists but does not validate raises ConfigError."""
    path = settings.campaigns_dir / f"{name}.yaml"
    if not path.exists():
        return None
    return load_campaign(path, agents=load_agents(settings.agents_dir)[0])


def find_agent(settings: Settings, name: str) -> AgentFile | None:
    """agents_dir/NAME.yaml loaded and checked; None if there is no such file."""
    path = settings.agents_dir / f"{name}.yaml"
    return load_agent(path) if path.exists() else None
