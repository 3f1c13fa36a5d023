"""`televox ivr check NAME` (the flow's WAV prompts: format and length) and
`televox ivr export NAME FILE.csv` (one row per answered call, one column per question)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from televox_pbx.cli.campaign_import import write_export
from televox_pbx.cli.common import DB_HELP, campaign_yaml, run, settings_from_args, store_target
from televox_pbx.config.campaign import Campaign
from televox_pbx.config.loader import ConfigError
from televox_pbx.config.settings import Settings
from televox_pbx.ivr.prompts import check_prompts, media_dir
from televox_pbx.store.campaigns import get_campaign
from televox_pbx.store.ivr import export_rows


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("ivr", help="IVR campaigns: prompts, answers")
    isub = p.add_subparsers(dest="ivr_command", required=True, metavar="ACTION")
    ck = isub.add_parser("check", help="check the flow's WAV prompts (format, length)")
    ck.add_argument("name")
    ck.set_defaults(func=_check)
    ex = isub.add_parser("export", help="answers to CSV: one row per call, a column per "
                                        "question")
    ex.add_argument("name")
    ex.add_argument("file", type=Path)
    ex.add_argument("--db", default=None, help=DB_HELP)
    ex.set_defaults(func=_export)


def ivr_campaign(settings: Settings, name: str) -> Campaign | None:
    """The IVR campaign's YAML, or None after saying why on stderr."""
    campaign = campaign_yaml(settings, name)
    if isinstance(campaign, ConfigError):
        return None
    if campaign is None or campaign.ivr is None:
        print(f"{name}: no IVR campaign (kind: ivr) of that name", file=sys.stderr)
        return None
    return campaign


def prompt_problems(settings: Settings, campaign: Campaign) -> list[str]:
    """For `campaign start`: an IVR campaign's prompts are checked before it runs."""
    if campaign.ivr is None:
        return []
    folder = media_dir(settings)
    return [f"{folder}: {p}" for p in check_prompts(campaign.ivr, folder)]


def _check(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    campaign = ivr_campaign(settings, args.name)
    if campaign is None:
        return 1
    problems = prompt_problems(settings, campaign)
    for p in problems:
        print(p, file=sys.stderr)
    if not problems:
        print(f"{args.name}: every prompt is a readable WAV within "
              f"{campaign.ivr.max_prompt_s if campaign.ivr else 0:g} s")
    return 1 if problems else 0


def _export(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    campaign = ivr_campaign(settings, args.name)
    if campaign is None or campaign.ivr is None:
        return 1
    questions = campaign.ivr.questions()

    async def go() -> tuple[list[str], list[list[object]]] | None:
        store = await store_target(args, settings).open()
        try:
            row = await get_campaign(store, args.name)
            return None if row is None else await export_rows(store, row.id, questions)
        finally:
            await store.close()
    return write_export(args.name, args.file, run(go()), "call(s)")
