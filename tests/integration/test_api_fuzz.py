"""schemathesis against both servers' OpenAPI documents, over real HTTP: for every operation,
generated requests never get a 5xx, and every refusal carries a reason (``detail``)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.integration.learning_helpers import define_task
from tests.processes import InferenceServerProcess, create_token

pytestmark = pytest.mark.integration
EXAMPLES_PER_OPERATION = 12
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


@pytest.fixture
def plane(model_plane):
    return model_plane


def fuzz(base_url: str, token: str) -> list[str]:
    """Problems found (an empty list when there are none)."""
    raw = httpx.get(f"{base_url}/openapi.json").json()
    schema = schemathesis.openapi.from_dict(raw)
    problems: list[str] = []
    session = httpx.Client(
        base_url=base_url, timeout=60, headers={"Authorization": f"Bearer {token}"}
    )
    operations = [result.ok() for result in schema.get_all_operations()]
    # Every documented operation is fuzzed: one dropped here would pass unchecked.
    assert {(op.method.upper(), op.path) for op in operations} == documented_operations(raw)
    sent: dict[str, int] = {}

    for operation in operations:

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def check(case):
            kwargs = case.as_transport_kwargs(base_url=base_url)
            response = session.request(
                kwargs["method"],
                kwargs["url"],
                params=kwargs.get("params"),
                json=kwargs.get("json"),
                content=kwargs.get("data"),
            )
            sent[case.operation.label] = sent.get(case.operation.label, 0) + 1
            label = f"{case.method} {case.formatted_path} → {response.status_code}"
            if response.status_code >= 500:
                problems.append(f"{label}: {response.text[:300]}")
            elif response.status_code >= 400:
                detail = response.json().get("detail") if response.content else None
                if not detail:
                    problems.append(f"{label} without a reason: {response.text[:300]}")

        check()
    # An operation whose strategy generated nothing would report no problems, vacuously.
    unsent = [op.label for op in operations if not sent.get(op.label)]
    assert not unsent, f"no request was generated for {unsent}"
    return problems


def documented_operations(raw: dict[str, Any]) -> set[tuple[str, str]]:
    """(METHOD, path) of every operation the OpenAPI document declares."""
    return {
        (method.upper(), path)
        for path, item in raw["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def test_no_generated_request_gets_a_server_error_or_an_unexplained_refusal(plane, tmp_path):
    define_task(plane, tmp_path, "money")
    server = InferenceServerProcess(plane)
    server.start()
    try:
        admin = plane.admin_token
        assert fuzz(plane.url, admin) == []
        assert fuzz(server.url, create_token(plane, "app")) == []
        assert httpx.get(f"{plane.url}/healthz").status_code == 200  # still standing
        assert server.health()["status"] == "ok"
    finally:
        server.stop()
