"""Two boxes on one PostgreSQL (issue 19 item 4), on two real Asterisk 22: each node a daemon
beside its own Asterisk and far end. The node that has the answered call is SIGKILLed; the
survivor takes it over once its lease runs out, asks the dead node's Asterisk over AMI
(with the cluster's AMI user and secret: both PBXes carry the same manager.conf), finds the
channel gone (Asterisk hung up when the AudioSocket died with the daemon) and closes the
attempt by rule N3: dropped, not redialed. Nothing is dialed twice: one attempt in the store,
one INVITE at the dead node's far end, none at the survivor's.

The nodes run the daemon's App with scripted voice engines (cluster_node.py): loading the
real models twice would cost a minute, and the conversation is not what is tested here.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from asterisk_conf import PbxAddress
from daemon import REPO, campaign_yaml
from dialer_support import seed
from far_end import LONG_CALL, number
from pg_support import PgReader, PgServer, fresh_database
from procs import Asterisk, Pbx, free_ports, sipp_far_end, wait_udp_bound, wait_until

from televox_pbx.config.campaign import Campaign
from televox_pbx.store import Store

HERE = Path(__file__).resolve().parent
PHONE = number(61, LONG_CALL)


@dataclass
class Node:
    name: str
    pbx: Pbx
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self, url: str) -> None:
        a = self.pbx.address
        settings = {
            "ami": {"host": a.host, "port": a.ami_port, "username": "televox",
                    "ping_interval_s": 5},
            "audiosocket": {"bind_host": a.host, "port": a.audiosocket_port,
                            "advertise_host": a.host},
            "database": {"url": url, "node_id": self.name},
            "events": {"jsonl_path": "events.jsonl"}, "logging": {"level": "INFO"},
            "campaigns_dir": "campaigns", "recordings_dir": "recordings",
            "agents_dir": "agents"}
        path = self.workdir / "televox.yaml"
        path.write_text(yaml.safe_dump(settings), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if k != "TELEVOX_DB_PASSWORD"}
        env.update({"TELEVOX_AMI_SECRET": a.secret, "HF_HUB_OFFLINE": "1",
                    "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])})
        with (self.workdir / "node.log").open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, str(HERE / "cluster_node.py"), str(path)], cwd=self.workdir,
                env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)

    def log(self) -> str:
        return (self.workdir / "node.log").read_text(errors="replace")

    def ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"node {self.name} exited {self.proc.returncode}: "
                                 f"{self.log()[-3000:]}")
        return "node started" in self.log()

    def kill9(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


@pytest.fixture
def boxes(tools: tuple[Path, Path, str], run_dir: Path,
          far_end_audio: Path) -> Iterator[list[Node]]:
    """Two PBXes (Asterisk + far end, ports picked free), one shared AMI secret."""
    binary, prefix, sipp = tools
    secret = secrets.token_hex(24)
    nodes: list[Node] = []
    started: list[Any] = []
    try:
        for name in ("box-a", "box-b"):
            root = run_dir / "cluster" / name
            shutil.copytree(far_end_audio, root / "sipp")
            sip, ami, audiosocket, far, media = free_ports(5)
            address = PbxAddress(sip_port=sip, ami_port=ami, audiosocket_port=audiosocket,
                                 far_end_port=far, secret=secret)
            far_end = sipp_far_end(sipp, root / "sipp", HERE / "sipp" / "far_end.xml",
                                   address, media)
            started.append(far_end.start())
            wait_udp_bound(far)
            asterisk = Asterisk(binary, prefix, REPO / "asterisk", root / "asterisk", address)
            started.append(asterisk)
            asterisk.start()
            pbx = Pbx(asterisk, far_end, address, root, sipp, media)
            asterisk.rx("pjsip qualify televox-trunk")
            wait_until(f"{name}'s trunk to qualify", pbx.trunk_up, 20)
            nodes.append(Node(name, pbx, root))
        yield nodes
    finally:
        for node in nodes:
            node.stop()
        for proc in reversed(started):
            proc.stop()


def _seed(url: str) -> None:
    data = campaign_yaml("failover", pacing={"calls_per_minute": 60, "max_concurrent": 1},
                         ring_timeout_s=10,
                         retry={"max_attempts_per_phone": 2, "retry_interval_minutes": 0},
                         silence={"reprompt_after_s": 20, "hangup_after_s": 40,
                                  "max_call_duration_s": 60})

    async def go() -> None:
        store = await Store.open(url, migrate=False)
        try:
            await seed(store, Campaign.model_validate(data), [[PHONE]])
        finally:
            await store.close()
    asyncio.run(go())


def test_a_killed_nodes_answered_call_is_reconciled_through_its_asterisk(
        boxes: list[Node], pg_server: PgServer) -> None:
    url = fresh_database(pg_server, migrated=True)
    db = PgReader(url)
    try:
        for node in boxes:
            node.start(url)
        for node in boxes:
            wait_until(f"{node.name} to start", node.ready, 60, 0.3)
        _seed(url)

        def answered() -> dict[str, Any] | None:
            rows = db.execute("SELECT * FROM call_attempts WHERE phone = ?", (PHONE,))
            return dict(rows[0]) if rows and rows[0]["status"] == "answered" else None
        call = wait_until("the call to be answered", answered, 60, 0.2)
        assert isinstance(call, dict)
        victim = next(n for n in boxes if n.name == call["node_id"])
        survivor = next(n for n in boxes if n is not victim)
        time.sleep(2.0)  # into the conversation
        victim.kill9()
        killed = time.monotonic()

        def final() -> dict[str, Any] | None:
            [row] = db.execute("SELECT * FROM call_attempts WHERE phone = ?", (PHONE,))
            return dict(row) if row["status"] not in ("intent", "originated", "ringing",
                                                      "answered") else None
        # The lease (12 s) runs out, then the survivor's next pass (every 2 s) takes over.
        row = wait_until("the survivor to reconcile the call", final, 45, 0.2)
        assert isinstance(row, dict)
        took = time.monotonic() - killed
        assert row["status"] == "dropped", row
        assert row["node_id"] == survivor.name and row["pbx_node"] == victim.name, row
        assert str(row["notes"]).startswith("N3:"), row  # reached through its Asterisk
        [taken] = db.execute("SELECT taken_over_by FROM nodes WHERE node_id = ?",
                             (victim.name,))
        assert taken["taken_over_by"] == survivor.name
        [contact] = db.execute("SELECT status FROM contacts")
        assert contact["status"] == "completed"  # reached: never redialed

        time.sleep(3.0)  # a few dialer ticks more: still nothing dialed again
        assert len(db.execute("SELECT id FROM call_attempts")) == 1
        assert victim.pbx.far_end.invites()[PHONE] == 1
        assert survivor.pbx.far_end.invites()[PHONE] == 0
        assert survivor.proc is not None and survivor.proc.poll() is None
        print(f"reconciled {took:.1f} s after the SIGKILL")
    finally:
        db.close()
