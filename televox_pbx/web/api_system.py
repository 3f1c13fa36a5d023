"""Health (/status, no token), Prometheus metrics, the OpenAPI document, the API audit log
and the webhook delivery log.

/status and /metrics speak for this node (its calls in flight, its voice capacity) and for
the cluster of nodes sharing the database (issue 19: nodes alive and dead, calls in flight
per node and in total, the live nodes' capacity in total). On one box (SQLite) the cluster
is that box alone."""

from __future__ import annotations

import dataclasses
import json
import socket
from typing import Any

from aiohttp import web

from televox_pbx.store.api_audit import list_audit
from televox_pbx.store.call_summaries import summary_counts
from televox_pbx.store.node_load import ClusterView, cluster_view
from televox_pbx.store.stats import attempts_by_status, campaign_counts, queue_depth, webhook_counts
from televox_pbx.store.webhooks import delivery_attempts, list_deliveries
from televox_pbx.web.auth import bearer_owner
from televox_pbx.web.context import ApiContext, ctx
from televox_pbx.web.errors import not_found
from televox_pbx.web.routes import (
    PAGING,
    Route,
    json_response,
    match_int,
    paging,
    path_int,
    query_str,
    str_param,
)

TAG = "system"
OPENAPI = web.AppKey("televox.openapi", dict)


async def _cluster(c: ApiContext) -> ClusterView:
    ami = c.settings.ami
    return await cluster_view(
        c.store, node_id=c.settings.database.node_id or socket.gethostname(),
        ami_address=f"{ami.host}:{ami.port}" if ami.host else "simulator",
        capacity=c.dialer.capacity if c.dialer is not None else None)


def _node_summary(view: ClusterView) -> dict[str, Any]:
    me = view.here()
    return {"id": view.me, "calls_in_flight": me.in_flight if me else 0,
            "capacity": me.capacity if me else None, "lease_alive": bool(me and me.alive)}


def _cluster_summary(view: ClusterView) -> dict[str, Any]:
    return {"nodes_alive": view.alive, "nodes_dead": view.dead,
            "calls_in_flight": view.in_flight, "capacity": view.capacity}


def _node_rows(view: ClusterView) -> list[dict[str, Any]]:
    return [{"id": n.node_id, "ami_address": n.ami_address, "epoch": n.epoch,
             "alive": n.alive, "lease_expires_in_s": n.expires_in_s,
             "calls_in_flight": n.in_flight, "capacity": n.capacity} for n in view.nodes]


async def status(request: web.Request) -> web.Response:
    """Minimal health without a token (enough for a load balancer or a monitoring probe):
    this node's and the cluster's calls in flight and capacity; with a valid token, also
    `detail`: the engines, the sockets, the event log, each node (AMI address, lease), each
    campaign's state and the webhook outbox."""
    c = ctx(request)
    h = c.health()
    view = await _cluster(c)
    ami = str(h.get("ami_state", "unknown"))
    models = [str(m.get("model") or m.get("name")) for m in h.get("models", [])
              if m.get("loaded", True)]
    body: dict[str, Any] = {
        "status": "ok" if ami == "logged_in" else "degraded", "version": c.version,
        "ami": ami, "ami_mode": h.get("ami_mode"), "models_loaded": models,
        "calls_in_flight": _node_summary(view)["calls_in_flight"],
        "queue_depth": await queue_depth(c.store),
        "node": _node_summary(view), "cluster": _cluster_summary(view)}
    if bearer_owner(request) is not None:
        body["detail"] = {
            "health": h, "nodes": _node_rows(view),
            "campaigns": [{"name": cc.name, "state": cc.state, "contacts": cc.contacts}
                          for cc in await campaign_counts(c.store)],
            "call_attempts": await attempts_by_status(c.store),
            "webhook_deliveries": await webhook_counts(c.store)}
    return json_response(body)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _metric(lines: list[str], name: str, kind: str, help_text: str,
            samples: list[tuple[dict[str, str], float]]) -> None:
    lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    for labels, value in samples:
        tag = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
        lines.append(f"{name}{{{tag}}} {value:g}" if tag else f"{name} {value:g}")


