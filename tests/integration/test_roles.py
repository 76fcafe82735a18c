"""The role matrix: every endpoint of both servers against every role, over real HTTP.

The list of endpoints comes from the apps themselves, so a new endpoint without an entry
here fails this test instead of silently being open to everyone.
"""

from __future__ import annotations

import httpx
import pytest

from services.control_plane.api.main import create_app as control_plane_app
from services.inference_server.app import create_app as inference_app
from tests.integration.conftest import InferenceServerProcess, create_token

pytestmark = pytest.mark.integration

ROLES = ("app", "reviewer", "operator", "admin", "server")
READ = {"app", "reviewer", "operator", "server"}
CONTROL_PLANE = {
    ("GET", "/v1/status"): {"operator"},
    ("GET", "/v1/whoami"): READ,
    ("POST", "/v1/events"): {"app", "reviewer"},  # reviewers send corrections
    ("POST", "/v1/tokens"): set(),
    ("GET", "/v1/tasks"): READ,
    ("POST", "/v1/tasks"): {"operator"},
    ("GET", "/v1/tasks/{name}"): READ,
    ("POST", "/v1/tasks/{name}/cycles"): {"operator"},
    ("GET", "/v1/cycles"): {"operator"},
    ("GET", "/v1/cycles/{cycle_id}"): {"operator"},
    ("GET", "/v1/adapters"): {"operator"},
    ("POST", "/v1/tasks/{name}/promote"): {"operator"},
    ("POST", "/v1/tasks/{name}/rollback"): {"operator"},
    ("GET", "/v1/tasks/{name}/canary"): {"operator"},
    ("POST", "/v1/tasks/{name}/canary/end"): {"operator"},  # a reviewer cannot end a canary
    ("GET", "/v1/drift-alerts"): {"operator"},
    ("POST", "/v1/cycles/{cycle_id}/approve"): {"operator"},
    ("POST", "/v1/cycles/{cycle_id}/reject"): {"operator"},
    ("GET", "/v1/review/queue"): {"reviewer"},
    ("POST", "/v1/review/lease"): {"reviewer"},
    ("GET", "/v1/review/items/{inference_id}"): {"reviewer"},
    ("POST", "/v1/review/items/{inference_id}/approve"): {"reviewer"},
    ("POST", "/v1/review/items/{inference_id}/correct"): {"reviewer"},
    ("POST", "/v1/review/items/{inference_id}/skip"): {"reviewer"},
    ("GET", "/v1/tasks/{name}/growth"): {"operator"},
    ("GET", "/v1/tasks/{name}/quality"): {"operator"},
    ("GET", "/v1/tasks/{name}/drift"): {"operator"},
    ("GET", "/v1/audit"): {"operator"},
    ("POST", "/v1/alerts"): {"server"},  # an app token cannot write into the audit log
    ("POST", "/v1/gc"): {"operator"},
    ("POST", "/v1/backup"): set(),  # the control plane writes where it is told: admin only
    ("POST", "/v1/erasures"): {"operator"},
}
INFERENCE_SERVER = {
    ("POST", "/v1/generate"): {"app"},
    ("POST", "/v1/chat/completions"): {"app"},
    ("POST", "/v1/feedback"): {"app"},
}
UNAUTHENTICATED = {("GET", "/healthz")}


def endpoints(app) -> set[tuple[str, str]]:
    paths = app.openapi()["paths"]
    return {(method.upper(), path) for path, methods in paths.items() for method in methods}


def concrete(path: str) -> str:
    return (
        path.replace("{name}", "no-such-task")
        .replace("{cycle_id}", "no-such-cycle")
        .replace("{inference_id}", "no-such-item")
    )


def test_every_endpoint_is_in_the_matrix():
    assert endpoints(control_plane_app(None)) == set(CONTROL_PLANE) | UNAUTHENTICATED
    assert endpoints(inference_app(None)) == set(INFERENCE_SERVER) | UNAUTHENTICATED


@pytest.fixture
def plane(model_plane):
    return model_plane


def test_each_role_reaches_only_its_own_endpoints(plane):
    tokens = {role: create_token(plane, role, name=f"{role}-1") for role in ROLES}
    # The inference server runs on its own (role server) token, as the README tells operators.
    server = InferenceServerProcess(plane, {"FLYWHEEL_SERVER_TOKEN": tokens["server"]})
    server.start()
    try:
        outcomes = []
        for base, matrix in ((plane.url, CONTROL_PLANE), (server.url, INFERENCE_SERVER)):
            for (method, path), allowed in sorted(matrix.items()):
                url = base + concrete(path)
                anonymous = httpx.request(method, url, json={}, timeout=30)
                outcomes.append((method, path, None, anonymous.status_code, 401))
                for role in ROLES:
                    auth = {"Authorization": f"Bearer {tokens[role]}"}
                    got = httpx.request(method, url, json={}, timeout=30, headers=auth)
                    ok = role == "admin" or role in allowed
                    expected = "not 401/403" if ok else 403
                    passed = got.status_code not in (401, 403) if ok else got.status_code == 403
                    outcomes.append(
                        (
                            method,
                            path,
                            role,
                            got.status_code,
                            expected if not passed else got.status_code,
                        )
                    )
                    if not ok:
                        assert "needs role" in got.json()["detail"]
        wrong = [o for o in outcomes if o[3] != o[4]]
        assert not wrong, f"role matrix violated (method, path, role, got, expected): {wrong}"
        refused = httpx.post(
            f"{plane.url}/v1/tasks/money/promote",
            json={"adapter_id": None},
            headers={"Authorization": f"Bearer {tokens['reviewer']}"},
        )
        assert refused.status_code == 403  # the example: a reviewer cannot promote
        bogus = httpx.get(f"{plane.url}/v1/status", headers={"Authorization": "Bearer fw_nope"})
        assert bogus.status_code == 401
    finally:
        server.stop()
