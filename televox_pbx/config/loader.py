"""Load YAML into pydantic models; every error names file, line and field path."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from televox_pbx.config.campaign import Campaign
from televox_pbx.config.settings import Settings

M = TypeVar("M", bound=BaseModel)

DEFAULT_SETTINGS_PATH = Path("config/televox.yaml")


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


def _line_of(node: yaml.Node | None, path: tuple[int | str, ...]) -> int | None:
    """1-based line of the deepest node along `path` (the key line for mapping entries)."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in path:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == str(part):
                    line = key_node.start_mark.line + 1
                    node = value_node
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return line
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def load_model(path: Path, model: type[M]) -> M:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigIssue(path, None, "", f"cannot read: {exc}")]) from exc
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError([ConfigIssue(path, line, "", f"invalid YAML: {exc}")]) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([ConfigIssue(path, 1, "", "top level must be a mapping")])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        issues = []
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith(
                "function-")))
            field = ".".join(str(p) for p in loc)
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            issues.append(ConfigIssue(path, _line_of(root, loc), field, msg))
        issues.sort(key=lambda i: (i.line or 0, i.field))
        raise ConfigError(issues) from exc


def settings_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    return Path(explicit or os.environ.get("TELEVOX_CONFIG") or DEFAULT_SETTINGS_PATH)


def load_settings(path: Path) -> Settings:
    """Relative paths inside settings resolve against the settings file's directory."""
    settings = load_model(path, Settings)
    base = path.parent
    def rel(p: Path) -> Path:
        return p if p.is_absolute() else (base / p)
    return settings.model_copy(update={
        "campaigns_dir": rel(settings.campaigns_dir),
        "recordings_dir": rel(settings.recordings_dir),
        "database": settings.database.model_copy(update={"path": rel(settings.database.path)}),
        "models": settings.models.model_copy(update={"cache_dir": rel(settings.models.cache_dir)}),
        "events": settings.events.model_copy(
            update={"jsonl_path": rel(settings.events.jsonl_path)}),
    })


def load_campaign(path: Path) -> Campaign:
    campaign = load_model(path, Campaign)
    if campaign.name != path.stem:
        raise ConfigError([ConfigIssue(path, _line_of(yaml.compose(path.read_text("utf-8"),
                                                                  Loader=yaml.SafeLoader),
                                                     ("name",)),
                                       "name", f"must match the file name {path.stem!r}")])
    return campaign


def load_campaigns(directory: Path) -> tuple[dict[str, Campaign], list[ConfigIssue]]:
    """Every campaign in the directory; bad files are reported, good ones still load."""
    good: dict[str, Campaign] = {}
    issues: list[ConfigIssue] = []
    for path in sorted(directory.glob("*.yaml")) + sorted(directory.glob("*.yml")):
        try:
            good[path.stem] = load_campaign(path)
        except ConfigError as exc:
            issues.extend(exc.issues)
    return good, issues
