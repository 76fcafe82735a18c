"""The CLI's way to the data: the running control plane's API, else the DuckDB file itself."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import duckdb
import httpx
import typer
from rich.console import Console

from feedback.exceptions import FeedbackError
from feedback.store import connect
from services.cli.control_plane_client import ControlPlaneClient
from services.settings import Settings

T = TypeVar("T")
errors = Console(stderr=True, soft_wrap=True)  # an error stays one line, whatever the width


def fail(message: str, code: int = 1) -> typer.Exit:
    errors.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


def load_settings() -> Settings:
    try:
        return Settings()
    except Exception as error:  # pydantic's message names the variable to fix
        errors.print(f"[red]invalid configuration:[/red] {error}")
        raise typer.Exit(2) from error


@contextmanager
def open_store(settings: Settings, *, read_only: bool = False) -> Iterator[Any]:
    try:
        connection = connect(settings.db_path, read_only=read_only)
    except FeedbackError as error:
        raise fail(str(error)) from error
    try:
        yield connection
    finally:
        connection.close()


def via_api_or_store(
    settings: Settings,
    *,
    api: Callable[[ControlPlaneClient], T],
    local: Callable[[duckdb.DuckDBPyConnection], T],
    read_only: bool = False,
) -> T:
    """Run ``api`` against the running control plane, or ``local`` on the file when it is down."""
    client = ControlPlaneClient.discover(settings)
    if client is not None:
        try:
            return api(client)
        except httpx.HTTPStatusError as error:
            try:
                detail = error.response.json().get("detail", error.response.text)
            except ValueError:
                detail = error.response.text
            raise fail(f"{detail}") from error
    with open_store(settings, read_only=read_only) as connection:
        return local(connection)
