"""/metrics in the Prometheus text format, with the daemon's real counts."""

from __future__ import annotations

import re
from pathlib import Path

from api_support import api_settings, running_api, until
from app_support import campaign_data, write_campaign

_SAMPLE = re.compile(r'^[a-z_]+(\{([a-z_]+="[^"]*",?)*\})? -?[0-9.e+]+$')


async def test_metrics_in_prometheus_text_format(tmp_path: Path) -> None:
    phone = "+12125550101"
    settings = api_settings(tmp_path, {phone: {"behaviour": "busy"}})
    write_campaign(settings, campaign_data("demo"))
    async with running_api(settings) as api:
        await api.json("POST", "/campaigns/demo/contacts", 201,
                       json={"contacts": [{"phone": phone}]})
        await api.json("POST", "/campaigns/demo/start")

        async def done() -> bool:
            return bool((await api.json("GET", "/campaigns/demo"))["state"] == "COMPLETED")
        await until(done)
        async with api.http.get("/api/v1/metrics") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            text = await resp.text()
    samples = {}
    for line in text.splitlines():
        if line.startswith("#"):
            assert re.match(r"^# (HELP|TYPE) [a-z_]+ .+$", line), line
            continue
        assert _SAMPLE.match(line), line
        name, value = line.rsplit(" ", 1)
        samples[name] = float(value)
    assert samples["televox_ami_connected"] == 1
    assert samples['televox_call_attempts{status="busy"}'] == 1
    assert samples['televox_campaign_state{campaign="demo",state="COMPLETED"}'] == 1
    assert samples['televox_campaign_contacts{campaign="demo",status="busy"}'] == 1
    assert samples["televox_calls_in_flight"] == 0
    # One box (SQLite): the cluster is this box alone.
    assert samples['televox_cluster_nodes{state="alive"}'] == 1
    assert samples['televox_cluster_nodes{state="dead"}'] == 0
    assert samples["televox_cluster_calls_in_flight"] == 0
    assert samples["televox_cluster_capacity"] == samples["televox_capacity"] >= 1
    assert samples["televox_queue_depth"] == 0
