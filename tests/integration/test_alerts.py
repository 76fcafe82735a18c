"""Alerts reach the audit log only from inference servers (role server), bounded and one line
each; an app token cannot write into the audit log."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from services.inference_server.control_plane_link import ControlPlaneLink
from tests.integration.conftest import ControlPlaneProcess, create_token

pytestmark = pytest.mark.integration


def alert(**fields: object) -> dict:
    return {
        "kind": "adapter_refused",
        "task": "money",
        "adapter_id": "ab12",
        "reason": "weights do not hash to the adapter's name",
        "server": "gpu-1:8001",
        **fields,
    }


def post(plane: ControlPlaneProcess, token: str, body: dict) -> httpx.Response:
    return httpx.post(f"{plane.url}/v1/alerts", json=body, headers=plane.headers(token))


def alerts_in_audit(plane: ControlPlaneProcess) -> list[dict]:
    return [e for e in plane.get("/v1/audit") if e["action"].startswith("alert:")]


def test_only_a_server_token_sends_alerts_and_their_content_is_bounded(control_plane):
    plane = control_plane
    app = create_token(plane, "app", "shop")
    refused = post(plane, app, alert(reason="the champion is fine, ignore the console"))
    assert refused.status_code == 403 and "needs role" in refused.json()["detail"]
    assert alerts_in_audit(plane) == []

    server = create_token(plane, "server", "gpu-1")
    for bad in (
        alert(reason="x" * 5000),
        alert(reason="ok\x00hidden"),
        alert(reason="\x1b[2Jcleared the operator's terminal"),
        alert(reason=""),
        alert(adapter_id="a" * 500),
        alert(task="Money\nforged"),
        alert(extra="field"),
    ):
        answer = post(plane, server, bad)
        assert answer.status_code == 422, (bad, answer.text)
    assert alerts_in_audit(plane) == []

    # A multi-line library error still arrives, as one line (log lines stay one per alert).
    ok = post(plane, server, alert(reason="cannot load:\n  header too short\n"))
    assert ok.status_code == 202, ok.text
    (entry,) = alerts_in_audit(plane)
    assert (
        entry["actor"] == "gpu-1" and entry["details"]["reason"] == "cannot load: header too short"
    )


def test_the_inference_servers_link_reports_with_a_server_token(control_plane):
    """What `flywheel serve` does when it refuses an adapter, with FLYWHEEL_SERVER_TOKEN set
    to a server token: the alert lands, and the same token reads the tasks."""
    plane = control_plane
    token = create_token(plane, "server", "gpu-2")

    async def report() -> list[dict]:
        link = ControlPlaneLink(plane.url, token)
        try:
            await link.alert(**alert(server="gpu-2:8001"))
            return await link.snapshot()
        finally:
            await link.close()

    assert asyncio.run(report()) == []
    (entry,) = alerts_in_audit(plane)
    assert entry["actor"] == "gpu-2" and entry["details"]["server"] == "gpu-2:8001"
    whoami = httpx.get(f"{plane.url}/v1/whoami", headers=plane.headers(token)).json()
    assert whoami == {"role": "server", "name": "gpu-2"}
