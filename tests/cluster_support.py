"""Several real daemons on one PostgreSQL (issue 19's cluster test), and the judges that
read the outcome from the database alone.

Each node is `python -m televox_pbx serve --no-models` in a folder of its own, with its own
embedded PBX simulator (no ami.host), node id, control channel off and free ports.

The database keeps the truth of when each attempt was live: `install_audit` adds a trigger
that writes a row, stamped with the database's clock, whenever an attempt is inserted or
changes status (an AFTER trigger: an insert's row is written after the unique index let it
in, so after any earlier attempt to that number had ended and committed). The judges take
each attempt's live interval from there, and its start (for the pace) from the attempt's
own created_at.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import yaml
from invariant_model import CampaignSpec, candidate_zones, in_window, parse_ts

ROOT = Path(__file__).resolve().parent.parent
LIVE = ("intent", "originated", "ringing", "answered")

AUDIT_SQL = """
CREATE TABLE attempt_audit (
    attempt_id TEXT NOT NULL, status TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL DEFAULT EXTRACT(EPOCH FROM clock_timestamp()));
CREATE FUNCTION attempt_audit_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR OLD.status IS DISTINCT FROM NEW.status THEN
        INSERT INTO attempt_audit(attempt_id, status) VALUES (NEW.id, NEW.status);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER attempt_audit AFTER INSERT OR UPDATE OF status ON call_attempts
    FOR EACH ROW EXECUTE FUNCTION attempt_audit_row();
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Node:
    name: str
    folder: Path
    proc: asyncio.subprocess.Process | None = None
    starts: int = 0

    async def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
        self.starts += 1
        with (self.folder / f"run{self.starts}.log").open("wb") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "televox_pbx", "--config", "televox.yaml", "serve",
                "--no-models", "--audiosocket-port", "0", "--http-port", "0",
                cwd=self.folder, env=env, stdout=out, stderr=out)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after 30 s; the exit status (None: was not running)."""
        if self.proc is None or self.proc.returncode is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.proc.wait(), 30)
        except TimeoutError:
            self.proc.kill()
            return await self.proc.wait()

    def log_tail(self, chars: int = 3000) -> str:
        logs = sorted(self.folder.glob("run*.log"))
        return "".join(f"--- {p.name}\n{p.read_text(errors='replace')[-chars:]}" for p in logs)


def make_node(root: Path, name: str, url: str, scenario: dict[str, Any]) -> Node:
    folder = root / name
    folder.mkdir()
    (folder / "scenario.yaml").write_text(yaml.safe_dump(scenario), encoding="utf-8")
    settings = {
        "database": {"url": url, "node_id": name},
        "events": {"jsonl_path": "events.jsonl"},
        "simulator": {"scenario": "scenario.yaml", "recordings_dir": "sim"},
        "control": {"enabled": False},
        "audiosocket": {"bind_host": "127.0.0.1"},
        "http": {"bind_host": "127.0.0.1", "port": free_port()},
        "max_concurrent_calls": 100,
        "recordings_dir": "recordings",
        "logging": {"level": "WARNING"},
    }
    (folder / "televox.yaml").write_text(yaml.safe_dump(settings), encoding="utf-8")
    return Node(name, folder)


# ---- reading the outcome --------------------------------------------------------------

@dataclass
class Stored:
    """One attempt as the database has it: its live interval [start, end) from the audit
    (end None: still live), its stored start and when it reached the PBX."""
    id: str
    campaign: str
    phone: str
    status: str
    start: float
    end: float | None
    created: datetime
    originated: datetime | None


@dataclass
class Outcome:
    attempts: list[Stored]
    contacts: Counter[str]
    unsettled: list[str] = field(default_factory=list)  # contacts neither done nor due


UNSETTLED_SQL = """
SELECT c.id, c.status, c.next_eligible_at FROM contacts c
 WHERE (c.status IN ('calling', 'connected')
    OR (c.status = 'pending' AND c.next_eligible_at IS NULL)
    OR (c.status = 'callback' AND NOT EXISTS (SELECT 1 FROM callbacks b
         WHERE b.contact_id = c.id AND b.status = 'pending')))
