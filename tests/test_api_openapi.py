"""The OpenAPI document matches the router, and schemathesis finds no server error, no
undocumented status and no response that breaks its schema, against the running server."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from api_support import TOKEN, api_settings, running_api
from app_support import campaign_data, write_campaign

ST = Path(sys.executable).parent / "st"


async def test_document_lists_exactly_the_routes(tmp_path: Path) -> None:
    async with running_api(api_settings(tmp_path), dial=False) as api:
        doc = await api.json("GET", "/openapi.json")
        app = api.app.web.application
        # The dashboard's pages (/ui/...) are HTML, not part of the API document.
        served = {(r.method.lower(), r.resource.canonical) for r in app.router.routes()
                  if r.resource is not None and r.resource.canonical.startswith("/api/")}
        documented = {(method, path) for path, ops in doc["paths"].items() for method in ops}
        assert documented == served
        assert doc["openapi"].startswith("3.")
        status = doc["paths"]["/api/v1/status"]["get"]
        assert status["security"] == []  # the one public route
        for path, ops in doc["paths"].items():
            for method, op in ops.items():
                assert "default" in op["responses"], (method, path)
                if op.get("security") != []:
                    assert "401" in op["responses"], (method, path)


async def test_schemathesis_against_the_running_server(tmp_path: Path) -> None:
    settings = api_settings(tmp_path)
    write_campaign(settings, campaign_data("demo"))
    async with running_api(settings, dial=False) as api:
        await api.json("POST", "/campaigns/demo/contacts", 201,
                       json={"contacts": [{"name": "Ann", "phone": "+12125550111"}]})
        schema = tmp_path / "openapi.json"
        schema.write_text(json.dumps(await api.json("GET", "/openapi.json")))
        proc = await asyncio.create_subprocess_exec(
            str(ST), "run", str(schema), "--url", api.base,
            "-H", f"Authorization: Bearer {TOKEN}",
            "--checks", "not_a_server_error,status_code_conformance,"
                        "content_type_conformance,response_schema_conformance",
            "--max-examples", "5", "--seed", "1", "--workers", "1",
            "--phases", "examples,coverage,fuzzing", "--no-shrink",
            "--exclude-path", "/api/v1/events/stream", "--request-timeout", "10",
            "--suppress-health-check", "all", "--warnings", "off",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            cwd=tmp_path)
        out, _ = await asyncio.wait_for(proc.communicate(), 300)
        text = out.decode(errors="replace")
        assert proc.returncode == 0, text[-6000:]
        assert "passed" in text.lower()
