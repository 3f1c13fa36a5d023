"""`televox sms send NUMBER --campaign NAME --text TEXT` and `televox sms status NAME`.

`send` texts one number now through the same compliance gate (DNC, window) and the
one-live-attempt claim as campaigns, over its own AMI session to the configured PBX;
with the built-in simulator use the daemon's API (`POST /api/v1/messages`) instead.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

from televox_pbx.ami.client import AmiClient, AmiError
from televox_pbx.cli.common import DB_HELP, campaign_yaml, run, settings_from_args, store_target
from televox_pbx.clock import SystemClock
from televox_pbx.config.loader import ConfigError
from televox_pbx.sms.ami import AmiMessenger
from televox_pbx.sms.service import SendResult, SmsService
from televox_pbx.store import sms as sms_store
from televox_pbx.store.campaigns import get_campaign, upsert_campaign

LOGIN_WAIT_S = 10.0
EXIT_OK, EXIT_ERROR, EXIT_REFUSED = 0, 1, 2


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("sms", help="send texts, SMS campaign status")
    ssub = p.add_subparsers(dest="sms_command", required=True, metavar="ACTION")
    send = ssub.add_parser("send", help="text one number now (through the compliance gate)")
    send.add_argument("number")
    send.add_argument("--campaign", required=True,
                      help="whose caller ID, trunk and calling window apply")
    send.add_argument("--text", required=True, help="one segment: 160 GSM-7 or 70 UCS-2")
    send.add_argument("--db", default=None, help=DB_HELP)
    send.set_defaults(func=_send)
    st = ssub.add_parser("status", help="each recipient: queued, sent, failed, replied")
    st.add_argument("name", help="campaign name")
    st.add_argument("--db", default=None, help=DB_HELP)
    st.set_defaults(func=_status)


def _send(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    campaign = campaign_yaml(settings, args.campaign)
    if isinstance(campaign, ConfigError):
        return EXIT_ERROR
    if campaign is None:
        print(f"{args.campaign}: no such campaign", file=sys.stderr)
        return EXIT_ERROR
    if settings.ami.host is None:
        print("no PBX configured (ami.host): with the simulator, send through the daemon's "
              "API (POST /api/v1/messages)", file=sys.stderr)
        return EXIT_ERROR

    async def go() -> SendResult:
        store = await store_target(args, settings).open()
        client = AmiClient(settings.ami, secret=settings.ami.secret())
        try:
            await client.start()
            await client.wait_logged_in(LOGIN_WAIT_S)
            row = await get_campaign(store, campaign.name)
            cid = row.id if row is not None and row.config() is not None else \
                await upsert_campaign(store, campaign)
            sms = SmsService(store, AmiMessenger(client), SystemClock(),
                             workspace=settings.workspace)
            return await sms.send_single(campaign, cid, args.number, args.text)
        finally:
            await client.close()
            await store.close()
    try:
        result = run(go())
    except (AmiError, TimeoutError) as exc:
        print(f"the PBX is not reachable: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if result.ok:
        print(f"sent ({result.attempt_id})")
        return EXIT_OK
    print(f"not sent: {result.code}: {result.reason}", file=sys.stderr)
    return EXIT_ERROR if result.code in ("failed", "not_sent") else EXIT_REFUSED


def _status(args: argparse.Namespace) -> int:
    db = store_target(args)

    async def go() -> list[sms_store.Recipient] | None:
        store = await db.open()
        try:
            row = await get_campaign(store, args.name)
            return None if row is None else await sms_store.recipients(store, row.id)
        finally:
            await store.close()
    found = run(go())
    if found is None:
        print(f"{args.name}: no such campaign in the store", file=sys.stderr)
        return EXIT_ERROR
    counts: dict[str, int] = {}
    for r in found:
        counts[r.status] = counts.get(r.status, 0) + 1
        print(f"{r.contact_id}\t{r.e164 or ''}\t{r.status}\t{r.reason or ''}")
    summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    print(f"{args.name} at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: {summary or 'no recipients'}",
          file=sys.stderr)
    return EXIT_OK
