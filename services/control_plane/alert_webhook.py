"""POST a drift alert to the operator's webhook (``FLYWHEEL_ALERT_WEBHOOK_URL``).

Webhook URLs often carry their secret in the path or the query (a chat service's incoming
hook, a signed endpoint), so the URL is a secret: only its scheme and host are ever logged,
and the body is the alert alone (task, versions, counts, rates, interval), no token.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

import httpx

log = logging.getLogger(__name__)

TIMEOUT_S = 5.0
"""A slow webhook must not hold up the live guard's next check for long."""


def shown(url: str) -> str:
    """The part of a webhook URL that is safe to log: scheme and host (and port)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}{f':{parts.port}' if parts.port else ''}"


async def post_alert(url: str, body: dict[str, Any]) -> bool:
    """POST ``body`` as JSON; a failing webhook is logged (without its secret), never
    fatal: the alert is in the audit log either way. True when the webhook took it."""
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT_S) as client:
            response = await client.post(url, json=body)
    except httpx.HTTPError as error:
        log.error("alert webhook at %s unreachable: %s", shown(url), type(error).__name__)
        return False
    if response.is_error:
        log.error("alert webhook at %s answered %d", shown(url), response.status_code)
        return False
    return True
