"""Failover (issue 19's benchmark): the time from SIGKILL until a survivor has reconciled the
dead node's calls.

Per round: a throw-away PostgreSQL, N nodes (each the daemon's App with scripted voice
engines, tests/real_pbx/cluster_node.py) each beside its own standalone PBX simulator
(`televox sim`, a process of its own, so the dead node's PBX outlives it as an Asterisk
would). One campaign's calls are answered and talking on every node; the node with the most
live calls is SIGKILLed. The simulator hangs those calls up when their AudioSocket drops;
a survivor takes the node over once its lease (12 s) runs out, asks its simulator over AMI
and closes each call by rule N3. Printed: when the takeover happened and when the last of
the dead node's calls was closed, both from the SIGKILL.

    python bench/bench_failover.py [--nodes 2] [--calls 6] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "tests" / "real_pbx"))

from dialer_support import seed  # noqa: E402
from pg_support import PgReader, fresh_database, start_server, stop_server  # noqa: E402
from procs import free_ports, wait_until  # noqa: E402

from televox_pbx.config.campaign import Campaign  # noqa: E402
from televox_pbx.store import Store  # noqa: E402

LIVE = ("intent", "originated", "ringing", "answered")
EVERY_DAY = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
SCENARIO = {"default": {"behaviour": "answer", "ring_s": 0.3, "hangup_after_s": 300,
                        "script": [{"say": "Hello?"}, {"pause_s": 30}]}}


def campaign(calls: int) -> Campaign:
    return Campaign.model_validate({
        "name": "failover", "caller_id": "+15550100000", "trunk": "trunk", "amd": False,
        "agent": {"persona_name": "Ava", "business": "Acme", "goal": "book a demo",
                  "opening_line": "Hi, I'm Ava, an AI assistant calling for Acme."},
        "calling_window": {"legal_override": True, "start": "00:00", "end": "23:59:59",
                           "weekdays": EVERY_DAY},
        "timezone_policy": {"source": "fixed", "fixed_zone": "UTC"},
        "pacing": {"calls_per_minute": 600, "max_concurrent": calls},
        "retry": {"max_attempts_per_phone": 2, "retry_interval_minutes": 0},
        "silence": {"reprompt_after_s": 60, "hangup_after_s": 120, "max_call_duration_s": 300}})


class Box:
    """One node and its simulator, in processes of their own."""

    def __init__(self, root: Path, name: str, url: str, secret: str) -> None:
        self.name, self.root = name, root
        root.mkdir(parents=True)
        ami, audio = free_ports(2)
        (root / "scenario.yaml").write_text(yaml.safe_dump(SCENARIO), encoding="utf-8")
        settings = {"ami": {"host": "127.0.0.1", "port": ami, "ping_interval_s": 5},
                    "audiosocket": {"bind_host": "127.0.0.1", "port": audio},
                    "database": {"url": url, "node_id": name},
                    "events": {"jsonl_path": "events.jsonl"}, "logging": {"level": "INFO"},
                    "campaigns_dir": "campaigns", "recordings_dir": "recordings",
                    # The dialer counts every node's live calls against this box's voice
                    # capacity (README, "Several boxes"): room for all, on every node.
                    "capacity": {"per_core": 50}, "max_concurrent_calls": 200}
        self.settings = root / "televox.yaml"
        self.settings.write_text(yaml.safe_dump(settings), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if k != "TELEVOX_DB_PASSWORD"}
        env.update({"TELEVOX_AMI_SECRET": secret, "HF_HUB_OFFLINE": "1",
                    "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])})
        self.sim = self._spawn("sim.log", env, "-m", "televox_pbx", "-c", str(self.settings),
                               "sim", "--ami-port", str(ami), "--placeholder-speech",
                               "--scenario", str(root / "scenario.yaml"),
                               "--audiosocket", f"127.0.0.1:{audio}", "--out", "sim")
        wait_until("the simulator", lambda: "simulator listening" in self.log("sim.log"), 30)
        self.node = self._spawn("node.log", env,
                                str(REPO / "tests" / "real_pbx" / "cluster_node.py"),
                                str(self.settings))

    def _spawn(self, log: str, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
        with (self.root / log).open("ab") as out:
            return subprocess.Popen([sys.executable, *args], cwd=self.root, env=env,
                                    stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)

    def log(self, name: str) -> str:
        path = self.root / name
        return path.read_text(errors="replace") if path.exists() else ""

    def ready(self) -> bool:
        if self.node.poll() is not None:
            raise RuntimeError(f"{self.name} exited: {self.log('node.log')[-2000:]}")
        return "node started" in self.log("node.log")

    def close(self) -> None:
        for proc in (self.node, self.sim):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(5)


def one_round(server: Any, root: Path, nodes: int, calls: int) -> dict[str, float]:
    url = fresh_database(server, migrated=False)
    asyncio.run(_migrate(url))
    secret = secrets.token_hex(16)
    db = PgReader(url)
    boxes = [Box(root / f"box-{i}", f"box-{i}", url, secret) for i in range(nodes)]
    try:
        for box in boxes:
            wait_until(f"{box.name} to start", box.ready, 60, 0.2)
        phones = [[f"+1212555{i:04d}"] for i in range(calls)]
        asyncio.run(_seed(url, calls, phones))

        def answered() -> bool:
            rows = db.execute("SELECT status FROM call_attempts")
            return len(rows) == calls and all(r["status"] == "answered" for r in rows)
        wait_until("every call to be answered", answered, 60, 0.1)
        time.sleep(1.0)
        live = db.execute("SELECT node_id, COUNT(*) AS n FROM call_attempts"
                          " GROUP BY node_id ORDER BY COUNT(*) DESC, node_id")
        victim = next(b for b in boxes if b.name == live[0]["node_id"])
        ids = [r["id"] for r in db.execute("SELECT id FROM call_attempts WHERE node_id = ?",
                                           (victim.name,))]
        os.killpg(victim.node.pid, signal.SIGKILL)
        killed = time.time()
        victim.node.wait(10)

        def settled() -> bool:
            rows = db.execute("SELECT status FROM call_attempts WHERE id = ANY(?)", (ids,))
            return all(r["status"] not in LIVE for r in rows)
        wait_until("the dead node's calls to be reconciled", settled, 120, 0.05)
        done = time.time()
        [taken] = db.execute("SELECT taken_over_s FROM nodes WHERE node_id = ?",
                             (victim.name,))
        rules = db.execute("SELECT notes FROM call_attempts WHERE id = ANY(?)", (ids,))
        assert all(str(r["notes"]).startswith("N3:") for r in rules), rules
        attempts = len(db.execute("SELECT id FROM call_attempts"))
        assert attempts == calls, f"{attempts} attempts for {calls} contacts: a redial"
        return {"calls": float(len(ids)), "takeover_s": float(taken["taken_over_s"]) - killed,
                "reconciled_s": done - killed}
    finally:
        for box in boxes:
            box.close()
        db.close()


async def _migrate(url: str) -> None:
    store = await Store.open(url)
    await store.close()


async def _seed(url: str, calls: int, phones: list[list[str]]) -> None:
    store = await Store.open(url, migrate=False)
    try:
        await seed(store, campaign(calls), phones)
    finally:
        await store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=2)
    ap.add_argument("--calls", type=int, default=6, help="answered calls over all nodes")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    shm = Path("/dev/shm")
    base = str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
    pg_root = Path(tempfile.mkdtemp(prefix="televox-bench-pg-", dir=base))
    server = start_server(pg_root)
    results = []
    try:
        with tempfile.TemporaryDirectory(prefix="televox-failover-") as tmp:
            for r in range(args.rounds):
                res = one_round(server, Path(tmp) / f"round-{r}", args.nodes, args.calls)
                results.append(res)
                print(f"round {r + 1}: {res['calls']:.0f} calls on the killed node; taken "
                      f"over {res['takeover_s']:.1f} s and all reconciled "
                      f"{res['reconciled_s']:.1f} s after the SIGKILL", flush=True)
    finally:
        stop_server(server)
    rec = [r["reconciled_s"] for r in results]
    print(f"failover ({args.nodes} nodes, lease 12 s, passes every 2 s): SIGKILL -> "
          f"reconciled median {statistics.median(rec):.1f} s, max {max(rec):.1f} s "
          f"over {len(rec)} rounds")


if __name__ == "__main__":
    main()
