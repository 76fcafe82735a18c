"""What an inference server asks the control plane: task definitions, champions, and who a
caller's token belongs to. Answers are cached, so a server keeps serving known callers and
tasks through a short control-plane outage.

A caller's token is checked as a relay: the caller's token in ``Authorization``, this
server's own token in ``X-Flywheel-Relay-Token``. The control plane then does not count an
unknown caller token against this server's address (the server limits its own callers, by
their address), so one client's bad tokens cannot lock every client out."""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx

from schemas.tasks import TaskDefinition
from services.control_plane.api.deps import RELAY_HEADER, RELAY_REALM
from services.control_plane.tokens import Principal

log = logging.getLogger(__name__)
TOKEN_TTL_S = 60.0  # a revoked token stops working on a server within this time
UNKNOWN_TTL_S = 5.0
TASKS_REFRESH_S = 1.0


class ControlPlaneUnavailable(Exception):
    """The control plane cannot be reached and nothing cached can answer."""


class ControlPlaneRateLimited(Exception):
    """The control plane refuses this server's requests for a while (429): it has seen too
    many unknown tokens from this server's address. Callers should be told to retry later."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass
class _Cached:
    principal: Principal | None
    expires: float


class ControlPlaneLink:
    def __init__(self, url: str, token: str, *, timeout_s: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self._client = httpx.AsyncClient(base_url=self.url, timeout=timeout_s)
        self._headers = {"Authorization": f"Bearer {token}"}
        self._relay_headers = {RELAY_HEADER: token}
        self._principals: dict[str, _Cached] = {}
        self.tasks: dict[str, TaskDefinition] = {}
        self._tasks_fetched = 0.0

    async def close(self) -> None:
        await self._client.aclose()

    async def principal(self, token: str) -> Principal | None:
        """The caller's principal (None: unknown token); cached by the token's hash."""
        key = hashlib.sha256(token.encode()).hexdigest()
        cached = self._principals.get(key)
        now = time.monotonic()
        if cached is not None and cached.expires > now:
            return cached.principal
        try:
            response = await self._client.get(
                "/v1/whoami", headers={"Authorization": f"Bearer {token}", **self._relay_headers}
            )
        except httpx.HTTPError as error:
            if cached is not None:
                return cached.principal  # stale beats refusing every caller during an outage
            raise ControlPlaneUnavailable(
                f"cannot check the token: control plane at {self.url} unreachable ({error})"
            ) from error
        if response.status_code == 401 and RELAY_REALM not in response.headers.get(
            "www-authenticate", ""
        ):  # the caller's token is unknown (not this server's, which is the relay's realm)
            self._principals[key] = _Cached(None, now + UNKNOWN_TTL_S)
            return None
        _raise_for_refusal(response)
        body = response.json()
        principal = Principal(body["role"], body["name"])
        self._principals[key] = _Cached(principal, now + TOKEN_TTL_S)
        return principal

    async def alert(self, **fields: Any) -> None:
        """Tell the operators (audit log, console); a failure to tell is logged, not raised."""
        try:
            response = await self._client.post("/v1/alerts", json=fields, headers=self._headers)
            response.raise_for_status()
        except httpx.HTTPError as error:
            log.error("could not report %s to the control plane: %s", fields, error)

    async def snapshot(self) -> list[dict[str, Any]]:
        """Every task with its champion and since when: the server's starting point."""
        try:
            response = await self._client.get("/v1/tasks", headers=self._headers)
        except httpx.HTTPError as error:
            raise ControlPlaneUnavailable(
                f"control plane at {self.url} unreachable ({error}); start it with `flywheel up` "
                "or set FLYWHEEL_CONTROL_PLANE_URL"
            ) from error
        _raise_for_refusal(response)
        rows = response.json()
        self.tasks = {row["name"]: TaskDefinition.model_validate(_definition(row)) for row in rows}
        self._tasks_fetched = time.monotonic()
        return rows

    async def task(self, name: str) -> TaskDefinition | None:
        """A task's definition; an unknown name triggers (at most once a second) a refresh."""
        if name not in self.tasks and time.monotonic() - self._tasks_fetched > TASKS_REFRESH_S:
            await self.snapshot()
        return self.tasks.get(name)


def _raise_for_refusal(response: httpx.Response) -> None:
    """Translate the control plane's refusals of this server into the link's errors, once."""
    if response.status_code == 429:
        retry_after = response.headers.get("retry-after", "")
        raise ControlPlaneRateLimited(  # its detail names the server's address: not passed on
            "the control plane refuses this server's requests for now (too many unknown tokens "
            "from the server's address)",
            int(retry_after) if retry_after.isdigit() else 60,
        )
    if response.status_code in (401, 403):
        raise ControlPlaneUnavailable(
            f"the control plane refused this server's token ({response.status_code}): set "
            "FLYWHEEL_SERVER_TOKEN to a token from `flywheel token create --role server`"
        )
    if response.is_error:
        raise ControlPlaneUnavailable(
            f"the control plane answered {response.status_code}: {_detail(response)}"
        )


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text
    return str(body.get("detail", body)) if isinstance(body, dict) else response.text


def _definition(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in ("champion", "champion_since")}
