"""One vLLM replica as Flywheel talks to it: what it serves, runtime LoRA loads and unloads.

vLLM's runtime adapter API (``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`` on the replica) is
per replica and forgotten on restart, so callers ask ``/v1/models`` what is served now
rather than remembering what they loaded. Transport failures and refusals are translated
here, once, into ``ReplicaUnavailable`` (retry later) and ``ReplicaRefused`` (this load
will not work as asked).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

MODELS_TIMEOUT_S = 10.0


class ReplicaUnavailable(Exception):
    """The replica cannot be reached or answered with a server error: try again later."""


class ReplicaRefused(Exception):
    """The replica refused a request (4xx): retrying the same request will not help."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


@dataclass(frozen=True)
class Served:
    base: str | None
    """The base model's served name (the model without a parent)."""
    names: frozenset[str]
    """Every served name, adapters and base model."""


class VllmReplica:
    def __init__(self, url: str, *, timeout_s: float = 120.0, api_key: str | None = None) -> None:
        """``timeout_s`` bounds one answer or adapter load; a replica that takes longer is
        treated as failed for that request. Asking what it serves times out after 10 s."""
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            base_url=self.url,
            timeout=httpx.Timeout(timeout_s, connect=5.0),
            headers=headers,
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def served(self) -> Served:
        """The base model and adapters this replica serves now."""
        body = (await self._request("GET", "/v1/models", timeout=MODELS_TIMEOUT_S)).json()
        models = body.get("data", []) if isinstance(body, dict) else []
        names = frozenset(str(m["id"]) for m in models if isinstance(m, dict) and "id" in m)
        base = next((str(m["id"]) for m in models if not m.get("parent")), None)
        return Served(base, names)

    async def load(self, name: str, path: str) -> None:
        await self._request(
            "POST", "/v1/load_lora_adapter", json={"lora_name": name, "lora_path": path}
        )

    async def unload(self, name: str) -> None:
        await self._request("POST", "/v1/unload_lora_adapter", json={"lora_name": name})

    async def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        """One ``/v1/completions`` answer (``body`` without streaming)."""
        answer = (await self._request("POST", "/v1/completions", json=body)).json()
        if not isinstance(answer, dict):
            raise ReplicaUnavailable(f"vLLM replica {self.url} answered no JSON object")
        return answer

    @contextlib.asynccontextmanager
    async def stream(self, body: dict[str, Any]) -> AsyncIterator[AsyncIterator[str]]:
        """A streamed ``/v1/completions`` answer: yields its SSE ``data`` payloads once the
        replica has accepted the request (errors before that are raised here, so a caller
        can still try another replica)."""
        request = self._client.build_request("POST", "/v1/completions", json=body)
        try:
            response = await self._client.send(request, stream=True)
        except httpx.HTTPError as error:
            raise ReplicaUnavailable(f"vLLM replica {self.url} unreachable ({error})") from error
        try:
            if response.is_error:
                await response.aread()
                self._raise_for(response, "/v1/completions")
            yield _sse_payloads(response)
        finally:
            await response.aclose()

    async def _request(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        try:
            response = await self._client.request(method, path, **kwargs)  # type: ignore[arg-type]
        except httpx.HTTPError as error:
            raise ReplicaUnavailable(
                f"vLLM replica {self.url} unreachable or too slow ({type(error).__name__}: {error})"
            ) from error
        self._raise_for(response, path)
        return response

    def _raise_for(self, response: httpx.Response, path: str) -> None:
        if response.status_code >= 500:
            raise ReplicaUnavailable(
                f"vLLM replica {self.url} answered {response.status_code} to {path}"
            )
        if response.is_error:
            raise ReplicaRefused(
                f"vLLM replica {self.url} refused {path} ({response.status_code}): "
                f"{response.text[:300]}",
                response.status_code,
            )


async def _sse_payloads(response: httpx.Response) -> AsyncIterator[str]:
    """The ``data:`` payloads of a server-sent event stream, ``[DONE]`` excluded."""
    try:
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                payload = line[5:].strip()
                if payload == "[DONE]":
                    return
                yield payload
    except httpx.HTTPError as error:
        raise ReplicaUnavailable(f"the vLLM replica's stream broke off ({error})") from error
