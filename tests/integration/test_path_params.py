"""Names and ids in URL paths obey the same rules as in bodies: a bad task name, inference id
or cycle id is refused with a reason and writes nothing, and promotion needs a real task."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.conftest import ControlPlaneProcess

pytestmark = pytest.mark.integration

# The examples: a NUL, a newline that would split a log line, SQL-looking text, and
# 5,000 characters (httpx sends the percent escapes as written).
BAD_NAMES = ["%00", "spam%0A", "x'%3B%20DROP%20TABLE%20tasks%3B--", "a" * 5000, "Spam"]


def post(plane: ControlPlaneProcess, path: str, body: dict) -> httpx.Response:
    return httpx.post(f"{plane.url}{path}", json=body, headers=plane.headers(), timeout=30)


def get(plane: ControlPlaneProcess, path: str) -> httpx.Response:
    return httpx.get(f"{plane.url}{path}", headers=plane.headers(), timeout=30)


def test_bad_task_names_in_paths_are_refused_and_write_nothing(control_plane):
    plane = control_plane
    for name in BAD_NAMES:
        for answer in (
            post(plane, f"/v1/tasks/{name}/promote", {"adapter_id": None}),
            post(plane, f"/v1/tasks/{name}/rollback", {}),
            post(plane, f"/v1/tasks/{name}/cycles", {}),
            get(plane, f"/v1/tasks/{name}"),
            get(plane, f"/v1/cycles?task={name}"),
            get(plane, f"/v1/adapters?task={name}"),
        ):
            assert answer.status_code == 422, (name[:20], answer.request.url, answer.text)
            assert "should match pattern" in answer.text, answer.text

    # A well-formed name of a task nobody created: 404 saying how to create it.
    ghost = post(plane, "/v1/tasks/ghost/promote", {"adapter_id": None})
    assert ghost.status_code == 404 and "no task named ghost" in ghost.json()["detail"]
    back = post(plane, "/v1/tasks/ghost/rollback", {})
    assert back.status_code == 404 and "no task named ghost" in back.json()["detail"]

    assert get(plane, "/v1/tasks").json() == []
    assert "ghost" not in plane.cli("status").stdout
    plane.stop()
    assert plane.query("SELECT count(*) FROM champion_history") == [(0,)]
    assert plane.query("SELECT count(*) FROM audit_log") == [(0,)]


def test_bad_ids_in_paths_are_refused_with_a_reason(control_plane):
    plane = control_plane
    for bad in ("%00", "item%0Aforged%20log%20line", "x" * 5000):
        for answer in (
            get(plane, f"/v1/review/items/{bad}"),
            post(plane, f"/v1/review/items/{bad}/approve", {}),
            post(plane, f"/v1/review/items/{bad}/skip", {}),
            get(plane, f"/v1/cycles/{bad}"),
            post(plane, f"/v1/cycles/{bad}/approve", {}),
            post(plane, f"/v1/cycles/{bad}/reject", {}),
        ):
            assert answer.status_code == 422, (bad[:20], answer.request.url, answer.text)
            assert "should match pattern" in answer.text, answer.text
