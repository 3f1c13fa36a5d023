"""AMI event log throughput: masked, batched inserts into SQLite plus the JSONL file.

    .venv/bin/python bench/eventlog_throughput.py [events]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from televox_pbx.ami.codec import AmiMessage
from televox_pbx.ami.eventlog import EventLog
from televox_pbx.clock import SystemClock
from televox_pbx.config.settings import EventLogSettings
from televox_pbx.store import Store

UUID = "0d7b5c1e-2f3a-4b5c-9d6e-7f8091a2b3c4"
EVENT = AmiMessage((
    ("Event", "Newstate"), ("Privilege", "call,all"), ("Timestamp", "1795352623.122116"),
    ("Channel", "PJSIP/trunk-00000007"), ("ChannelState", "5"),
    ("ChannelStateDesc", "Ringing"), ("CallerIDNum", "15550000"), ("CallerIDName", "TeleVox"),
    ("ConnectedLineNum", "15550001"), ("ConnectedLineName", "TeleVox"), ("Language", "en"),
    ("AccountCode", ""), ("Context", "from-trunk"), ("Exten", "s"), ("Priority", "1"),
    ("Uniqueid", UUID), ("Linkedid", UUID)))


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        store = await Store.open(Path(d) / "bench.db")
        elog = EventLog(store, EventLogSettings(jsonl_path=Path(d) / "ami.jsonl"),
                        SystemClock())
        t0 = time.perf_counter()
        for _ in range(n):
            elog.record(EVENT)
        t_record = time.perf_counter() - t0
        t1 = time.perf_counter()
        await elog.flush()
        t_flush = time.perf_counter() - t1
        await store.close()
    print(f"events={n}")
    print(f"record_us_per_event={t_record / n * 1e6:.1f} (mask + queue, on the event loop)")
    print(f"flush_events_per_s={n / t_flush:.0f} (SQLite batches + JSONL)")
    print(f"total_events_per_s={n / (t_record + t_flush):.0f}")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 50_000))
