"""Typed dependencies of the routes: the shared state and role checks.

Unknown tokens are rate limited per client address. An inference server checks its callers'
tokens here as a *relay*: the caller's token in ``Authorization`` and the server's own token
(role server or admin) in ``X-Flywheel-Relay-Token``. An authenticated relay's unknown caller
tokens are not counted against the server's address: the server limits each of its callers
itself, so one client's guesses cannot lock every client (and the local CLI) out. A relay
header with a bad token counts as a failure like any other, so sending it proves nothing."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.auth_limiter import FailedAuthLimiter
from services.control_plane.state import ControlPlaneState
from services.control_plane.tokens import Principal, principal_of

_bearer = HTTPBearer(auto_error=False, description="A token from `flywheel token create`.")
RELAY_HEADER = "X-Flywheel-Relay-Token"
RELAY_REALM = 'realm="relay"'  # in WWW-Authenticate when the relay's own token was refused
RELAY_ROLES = frozenset({"server", "admin"})


def get_state(request: Request) -> ControlPlaneState:
    return request.app.state.control_plane


State = Annotated[ControlPlaneState, Depends(get_state)]


def require_role(*allowed: str) -> Callable[..., Principal]:
    """A dependency that answers 401 without a valid token and 403 for the wrong role."""
    allowed_roles = {*allowed, "admin"}

    def check(
        request: Request,
        state: State,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "send a token as 'Authorization: Bearer <token>' (flywheel token create)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        client = request.client.host if request.client else "unknown"
        refuse_if_blocked(state.auth_limiter, client)
        relayed = _authenticated_relay(request, state, client)
        principal = principal_of(credentials.credentials, state.principals)
        if principal is None:
            if not relayed:  # a relay's callers are counted by the relay, per caller
                state.auth_limiter.failed(client)
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "unknown or revoked token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if principal.role not in allowed_roles:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"a {principal.role} token cannot do this; it needs role "
                f"{' or '.join(sorted(allowed_roles))}",
            )
        return principal

    return check


def _authenticated_relay(request: Request, state: ControlPlaneState, client: str) -> bool:
    """True when the request carries a valid relay token; 401 (counted) for a bad one."""
    relay_token = request.headers.get(RELAY_HEADER)
    if relay_token is None:
        return False
    relay = principal_of(relay_token, state.principals)
    if relay is None or relay.role not in RELAY_ROLES:
        state.auth_limiter.failed(client)
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            f"the relaying server's token ({RELAY_HEADER}) is unknown, revoked or not role server:"
            " set FLYWHEEL_SERVER_TOKEN to a token from `flywheel token create --role server`",
            headers={"WWW-Authenticate": f"Bearer {RELAY_REALM}"},
        )
    return True


def refuse_if_blocked(limiter: FailedAuthLimiter, client: str) -> None:
    """429 while ``client`` is blocked for sending too many unknown tokens."""
    wait = limiter.retry_after(client)
    if wait is not None:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"too many unknown tokens from {client}; try again in {math.ceil(wait)} s",
            headers={"Retry-After": str(math.ceil(wait))},
        )


# Who reaches what: admin reaches everything; each other role only its own endpoints.
AppRole = Annotated[Principal, Depends(require_role("app"))]
Reviewer = Annotated[Principal, Depends(require_role("reviewer"))]
Operator = Annotated[Principal, Depends(require_role("operator"))]
Admin = Annotated[Principal, Depends(require_role("admin"))]
AnyRole = Annotated[Principal, Depends(require_role("app", "reviewer", "operator", "server"))]