async def metrics(request: web.Request) -> web.Response:
    c = ctx(request)
    h = c.health()
    lines: list[str] = []
    _metric(lines, "televox_info", "gauge", "Build information.",
            [({"version": c.version}, 1)])
    _metric(lines, "televox_ami_connected", "gauge", "1 when logged in to the PBX over AMI.",
            [({}, 1 if h.get("ami_state") == "logged_in" else 0)])
    _metric(lines, "televox_models_loaded", "gauge", "Voice models loaded.",
            [({}, len(h.get("models", [])))])
    view = await _cluster(c)
    node = _node_summary(view)
    _metric(lines, "televox_calls_in_flight", "gauge", "This node's attempts not yet final.",
            [({}, node["calls_in_flight"])])
    if node["capacity"] is not None:
        _metric(lines, "televox_capacity", "gauge",
                "Live conversations this node holds at most (capacity.conversations).",
                [({}, node["capacity"])])
    _metric(lines, "televox_cluster_nodes", "gauge",
            "Nodes sharing the database, by lease (alive or dead).",
            [({"state": "alive"}, view.alive), ({"state": "dead"}, view.dead)])
    _metric(lines, "televox_cluster_node_calls_in_flight", "gauge",
            "Attempts not yet final, by node.",
            [({"node": n.node_id}, n.in_flight) for n in view.nodes])
    _metric(lines, "televox_cluster_calls_in_flight", "gauge",
            "Attempts not yet final, over every node.", [({}, view.in_flight)])
    if view.capacity is not None:
        _metric(lines, "televox_cluster_capacity", "gauge",
                "Live conversations the live nodes hold at most, in total.",
                [({}, view.capacity)])
    _metric(lines, "televox_audiosocket_active", "gauge", "Calls with audio connected.",
            [({}, h.get("calls_active", 0))])
    _metric(lines, "televox_queue_depth", "gauge",
            "Pending contacts in running or scheduled campaigns.",
            [({}, await queue_depth(c.store))])
    _metric(lines, "televox_call_attempts", "gauge", "Call attempts by status.",
            [({"status": s}, n) for s, n in sorted((await attempts_by_status(c.store)).items())])
    counts = await campaign_counts(c.store)
    _metric(lines, "televox_campaign_state", "gauge", "1 for each campaign's current state.",
            [({"campaign": cc.name, "state": cc.state}, 1) for cc in counts])
    _metric(lines, "televox_campaign_contacts", "gauge", "Contacts by campaign and status.",
            [({"campaign": cc.name, "status": s}, n) for cc in counts
             for s, n in sorted(cc.contacts.items())])
    _metric(lines, "televox_webhook_deliveries", "gauge", "Webhook deliveries by status.",
            [({"status": s}, n) for s, n in sorted((await webhook_counts(c.store)).items())])
    _metric(lines, "televox_call_summaries", "gauge", "LLM call summaries by status.",
            [({"status": s}, n) for s, n in sorted((await summary_counts(c.store)).items())])
    _metric(lines, "televox_eventlog_backlog", "gauge", "AMI events waiting to be written.",
            [({}, h.get("eventlog_backlog", 0))])
    _metric(lines, "televox_eventlog_dropped_total", "counter",
            "AMI events dropped because the log fell behind.",
            [({}, h.get("eventlog_dropped", 0))])
    return web.Response(text="\n".join(lines) + "\n",
                        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


async def openapi(request: web.Request) -> web.Response:
    return web.Response(text=json.dumps(request.app[OPENAPI]), content_type="application/json")


async def audit_log(request: web.Request) -> web.Response:
    c = ctx(request)
    limit, offset = paging(request)
    entries, total = await list_audit(c.store, actor=str_param(request, "actor"),
                                      action=str_param(request, "action"),
                                      limit=limit, offset=offset)
    return json_response({"total": total, "entries": [dataclasses.asdict(e)
                                                      for e in entries]})


def _delivery(d: Any) -> dict[str, Any]:
    out = dataclasses.asdict(d)
    out["payload"] = json.loads(out.pop("payload_json"))
    return out


async def deliveries(request: web.Request) -> web.Response:
    c = ctx(request)
    limit, offset = paging(request)
    rows, total = await list_deliveries(
        c.store, status=str_param(request, "status", ("pending", "delivered", "failed")),
        event=str_param(request, "event"), limit=limit, offset=offset)
    return json_response({"total": total, "deliveries": [_delivery(d) for d in rows]})


async def delivery(request: web.Request) -> web.Response:
    c = ctx(request)
    delivery_id = match_int(request, "id")
    rows, _ = await list_deliveries(c.store, limit=1, offset=0, delivery_id=delivery_id)
    if not rows:
        raise not_found("delivery")
    return json_response({**_delivery(rows[0]),
                          "attempt_log": await delivery_attempts(c.store, delivery_id)})


ROUTES: list[Route] = [
    Route("GET", "/status", status,
          "Health without a token: AMI state, models, calls in flight, queue depth, this "
          "node and the cluster (nodes alive/dead, calls in flight, capacity); with a valid "
          "token also `detail` (engines, sockets, each node, campaigns, webhook outbox)", TAG,
          auth=False, ok_schema={"type": "object", "required": ["status", "version", "ami"]}),
    Route("GET", "/metrics", metrics, "Prometheus metrics (text format 0.0.4)", TAG,
          ok_type="text/plain", ok_schema={"type": "string"}),
    Route("GET", "/openapi.json", openapi, "This API's OpenAPI 3 document", TAG,
          ok_schema={"type": "object", "required": ["openapi", "paths"]}),
    Route("GET", "/audit", audit_log, "Changes made through the API: who, what, when", TAG,
          params=(query_str("actor"), query_str("action"), *PAGING),
          ok_schema={"type": "object", "required": ["total", "entries"]}),
    Route("GET", "/webhooks/deliveries", deliveries, "The outgoing webhook delivery log", TAG,
          params=(query_str("status", "", ("pending", "delivered", "failed")),
                  query_str("event"), *PAGING), errors=(422,)),
    Route("GET", "/webhooks/deliveries/{id}", delivery, "One delivery with every attempt",
          TAG, params=(path_int("id", "delivery id"),)),
]
