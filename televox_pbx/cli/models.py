"""`televox models check [--json] [--repair]`: are the default models here and intact?"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from televox_pbx.cli.common import settings_from_args
from televox_pbx.voice.engines.holder import VAD_MODEL_ID
from televox_pbx.voice.engines.manifest import ManifestError, load_manifest
from televox_pbx.voice.engines.registry import ModelRegistry, ModelReport


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("models", help="locate and verify local models")
    msub = p.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    chk = msub.add_parser(
        "check", help="locate the configured models, join chunked ones into the cache dir "
        "and verify every file's sha256 (exit 1 if any is missing or corrupt)")
    chk.add_argument("--json", action="store_true", help="print a JSON report")
    chk.add_argument("--repair", action="store_true",
                     help="rebuild corrupt joined files from their chunks")
    chk.add_argument("--manifest", type=Path, default=None,
                     help="model manifest (default: models/manifest.json)")
    chk.add_argument("--cache-dir", type=Path, default=None,
                     help="where joined models go (default: settings models.cache_dir)")
    chk.add_argument("--all", action="store_true",
                     help="check every model in the manifest, not only the configured ones")
    chk.set_defaults(func=_check)


def _check(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    try:
        manifest = load_manifest(args.manifest)
    except ManifestError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    registry = ModelRegistry(manifest, args.cache_dir or settings.models.cache_dir)
    m = settings.models
    ids = [e.id for e in manifest.models] if args.all else [m.stt, m.llm, m.tts, VAD_MODEL_ID,
                                                               *([m.turn] if m.turn else [])]
    reports: list[ModelReport] = []
    unknown: list[str] = []
    for model_id in ids:
        try:
            reports.append(registry.check(model_id, full=True, repair=args.repair))
        except KeyError as exc:
            unknown.append(str(exc.args[0]))
    if args.json:
        print(json.dumps({"ok": not unknown and all(r.ok for r in reports),
                          "unknown": unknown, "models": [_as_json(r) for r in reports]},
                         indent=2))
    else:
        for line in unknown:
            print(f"UNKNOWN  {line}")
        for report in reports:
            _print_report(report)
    return 0 if not unknown and all(r.ok for r in reports) else 1


def _print_report(r: ModelReport) -> None:
    print(f"{'OK      ' if r.ok else 'PROBLEM '}{r.kind:<4} {r.id}  ({_mib(r.size)})")
    for f in r.files:
        digest = f"sha256 {f.status.value}" if f.status.value != "MISSING" else "MISSING"
        extra = " (joined now)" if f.joined else ""
        print(f"    {f.name:<36} {_mib(f.size or 0):>10}  {digest}{extra}")
        print(f"        at {f.path}")
        if f.detail:
            print(f"        {f.detail}")


def _as_json(r: ModelReport) -> dict[str, Any]:
    return {"id": r.id, "kind": r.kind, "ok": r.ok, "main": str(r.main_path),
            "size": r.size,
            "files": [{"name": f.name, "path": str(f.path) if f.path else None,
                       "size": f.size, "status": f.status.value, "sha256": f.sha256,
                       "expected_sha256": f.expected_sha256, "joined": f.joined,
                       "detail": f.detail} for f in r.files]}


def _mib(n: int) -> str:
    return f"{n / 1048576:.1f} MiB"
