"""POST /v1/tokens (admin): create a token while the service runs."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, Field

from services.control_plane.api.deps import Admin, State
from services.control_plane.tokens import (
    ROLES,
    Principal,
    TokenName,
    TokenNameTakenError,
    create_token,
    default_token_name,
    token_hash,
)
from training.registry import audit

router = APIRouter(tags=["tokens"])


class TokenCreate(BaseModel):
    role: str
    name: TokenName | None = Field(
        default=None, description="Unique; leave it out for '<role>-<6 hex digits>'."
    )


class TokenCreated(BaseModel):
    role: str
    name: str
    token: str = Field(description="Shown only in this answer; only its hash is stored.")


@router.post("/v1/tokens", response_model=TokenCreated, summary="Create an API token")
async def post_token(body: TokenCreate, state: State, who: Admin) -> TokenCreated:
    if body.role not in ROLES:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"role must be one of {', '.join(ROLES)}"
        )
    name = body.name or default_token_name(body.role)
    try:
        token = await state.store.call(create_token, role=body.role, name=name)
    except TokenNameTakenError as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from error
    state.principals[token_hash(token)] = Principal(body.role, name)
    await state.store.call(
        audit,
        actor=who.name,
        action="token:create",
        task=None,
        details={"role": body.role, "name": name},
    )
    return TokenCreated(role=body.role, name=name, token=token)