"""
# A pending contact due now whose next phone is on the DNC list: the cluster claim never
# picks it, and the Dialer's DNC sweep must have moved it on (campaigns/dnc_sweep.py).
DNC_HELD_SQL = """
SELECT COUNT(*) FROM contacts c JOIN contact_phones p
    ON p.contact_id = c.id AND p.position = c.phone_index
  JOIN dnc d ON d.e164 = p.e164 WHERE c.status = 'pending'
   AND (c.next_eligible_at IS NULL OR c.next_eligible_at <= to_char(now() AT TIME ZONE
        'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
"""


async def read_outcome(url: str) -> tuple[Outcome, int]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT a.id, p.name AS campaign, a.phone, a.status, a.created_at,"
            " a.originated_at, (SELECT MIN(at) FROM attempt_audit u WHERE u.attempt_id = a.id)"
            " AS live_from, (SELECT MIN(at) FROM attempt_audit u WHERE u.attempt_id = a.id"
            f" AND u.status NOT IN {LIVE!r}) AS live_until"
            " FROM call_attempts a JOIN campaigns p ON p.id = a.campaign_id")
        stored = [Stored(str(r["id"]), str(r["campaign"]), str(r["phone"]), str(r["status"]),
                         float(r["live_from"]),
                         None if r["live_until"] is None else float(r["live_until"]),
                         _ts(r["created_at"]), parse_ts(r["originated_at"]))
                  for r in rows]
        contacts = Counter({str(r["status"]): int(r["n"]) for r in await conn.fetch(
            "SELECT status, COUNT(*) AS n FROM contacts GROUP BY status")})
        unsettled = [f"contact {r['id']} is {r['status']} (next {r['next_eligible_at']})"
                     for r in await conn.fetch(UNSETTLED_SQL)]
        held = int(await conn.fetchval(DNC_HELD_SQL))
    finally:
        await conn.close()
    return Outcome(stored, contacts, unsettled), held


def _ts(text: str) -> datetime:
    got = parse_ts(text)
    assert got is not None
    return got


def one_live_per_number(rows: list[Stored]) -> list[str]:
    """No number had two attempts live at once (intervals from the audit)."""
    out: list[str] = []
    per: dict[str, list[Stored]] = defaultdict(list)
    for a in rows:
        per[a.phone].append(a)
    for phone, items in per.items():
        items.sort(key=lambda a: a.start)
        for prev, nxt in itertools.pairwise(items):
            if prev.end is None or prev.end > nxt.start:
                out.append(f"{phone}: {prev.id} ({prev.campaign}, {prev.status}) still live"
                           f" when {nxt.id} ({nxt.campaign}) started")
    return out


def max_live(rows: list[Stored]) -> int:
    """The most attempts live at one instant (an end at t frees its slot before a start
    at t: intervals are [start, end))."""
    edges = sorted([(a.start, 1) for a in rows]
                   + [(a.end, -1) for a in rows if a.end is not None], key=lambda e: (e[0], e[1]))
    live = peak = 0
    for _, step in edges:
        live += step
        peak = max(peak, live)
    return peak


def most_in_a_minute(starts: list[datetime]) -> int:
    """The most start times inside any 60-second window [t, t + 60 s)."""
    times = sorted(starts)
    best = j = 0
    for i, t in enumerate(times):
        while j < len(times) and times[j] < t + timedelta(seconds=60):
            j += 1
        best = max(best, j - i)
    return best


def outside_window(rows: list[Stored], specs: dict[str, CampaignSpec]) -> list[str]:
    """Attempts that reached the PBX (an originate time) while a zone the callee may be in
    was outside the campaign's window."""
    out: list[str] = []
    for a in rows:
        if a.originated is None:
            continue
        spec = specs[a.campaign]
        zones = candidate_zones(spec, a.phone, None)
        if not zones or not all(in_window(spec.window, z, a.originated) for z in zones):
            out.append(f"{a.phone}: {a.id} of {a.campaign} originated"
                       f" {a.originated:%H:%M:%S} outside its window ({zones})")
    return out


def dialled_after_dnc(rows: list[Stored], dnc_done: dict[str, datetime]) -> list[str]:
    """Attempts that reached the PBX although claimed after their number's DNC entry had
    committed (`dnc_done`: when the test's insert returned). A claim picked just before
    the entry and refused at the re-check before the Originate never reaches the PBX."""
    return [f"{a.phone}: {a.id} of {a.campaign} claimed {a.created:%H:%M:%S.%f} after its"
            f" DNC entry ({dnc_done[a.phone]:%H:%M:%S.%f}) and dialled"
            for a in rows if a.phone in dnc_done and a.originated is not None
            and a.created > dnc_done[a.phone]]


def now_utc() -> datetime:
    return datetime.now(UTC)
