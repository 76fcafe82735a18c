"""How the CLI reaches the running control plane (or learns that none runs)."""

from __future__ import annotations

import json
from typing import Any

import httpx

from services.settings import Settings


class ControlPlaneRefused(httpx.HTTPStatusError):
    """The control plane answered with an error; the message is one line a CLI user can act
    on (the status and the API's ``detail``, which says what to do). Still an
    ``HTTPStatusError``, so callers that read ``.response`` keep working."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(_explain(response), request=response.request, response=response)


class ControlPlaneClient:
    """Talks to a running control plane's API with the admin token it left for local CLIs."""

    def __init__(self, base_url: str, token: str) -> None:
        self._http = httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30.0
        )

    @classmethod
    def discover(cls, settings: Settings) -> ControlPlaneClient | None:
        """The running control plane of this FLYWHEEL_HOME, or None when it is not up."""
        info_path = settings.run_dir / "control-plane.json"
        token_path = settings.run_dir / "cli.token"
        if not info_path.exists() or not token_path.exists():
            return None
        try:
            base_url = json.loads(info_path.read_text())["api_url"]
            token = token_path.read_text().strip()
            httpx.get(f"{base_url}/healthz", timeout=2.0).raise_for_status()
        except (OSError, ValueError, KeyError, httpx.HTTPError):
            return None
        return cls(base_url, token)

    def get(self, path: str) -> Any:
        return _answer(self._http.get(path))

    def post(self, path: str, body: Any, *, timeout_s: float | None = None) -> Any:
        """POST ``body``; ``timeout_s`` overrides the 30 s default for long calls (a backup)."""
        timeout = self._http.timeout if timeout_s is None else httpx.Timeout(timeout_s)
        return _answer(self._http.post(path, json=body, timeout=timeout))


def _answer(response: httpx.Response) -> Any:
    if response.is_error:
        raise ControlPlaneRefused(response)
    return response.json()


def _explain(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    detail = body.get("detail") if isinstance(body, dict) else None
    text = str(detail) if detail is not None else response.text.strip()[:200]
    return f"the control plane answered {response.status_code}: {text}"
